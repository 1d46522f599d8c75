//! Staging: each command becomes records in the batch being encoded, with what its
//! waiter will be told once the batch is durable.
//!
//! This is where sequences are assigned and idempotency keys resolved, on the one writer
//! thread, so one key never yields two events. Settles are checked here against the
//! state their events will have once everything staged before them lands.

use std::sync::atomic::Ordering;

use super::batch::{Announced, NewIndexEntry, Staged};
use super::{Command, Writer};
use crate::embedded::codec::{self, EventRecord, IdempotencyHashes, Record};
use crate::embedded::error::EngineError;
use crate::embedded::idempotency::key_hash;
use crate::embedded::index::{
    STATE_ACKED, STATE_DEAD, STATE_DELETED, STATE_EXPIRED, STATE_PENDING,
};
use crate::embedded::segment;
use crate::embedded::sidecar::IndexedSettle;
use crate::event_id::EventId;
use crate::feed::FEED_INLINE_BYTES_MAX;
use crate::types::{
    AppendOutcome, ConsumerId, InboxKey, NewEvent, Sequence, Settle, SettleOutcome, UnixMs,
};

impl Writer {
    /// Adds one command to the batch, or sets it aside as `carry` when it would not fit
    /// in the active segment (it then starts the next batch, after a roll-over).
    pub(super) fn stage(&mut self, cmd: Command) {
        let needed = cmd.charged_bytes();
        let room = self.active.capacity - self.active.write_pos;
        if (self.encoder.len() + needed) as u64 > room {
            if !self.encoder.is_empty() {
                self.carry = Some(cmd);
                return;
            }
            if self.active.write_pos > codec::SEGMENT_HEADER_LEN as u64 {
                if let Err(e) = self.roll_segment() {
                    return cmd.fail(e);
                }
            }
        }
        if self.links.halted.load(Ordering::Relaxed) {
            return cmd.fail(EngineError::Halted);
        }
        match cmd {
            Command::Append { events, done } => {
                // One receive time per command: its events arrived together.
                let received_at = self.now();
                let announce = self.links.feed.has_readers();
                let outcomes = events
                    .iter()
                    .map(|e| self.stage_event(e, received_at, announce))
                    .collect();
                self.batch.staged.push(Staged::Append { outcomes, done });
            }
            Command::Settle {
                inbox,
                ids,
                how,
                leases,
                done,
            } => match self.stage_settle(inbox, &ids, how, leases.as_deref()) {
                Ok(outcomes) => self.batch.staged.push(Staged::Settle { outcomes, done }),
                Err(e) => drop(done.send(Err(e))),
            },
            Command::Control { control, done } => {
                let mut fields = Vec::with_capacity(control.bound_bytes());
                control.encode(&mut fields);
                let kind = control.kind();
                self.encoder.push_control(kind, &fields);
                self.batch.control_records.push((kind, fields));
                self.batch.staged.push(Staged::Control { done });
            }
            Command::Sync { done } => {
                self.batch.wants_sync = true;
                self.batch.staged.push(Staged::Sync { done });
            }
        }
    }

    fn stage_event(&mut self, e: &NewEvent, received_at: UnixMs, announce: bool) -> AppendOutcome {
        let salt = self.salt;
        let hashes = e.idempotency.as_ref().map(|k| IdempotencyHashes {
            key_hash: key_hash(e.tenant, &k.key),
            fingerprint: k.fingerprint,
        });
        if let Some(h) = &hashes {
            if let Some(prior) = self.idempotency.get(&h.key_hash) {
                let id = EventId::new(prior.received_at, prior.seq, salt);
                return if prior.fingerprint == h.fingerprint {
                    AppendOutcome::Replayed {
                        id,
                        received_at: prior.received_at,
                    }
                } else {
                    AppendOutcome::KeyReused { id }
                };
            }
        }
        let seq = Sequence(self.next_seq);
        self.next_seq += 1;
        let offset = self.active.write_pos as usize
            + self.encoder.push_event(&EventRecord {
                seq,
                tenant: e.tenant,
                received_at,
                event_type: &e.event_type,
                source: e.source.as_deref(),
                occurred_at: e.occurred_at.as_deref(),
                idempotency: hashes,
                payload: &e.payload,
            });
        // The write position is checked against the segment's capacity before staging
        // (`stage`), and capacities are far below 4 GiB, so every record offset fits the
        // index's u32. A violation would index events at wrong offsets: stop here.
        assert!(
            offset <= u32::MAX as usize,
            "record offset {offset} does not fit the index"
        );
        if let Some(h) = hashes {
            self.idempotency
                .insert(h.key_hash, seq, received_at, h.fingerprint);
            self.batch.new_keys.push(h.key_hash);
        }
        self.batch.payload_bytes += e.payload.len();
        self.batch.new_events.push(NewIndexEntry {
            seq,
            tenant: e.tenant,
            event_type: self.type_names.shared(&e.event_type),
            offset: offset as u32,
            received_at,
            idempotency: hashes,
        });
        if announce {
            let batch = &mut self.batch;
            let announced = Announced {
                source: e.source.as_deref().map(|f| batch.keep_for_feed(f)),
                occurred_at: e.occurred_at.as_deref().map(|f| batch.keep_for_feed(f)),
                payload: (batch.payload_bytes <= FEED_INLINE_BYTES_MAX)
                    .then(|| batch.keep_for_feed(&e.payload)),
            };
            batch.announced.push(announced);
        }
        AppendOutcome::Created {
            id: EventId::new(received_at, seq, salt),
            received_at,
        }
    }

    fn stage_settle(
        &mut self,
        inbox: InboxKey,
        ids: &[EventId],
        how: Settle,
        leases: Option<&[u32]>,
    ) -> Result<Vec<SettleOutcome>, EngineError> {
        // A delete is the log's: it is checked against, and recorded as, the tenant's.
        let inbox = if how == Settle::Delete {
            InboxKey::from(inbox.tenant)
        } else {
            inbox
        };
        let target = settled_state(how);
        let mut outcomes = Vec::with_capacity(ids.len());
        let mut changed = Vec::new();
        let mut undo = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            // One lease per id, or none: `ack_leased` unzips both from the same pairs.
            let lease = leases.and_then(|l| l.get(i).copied());
            let seq = id.sequence();
            let key = (inbox, id);
            let staged = self.batch.overlay.get(&key).or_else(|| {
                let syncing = self.in_flight.as_ref()?;
                syncing.batch.overlay.get(&key)
            });
            // The delivery count, for a pending event read from the index: what a lease
            // is checked against. One staged in this batch was settled already.
            let mut count = None;
            let state = match staged {
                Some(&s) => Some(s),
                None if id.salt() != self.salt => None,
                None => match self.current_state(inbox, id) {
                    Ok(state) => state.map(|(s, c)| {
                        count = c;
                        s
                    }),
                    Err(e) => {
                        // This command is refused whole: undo what it staged so far.
                        for (key, prior) in undo {
                            match prior {
                                Some(p) => self.batch.overlay.insert(key, p),
                                None => self.batch.overlay.remove(&key),
                            };
                        }
                        return Err(e);
                    }
                },
            };
            let outcome = match (how, state) {
                (_, None | Some(STATE_DELETED) | Some(STATE_EXPIRED)) => SettleOutcome::NotFound,
                // Only a dead letter can be requeued, and only a pending event can die.
                (Settle::Requeue, Some(STATE_DEAD)) => SettleOutcome::Done,
                (Settle::Requeue, _) => SettleOutcome::NotFound,
                (Settle::Dead, Some(STATE_DEAD)) => SettleOutcome::AlreadyDone,
                (Settle::Dead, Some(STATE_PENDING)) => SettleOutcome::Done,
                (Settle::Dead, _) => SettleOutcome::NotFound,
                (_, Some(s)) if s == target => SettleOutcome::AlreadyDone,
                (_, Some(STATE_PENDING)) if lease.is_some() && count != lease => {
                    SettleOutcome::LeaseExpired
                }
                (_, Some(_)) => SettleOutcome::Done,
            };
            if outcome == SettleOutcome::Done {
                undo.push((key, self.batch.overlay.insert(key, target)));
                changed.push(seq);
            }
            outcomes.push(outcome);
        }
        if !changed.is_empty() {
            let at = self.now();
            self.encoder.push_settle(how, inbox, at, &changed);
            self.batch.settle_records.push(IndexedSettle {
                how,
                inbox,
                at,
                seqs: changed,
            });
        }
        Ok(outcomes)
    }

    /// The committed state of `id` in `inbox`; `None` if it is not its tenant's (or, for
    /// a named consumer, not one it takes), or if `id` is not exactly the id of an event
    /// (the caller checked the salt; here the sequence and the time part must both
    /// match). A pending event's delivery count comes with its state. A named
    /// consumer's event that is in the log and not in its queue is one it acked.
    fn current_state(
        &self,
        inbox: InboxKey,
        id: EventId,
    ) -> Result<Option<(u8, Option<u32>)>, EngineError> {
        let tenant = inbox.tenant;
        let seq = id.sequence();
        let location = {
            let index = self.links.index.lock();
            if let Some(p) = index.pending(inbox, id) {
                let state = if p.is_dead() {
                    STATE_DEAD
                } else {
                    STATE_PENDING
                };
                return Ok(Some((state, Some(p.delivery_count))));
            }
            match index.locate(seq) {
                Some(loc) if inbox.consumer != ConsumerId::DEFAULT => {
                    if matches!(loc.state, STATE_DELETED | STATE_EXPIRED)
                        || !index.consumer_takes(inbox, seq)
                    {
                        return Ok(None);
                    }
                    loc
                }
                Some(loc) if loc.state == STATE_ACKED => loc,
                // Pending under another tenant, deleted, expired, or unknown.
                _ => return Ok(None),
            }
        };
        // Acked events are not in any inbox, so ownership is read from the record
        // itself (a rare path: re-acks, and deletes of acked events). This thread may
        // block on the read: it is the writer's own, not an async worker.
        let bytes = segment::read_record_at(&location.file, &location.path, location.offset)?;
        match codec::read_record(&bytes) {
            Ok(Record::Event(e)) if e.tenant == tenant && e.received_at == id.millis() => {
                Ok(Some((STATE_ACKED, None)))
            }
            _ => Ok(None),
        }
    }
}

/// The index state an ack or a delete leaves an event in.
pub(super) fn settled_state(how: Settle) -> u8 {
    match how {
        Settle::Ack => STATE_ACKED,
        Settle::Delete => STATE_DELETED,
        Settle::Dead => STATE_DEAD,
        Settle::Requeue => STATE_PENDING,
    }
}
