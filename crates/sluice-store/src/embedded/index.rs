//! In-memory indexes over the log: where each event is, what is pending, and leases.
//!
//! Memory per event, by design:
//! - every stored event: 9 bytes in its segment: a `u32` offset, a `u32` stream key
//!   (its tenant and type, interned: so a read of one tenant's log, or of one type,
//!   skips the others without touching the disk) and a state byte;
//! - every pending event: one 32-byte entry in its consumer's [`PendingQueue`]
//!   (sequence, type, delivery count, lease), for each consumer that takes it. Acks in
//!   order leave nothing behind; scattered acks leave tombstones, at most half as many
//!   as live entries, so at most 48 bytes per pending event per consumer plus the
//!   deque's growth slack, inside the 64-byte budget.
//!
//! A tenant's `default` consumer takes every event of the tenant; its state is also
//! each event's state byte in its segment (what history and `get` report). A named
//! consumer ([`ConsumerSlot`]) takes the events after its start that match its types,
//! in a queue of its own; an ack there removes its entry and touches nothing else. A
//! delete and an expiry are the log's, so they leave every consumer. A segment's
//! `pending` counts every consumer's entries in it, which is what pins it.
//!
//! Leases live in the pending entry and are not persisted: a restart makes leased events
//! visible again, which is at-least-once delivery (consumers dedup by `event_id`).

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use super::pending::PendingQueue;
use crate::event_id::EventId;
use crate::feed::TypeFilter;
use crate::idhash::IdHash;
use crate::types::{ConsumerId, InboxKey, Sequence, Settle, TenantId, UnixMs};

/// The event is waiting in its inbox.
pub const STATE_PENDING: u8 = 0;
/// The event was acked; readable until retention removes its segment.
pub const STATE_ACKED: u8 = 1;
/// The event was deleted; gone for readers.
pub const STATE_DELETED: u8 = 2;
/// The event outlived `retention.pending` unconsumed; gone for readers.
pub const STATE_EXPIRED: u8 = 3;
/// Not a state byte on disk or in a segment: what the writer's overlay records for a
/// pending event staged to move to the dead letters (its segment byte stays pending).
pub const STATE_DEAD: u8 = 4;

/// A dead letter is a pending entry hidden forever: `lease_until` at this sentinel. So a
/// dead letter keeps its place, pins its segment and expires with `retention.pending`
/// exactly as a pending event, and no poll leases it, with no structure of its own.
pub const DEAD_UNTIL: UnixMs = UnixMs::MAX;

/// One segment file and the events it holds.
#[derive(Debug)]
pub struct SegmentMeta {
    /// Sequence of its first event.
    pub base_seq: u64,
    /// Its path, for error messages and removal.
    pub path: PathBuf,
    /// A read handle shared with in-flight reads; an unlinked segment stays readable
    /// until the last read drops it.
    pub file: Arc<File>,
    /// Record offset of each event, indexed by `seq - base_seq`.
    pub offsets: Vec<u32>,
    /// Stream key of each event (see [`StreamInterner`]), indexed like `offsets`.
    pub keys: Vec<u32>,
    /// State of each event, indexed like `offsets`.
    pub states: Vec<u8>,
    /// Each acked event's delivery count, saturating at 255, indexed like `offsets`
    /// (0 while pending: a pending event's count is in its inbox entry). One byte an
    /// event, so that `delivery_count` survives the ack without a structure that grows
    /// with acked events; like leases, it does not survive a restart.
    pub acked_counts: Vec<u8>,
    /// Named consumers' delivery counts once acked, like `acked_counts`, one vector per
    /// consumer that acked an event here, grown as far as its latest such event.
    pub consumer_counts: Vec<(ConsumerId, Vec<u8>)>,
    /// How many pending entries of any consumer are for its events.
    pub pending: u32,
    /// Latest receive time of its events.
    pub received_last: UnixMs,
    /// Latest ack or delete of any of its events.
    pub settled_last: UnixMs,
    /// Bytes of log written in it.
    pub bytes: u64,
}

impl SegmentMeta {
    /// An entry for a segment whose events are indexed next, in sequence order.
    pub fn new(
        base_seq: u64,
        path: PathBuf,
        file: Arc<File>,
        events_hint: usize,
        bytes: u64,
    ) -> Self {
        SegmentMeta {
            base_seq,
            path,
            file,
            offsets: Vec::with_capacity(events_hint),
            keys: Vec::with_capacity(events_hint),
            states: Vec::with_capacity(events_hint),
            acked_counts: Vec::with_capacity(events_hint),
            consumer_counts: Vec::new(),
            pending: 0,
            received_last: 0,
            settled_last: 0,
            bytes,
        }
    }

    /// One past the last sequence stored so far.
    pub fn end_seq(&self) -> u64 {
        self.base_seq + self.offsets.len() as u64
    }

    /// A named consumer's delivery count of its acked event at index `i` (0 if it
    /// never recorded one).
    pub fn consumer_count(&self, consumer: ConsumerId, i: usize) -> u8 {
        self.consumer_counts
            .iter()
            .find(|(c, _)| *c == consumer)
            .and_then(|(_, counts)| counts.get(i).copied())
            .unwrap_or(0)
    }

    fn set_consumer_count(&mut self, consumer: ConsumerId, i: usize, count: u32) {
        let counts = match self
            .consumer_counts
            .iter()
            .position(|(c, _)| *c == consumer)
        {
            Some(at) => &mut self.consumer_counts[at].1,
            None => {
                self.consumer_counts.push((consumer, Vec::new()));
                // Just pushed, so there is a last element.
                let last = self.consumer_counts.len() - 1;
                &mut self.consumer_counts[last].1
            }
        };
        if counts.len() <= i {
            counts.resize(i + 1, 0);
        }
        counts[i] = u8::try_from(count).unwrap_or(u8::MAX);
    }
}

/// A pending event's mutable delivery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Interned event type.
    pub type_id: u32,
    /// Times handed out under a lease.
    pub delivery_count: u32,
    /// Hidden from lease pollers until then; 0 when not leased; [`DEAD_UNTIL`] for a
    /// dead letter.
    pub lease_until: UnixMs,
}

impl Pending {
    /// Whether this entry is a dead letter.
    pub fn is_dead(&self) -> bool {
        self.lease_until == DEAD_UNTIL
    }
}

/// A map keyed by tenant, hashed with one multiply instead of SipHash: the inbox map
/// is looked up once for every event committed. Tenant ids are small integers Sluice
/// assigns, never chosen by a client, so there is no flooding attack to resist.
pub type TenantMap<V> = HashMap<TenantId, V, IdHash>;

/// A map keyed by inbox (tenant and consumer), hashed as [`TenantMap`] is.
pub type InboxMap<V> = HashMap<InboxKey, V, IdHash>;

/// A named consumer as the index sees it: where its queue starts and which types it
/// takes. Its queue is in [`Index::inboxes`] under its [`InboxKey`].
#[derive(Debug)]
pub struct ConsumerSlot {
    /// Its id.
    pub id: ConsumerId,
    /// It takes the events after this sequence (see `Consumer::start_after`).
    pub start_after: u64,
    /// Events from this sequence on go into its queue as they are indexed; those
    /// before it come from its start (at open, nothing before; at creation, a backfill).
    pub live_from: u64,
    filter: TypeFilter,
    /// Per interned type id: 0 not decided yet, 1 taken, 2 not; so the commit path
    /// matches a type against the patterns once, not once per event.
    by_type: Vec<u8>,
}

impl ConsumerSlot {
    /// A slot taking the events after `start_after` whose type `filter` passes, those
    /// from `live_from` on as they are indexed.
    pub fn new(id: ConsumerId, start_after: u64, live_from: u64, filter: TypeFilter) -> Self {
        ConsumerSlot {
            id,
            start_after,
            live_from,
            filter,
            by_type: Vec::new(),
        }
    }

    /// Whether it takes events of `type_id`.
    fn takes(&mut self, type_id: u32, types: &TypeInterner) -> bool {
        let i = type_id as usize;
        if self.by_type.len() <= i {
            self.by_type.resize(i + 1, 0);
        }
        if self.by_type[i] == 0 {
            self.by_type[i] = if self.filter.matches(types.name(type_id)) {
                1
            } else {
                2
            };
        }
        self.by_type[i] == 1
    }

    /// Whether it takes events of this type name (for a backfill, off the index).
    pub fn takes_name(&self, event_type: &[u8]) -> bool {
        self.filter.matches(event_type)
    }
}

/// Interns event types so pending entries carry 4 bytes instead of a string.
#[derive(Debug, Default)]
pub struct TypeInterner {
    ids: HashMap<Box<[u8]>, u32>,
    /// Each id's name, by id.
    names: Vec<Box<[u8]>>,
    /// The last type interned: batches mostly repeat one type, and a short compare is
    /// cheaper than hashing.
    last: Option<(Box<[u8]>, u32)>,
}

impl TypeInterner {
    /// The id of a type, creating it on first sight.
    pub fn intern(&mut self, name: &[u8]) -> u32 {
        if let Some((last, id)) = &self.last {
            if **last == *name {
                return *id;
            }
        }
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.ids.insert(name.into(), id);
                self.names.push(name.into());
                id
            }
        };
        self.last = Some((name.into(), id));
        id
    }

    /// The id of a type, if it was ever seen.
    pub fn get(&self, name: &[u8]) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name of a type id (empty for an id never issued).
    pub fn name(&self, id: u32) -> &[u8] {
        self.names.get(id as usize).map_or(&[], |n| &n[..])
    }
}

/// Interns (tenant, type) pairs into the `u32` stream key each stored event carries.
/// Tenants and types are few, so the table is small; a key leads back to both in one
/// array index.
#[derive(Debug, Default)]
pub struct StreamInterner {
    ids: HashMap<(TenantId, u32), u32>,
    streams: Vec<(TenantId, u32)>,
    last: Option<((TenantId, u32), u32)>,
}

impl StreamInterner {
    /// The key of a (tenant, type id) pair, creating it on first sight.
    pub fn intern(&mut self, tenant: TenantId, type_id: u32) -> u32 {
        if let Some((pair, key)) = self.last {
            if pair == (tenant, type_id) {
                return key;
            }
        }
        let key = match self.ids.get(&(tenant, type_id)) {
            Some(&key) => key,
            None => {
                let key = self.streams.len() as u32;
                self.ids.insert((tenant, type_id), key);
                self.streams.push((tenant, type_id));
                key
            }
        };
        self.last = Some(((tenant, type_id), key));
        key
    }

    /// The tenant and type id of a key.
    pub fn get(&self, key: u32) -> (TenantId, u32) {
        // Every key in the index was issued by `intern`; a key outside the table would
        // mean the index is corrupt, and naming no tenant keeps it from leaking one.
        self.streams
            .get(key as usize)
            .copied()
            .unwrap_or((TenantId(u32::MAX), u32::MAX))
    }
}

/// Where one event is, and what state it is in.
#[derive(Debug, Clone)]
pub struct Location {
    /// The segment file.
    pub file: Arc<File>,
    /// Its path, for errors.
    pub path: PathBuf,
    /// Record offset inside it.
    pub offset: u64,
    /// Its state byte.
    pub state: u8,
    /// Its delivery count once acked (see [`SegmentMeta::acked_counts`]).
    pub acked_count: u8,
}

/// Everything readers and the writer share, behind one mutex held only for in-memory work.
#[derive(Debug, Default)]
pub struct Index {
    /// All segments, oldest first; the last one is the active segment.
    pub segments: Vec<SegmentMeta>,
    /// Pending events per consumer, in ingest order.
    pub inboxes: InboxMap<PendingQueue>,
    /// Each tenant's named consumers.
    pub consumers: TenantMap<Vec<ConsumerSlot>>,
    /// Event type names.
    pub types: TypeInterner,
    /// (tenant, type) pairs, for the per-event stream keys.
    pub streams: StreamInterner,
    /// Every subscription's delivery state (see `deliveries`): under the same lock,
    /// since its reads walk the segments' stream keys.
    pub(crate) deliveries: super::deliveries::DeliveryStates,
}

/// The position in `segments` (oldest first) of the segment holding `seq`, if stored.
pub fn segment_of(segments: &[SegmentMeta], seq: Sequence) -> Option<usize> {
    let i = segments
        .partition_point(|s| s.base_seq <= seq.0)
        .checked_sub(1)?;
    (seq.0 < segments[i].end_seq()).then_some(i)
}

/// Where `seq` is in `segments`. A free function so that a caller holding a mutable
/// borrow of the inboxes can still look up locations.
pub fn locate_in(segments: &[SegmentMeta], seq: Sequence) -> Option<Location> {
    let s = &segments[segment_of(segments, seq)?];
    let i = (seq.0 - s.base_seq) as usize;
    Some(Location {
        file: s.file.clone(),
        path: s.path.clone(),
        offset: s.offsets[i] as u64,
        state: s.states[i],
        acked_count: s.acked_counts[i],
    })
}

impl Index {
    /// Where `seq` is.
    pub fn locate(&self, seq: Sequence) -> Option<Location> {
        locate_in(&self.segments, seq)
    }

    /// Records a newly committed event.
    pub fn add_event(
        &mut self,
        seq: Sequence,
        tenant: TenantId,
        event_type: &[u8],
        offset: u32,
        received_at: UnixMs,
    ) {
        let type_id = self.types.intern(event_type);
        // There is always an active segment (recovery creates the first, a roll-over
        // creates the next before it is used), and the writer indexes events in
        // sequence order. An event indexed otherwise would be unreachable or found at
        // the wrong offset: stop rather than serve a wrong index.
        let seg = self
            .segments
            .last_mut()
            .expect("an event is indexed with no segment to hold it");
        assert_eq!(
            seg.end_seq(),
            seq.0,
            "events must be indexed in sequence order"
        );
        let key = self.streams.intern(tenant, type_id);
        seg.offsets.push(offset);
        seg.keys.push(key);
        seg.states.push(STATE_PENDING);
        seg.acked_counts.push(0);
        seg.pending += 1;
        seg.received_last = seg.received_last.max(received_at);
        let fresh = Pending {
            type_id,
            delivery_count: 0,
            lease_until: 0,
        };
        self.inboxes
            .entry(tenant.into())
            .or_default()
            .insert(seq.0, received_at, fresh);
        if let Some(slots) = self.consumers.get_mut(&tenant) {
            for slot in slots.iter_mut() {
                if seq.0 >= slot.live_from && slot.takes(type_id, &self.types) {
                    let key = InboxKey {
                        tenant,
                        consumer: slot.id,
                    };
                    self.inboxes
                        .entry(key)
                        .or_default()
                        .insert(seq.0, received_at, fresh);
                    seg.pending += 1;
                }
            }
        }
    }

    /// Starts a named consumer's queue: events indexed from `slot.live_from` on go in.
    pub fn add_consumer(&mut self, tenant: TenantId, slot: ConsumerSlot) {
        self.inboxes
            .entry(InboxKey {
                tenant,
                consumer: slot.id,
            })
            .or_default();
        self.consumers.entry(tenant).or_default().push(slot);
    }

    /// Puts an event committed before a new consumer's `live_from` into its queue (its
    /// backfill), unless it is gone from the log or queued already. Returns whether it
    /// went in.
    pub fn backfill(&mut self, key: InboxKey, id: EventId, type_name: &[u8]) -> bool {
        let seq = id.sequence();
        let Some(i) = segment_of(&self.segments, seq) else {
            return false;
        };
        let seg = &mut self.segments[i];
        let at = (seq.0 - seg.base_seq) as usize;
        if matches!(seg.states[at], STATE_DELETED | STATE_EXPIRED) {
            return false;
        }
        let Some(type_id) = self.types.get(type_name) else {
            return false;
        };
        let Some(queue) = self.inboxes.get_mut(&key) else {
            return false;
        };
        if queue.get(seq.0).is_some() {
            return false;
        }
        let fresh = Pending {
            type_id,
            delivery_count: 0,
            lease_until: 0,
        };
        queue.insert(seq.0, id.millis(), fresh);
        seg.pending += 1;
        true
    }

    /// Drops a named consumer: its slot, its queue, and the pins its entries held.
    pub fn remove_consumer(&mut self, key: InboxKey) {
        if let Some(slots) = self.consumers.get_mut(&key.tenant) {
            slots.retain(|s| s.id != key.consumer);
        }
        if let Some(mut queue) = self.inboxes.remove(&key) {
            for seq in queue.remove_range(0, u64::MAX) {
                if let Some(i) = segment_of(&self.segments, Sequence(seq)) {
                    self.segments[i].pending -= 1;
                }
            }
        }
    }

    /// The delivery state of `id` in an inbox, if it is pending there. The whole id must
    /// match: sequence and receive time (the salt is the caller's to check).
    pub fn pending(&self, inbox: InboxKey, id: EventId) -> Option<&Pending> {
        self.inboxes
            .get(&inbox)
            .and_then(|queue| queue.get_exact(id.sequence().0, id.millis()))
    }

    /// Like [`Index::pending`], to change the entry (a nack, an extension).
    pub fn pending_mut(&mut self, inbox: InboxKey, id: EventId) -> Option<&mut Pending> {
        self.inboxes
            .get_mut(&inbox)
            .and_then(|queue| queue.get_exact_mut(id.sequence().0, id.millis()))
    }

    /// Whether a named consumer would have taken the event at `seq` (of its tenant,
    /// after its start, of a type it takes), whatever it did with it since.
    pub fn consumer_takes(&self, inbox: InboxKey, seq: Sequence) -> bool {
        let Some(slot) = self
            .consumers
            .get(&inbox.tenant)
            .and_then(|slots| slots.iter().find(|s| s.id == inbox.consumer))
        else {
            return false;
        };
        let Some(i) = segment_of(&self.segments, seq) else {
            return false;
        };
        let seg = &self.segments[i];
        let (tenant, type_id) = self.streams.get(seg.keys[(seq.0 - seg.base_seq) as usize]);
        seq.0 > slot.start_after
            && tenant == inbox.tenant
            && slot.takes_name(self.types.name(type_id))
    }

    /// Applies one settled sequence of a durable settle record (the writer's
    /// publication, and recovery, both come here).
    pub fn apply_settle(&mut self, inbox: InboxKey, seq: Sequence, how: Settle, at: UnixMs) {
        let tenant = inbox.tenant;
        match how {
            Settle::Ack if inbox.consumer == ConsumerId::DEFAULT => {
                self.settle(tenant, seq, STATE_ACKED, at);
            }
            Settle::Ack => self.consumer_ack(inbox, seq, at),
            Settle::Delete => {
                self.settle(tenant, seq, STATE_DELETED, at);
            }
            Settle::Dead | Settle::Requeue => {
                let entry = self
                    .inboxes
                    .get_mut(&inbox)
                    .and_then(|queue| queue.get_mut(seq.0));
                if let Some(p) = entry {
                    if how == Settle::Dead {
                        p.lease_until = DEAD_UNTIL;
                    } else if p.is_dead() {
                        p.lease_until = 0;
                        p.delivery_count = 0;
                    }
                }
            }
        }
    }

    /// A named consumer's ack: its entry goes, and the pin it held.
    fn consumer_ack(&mut self, inbox: InboxKey, seq: Sequence, at: UnixMs) {
        let Some(i) = segment_of(&self.segments, seq) else {
            return;
        };
        let Some(p) = self
            .inboxes
            .get_mut(&inbox)
            .and_then(|queue| queue.remove(seq.0))
        else {
            return;
        };
        let seg = &mut self.segments[i];
        seg.pending -= 1;
        seg.settled_last = seg.settled_last.max(at);
        seg.set_consumer_count(
            inbox.consumer,
            (seq.0 - seg.base_seq) as usize,
            p.delivery_count,
        );
    }

    /// Moves an event to `state` (acked or deleted) in its tenant's default inbox; a
    /// delete also takes it out of every named consumer. Returns whether anything
    /// changed.
    pub fn settle(&mut self, tenant: TenantId, seq: Sequence, state: u8, at: UnixMs) -> bool {
        let Some(i) = segment_of(&self.segments, seq) else {
            return false;
        };
        let removed = self
            .inboxes
            .get_mut(&tenant.into())
            .and_then(|queue| queue.remove(seq.0));
        let was_pending = removed.is_some();
        let seg = &mut self.segments[i];
        let at_i = (seq.0 - seg.base_seq) as usize;
        if let Some(p) = removed {
            seg.acked_counts[at_i] = u8::try_from(p.delivery_count).unwrap_or(u8::MAX);
        }
        let slot = &mut seg.states[at_i];
        if *slot == STATE_DELETED || *slot == STATE_EXPIRED || *slot == state {
            return false;
        }
        if was_pending {
            seg.pending -= 1;
        } else if *slot == STATE_PENDING {
            // Pending under another tenant: not ours to settle.
            return false;
        }
        if state == STATE_DELETED {
            // The queues are the tenant's own, so only its events can be in them.
            for c in self.consumers.get(&tenant).into_iter().flatten() {
                let key = InboxKey {
                    tenant,
                    consumer: c.id,
                };
                if let Some(queue) = self.inboxes.get_mut(&key) {
                    if queue.remove(seq.0).is_some() {
                        seg.pending -= 1;
                    }
                }
            }
        }
        *slot = state;
        seg.settled_last = seg.settled_last.max(at);
        true
    }
}
