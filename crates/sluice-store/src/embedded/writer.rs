//! The group-commit writer: one thread that owns the tail of the log.
//!
//! Callers put commands on a bounded queue and wait on a oneshot. The writer takes every
//! command waiting (up to `batch_bytes_max`), assigns sequences, resolves idempotency
//! keys, encodes one batch frame, and issues one `pwrite` and one `fdatasync`. Only then
//! does it publish the events to the indexes and complete the waiters. Sketch: a sync
//! costs ~0.2 ms on this class of disk, so at most ~5k commits/s; at 100 concurrent
//! producers each commit carries ~100 events, which is how one thread reaches hundreds of
//! thousands of durable events per second.
//!
//! Because sequencing, dedup and the write all happen on this one thread, in one batch
//! at a time, a failed commit can be rolled back completely: nothing of it was published.
//!
//! The sync itself runs on [`Syncer`]'s thread, so that the next batch is encoded and
//! written while the previous one syncs. At most one batch is in flight. It is
//! published, and its waiters completed, before the batch after it, so answers keep
//! commit order. If its sync fails, the batch written after it fails too, newest first.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::codec::{self, BatchEncoder, EventRecord, IdempotencyHashes, Record, SegmentHeader};
use super::config::Durability;
use super::idempotency::{key_hash, IdempotencyIndex};
use super::index::{SegmentMeta, STATE_ACKED, STATE_DELETED, STATE_EXPIRED, STATE_PENDING};
use super::sidecar::{IndexedSettle, SidecarBuilder};
use super::spare::BuiltCheckpoint;
use super::syncer::{Synced, Syncer};
use super::type_names::TypeNames;
use super::{segment, Shared};
use crate::error::StoreError;
use crate::event_id::EventId;
use crate::store::SYNC_LATENCY_BOUNDS_US;
use crate::types::{
    AppendOutcome, Committed, NewEvent, Sequence, Settle, SettleOutcome, TenantId, UnixMs,
};

/// A unit of work for the writer.
pub enum Command {
    /// Make events durable.
    Append {
        /// The events.
        events: Vec<NewEvent>,
        /// Bytes charged against the queue budget, returned on dequeue.
        charged: usize,
        /// Where the outcome goes.
        done: oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
    },
    /// Ack or delete events.
    Settle {
        /// Whose events.
        tenant: TenantId,
        /// Which.
        ids: Vec<EventId>,
        /// Ack or delete.
        how: Settle,
        /// Where the outcome goes.
        done: oneshot::Sender<Result<Vec<SettleOutcome>, StoreError>>,
    },
    /// Make everything so far durable, whatever the durability mode.
    Sync {
        /// Completed after the sync.
        done: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// How often retention and dedup expiry run.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

struct Active {
    file: Arc<File>,
    path: PathBuf,
    base_seq: u64,
    write_pos: u64,
    capacity: u64,
}

/// A command staged into the current batch, with what it needs once durable.
enum Staged {
    Append {
        outcomes: Vec<AppendOutcome>,
        done: oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
    },
    Settle {
        outcomes: Vec<SettleOutcome>,
        done: oneshot::Sender<Result<Vec<SettleOutcome>, StoreError>>,
    },
    Sync {
        done: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl Staged {
    /// Completes the waiter: its outcomes, or a copy of the commit's error.
    fn finish(self, failure: Option<&StoreError>) {
        match (self, failure) {
            (Staged::Append { outcomes, done }, None) => drop(done.send(Ok(outcomes))),
            (Staged::Settle { outcomes, done }, None) => drop(done.send(Ok(outcomes))),
            (Staged::Sync { done }, None) => drop(done.send(Ok(()))),
            (Staged::Append { done, .. }, Some(e)) => drop(done.send(Err(e.replicate()))),
            (Staged::Settle { done, .. }, Some(e)) => drop(done.send(Err(e.replicate()))),
            (Staged::Sync { done }, Some(e)) => drop(done.send(Err(e.replicate()))),
        }
    }
}

struct NewIndexEntry {
    seq: Sequence,
    tenant: TenantId,
    event_type: Bytes,
    offset: u32,
    received_at: UnixMs,
    idempotency: Option<IdempotencyHashes>,
}

/// What one group commit stages, kept until it is durable and published.
#[derive(Default)]
struct Batch {
    staged: Vec<Staged>,
    new_events: Vec<NewIndexEntry>,
    new_keys: Vec<[u8; 16]>,
    /// This batch's ack and delete records, for the index and the checkpoint.
    settle_records: Vec<IndexedSettle>,
    /// The states this batch gives events, so that an ack staged after it, in it or in
    /// the next batch while this one syncs, sees them before the index does. Keyed by
    /// the whole id: a lookup by sequence alone would let an id that shares only the
    /// sequence of a staged event act on that event.
    overlay: HashMap<(TenantId, EventId), u8>,
    wants_sync: bool,
    /// The active segment's length once this batch is written.
    end_pos: u64,
    /// Bytes this batch wrote.
    bytes: u64,
}

impl Batch {
    /// Empties the batch, keeping its allocations for the next one.
    fn clear(&mut self) {
        self.staged.clear();
        self.new_events.clear();
        self.new_keys.clear();
        self.settle_records.clear();
        self.overlay.clear();
        self.wants_sync = false;
        self.end_pos = 0;
        self.bytes = 0;
    }
}

/// A written batch whose sync is running on the syncer.
struct InFlight {
    batch: Batch,
    path: PathBuf,
}

/// The writer thread's state. Everything here is owned by that one thread.
pub struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Command>,
    active: Active,
    next_seq: u64,
    last_ms: UnixMs,
    idempotency: IdempotencyIndex,
    encoder: BatchEncoder,
    /// The batch being staged.
    batch: Batch,
    /// The batch before it, written and being synced.
    in_flight: Option<InFlight>,
    /// A finished batch's emptied buffers, for the next one.
    recycled: Batch,
    syncer: Syncer,
    /// The active segment's index checkpoint, built from what is committed.
    checkpoint: SidecarBuilder,
    /// Shared copies of event type names, so that publishing does not read them from
    /// request bodies gone cold (see `type_names`).
    type_names: TypeNames,
    carry: Option<Command>,
    dirty_since: Option<Instant>,
    /// When the latest sync began, and how many commands the latest group commit
    /// carried, for `sync_interval_min`.
    last_sync_started: Option<Instant>,
    last_commit_commands: usize,
    last_housekeeping: Instant,
    spares: Option<super::spare::SparePool>,
    /// Group commits written into the active segment (for the spare policy).
    segment_commits: u64,
}

impl Writer {
    /// Builds the writer from recovered state.
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Command>,
        recovered: super::recovery::Recovered,
        syncer: Syncer,
    ) -> Self {
        let (file, path, write_pos, capacity) = recovered.active;
        let base_seq = recovered
            .index
            .segments
            .last()
            .map_or(recovered.next_seq.0, |s| s.base_seq);
        *shared.index.lock() = recovered.index;
        Writer {
            shared,
            rx,
            active: Active {
                file,
                path,
                base_seq,
                write_pos,
                capacity,
            },
            next_seq: recovered.next_seq.0,
            last_ms: recovered.last_ms,
            idempotency: recovered.idempotency,
            encoder: BatchEncoder::default(),
            batch: Batch::default(),
            in_flight: None,
            recycled: Batch::default(),
            syncer,
            // Records written before this process started are not seen here; that
            // segment's checkpoint is built by reading it back when it is sealed.
            checkpoint: SidecarBuilder::new(write_pos == codec::SEGMENT_HEADER_LEN as u64),
            type_names: TypeNames::default(),
            carry: None,
            dirty_since: None,
            last_sync_started: None,
            last_commit_commands: 0,
            last_housekeeping: Instant::now(),
            spares: None,
            segment_commits: 0,
        }
    }

    /// Runs until every sender is gone, then syncs and returns.
    pub fn run(mut self) {
        let config = &self.shared.config;
        self.spares = match super::spare::SparePool::start(&config.dir, config.segment_bytes) {
            Ok(pool) => Some(pool),
            Err(e) => {
                tracing::warn!(error = %e, "no spare-segment preparer; segments will be created on demand");
                None
            }
        };
        self.housekeeping();
        loop {
            let first = match self.carry.take() {
                Some(cmd) => cmd,
                // A batch is syncing: start the next one if anything is waiting, else
                // land it (its waiters must not wait for the next command to arrive).
                None if self.in_flight.is_some() => match self.rx.try_recv() {
                    Ok(cmd) => cmd,
                    Err(TryRecvError::Empty) => {
                        self.land();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                },
                None => match self.rx.recv_timeout(self.idle_wait()) {
                    Ok(cmd) => cmd,
                    Err(RecvTimeoutError::Timeout) => {
                        self.on_idle();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            self.pace_sync();
            self.begin_batch();
            self.stage(first);
            while self.carry.is_none() && self.encoder.len() < self.shared.config.batch_bytes_max {
                match self.rx.try_recv() {
                    Ok(cmd) => self.stage(cmd),
                    Err(_) => break,
                }
            }
            self.commit();
            self.sync_if_due();
            if self.last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                self.housekeeping();
            }
        }
        self.land();
        // Shutdown: whatever was written in interval or none mode is synced now.
        if self.dirty_since.is_some() {
            let _ = self.active.file.sync_data();
        }
    }

    /// Waits out what remains of `sync_interval_min` since the last sync began, so
    /// that what arrives meanwhile shares the next one (see the setting for why).
    /// Called with a command in hand, before the batch is gathered.
    ///
    /// Only when the previous group commit carried more than one command: a lone
    /// client's next request cannot arrive while it waits for this one, so waiting
    /// would batch nothing and only cap its rate (as PostgreSQL's `commit_siblings`
    /// gates its `commit_delay`).
    ///
    /// A batch still syncing is landed as soon as its sync finishes, within the wait,
    /// so that its waiters are not held for the floor.
    fn pace_sync(&mut self) {
        let floor = self.shared.config.sync_interval_min;
        if floor.is_zero()
            || self.shared.config.durability != Durability::Fsync
            || self.last_commit_commands < 2
        {
            return;
        }
        if let Some(last) = self.last_sync_started {
            if let Some(in_flight) = self.in_flight.take() {
                match self.syncer.wait_until(last + floor) {
                    Some(synced) => {
                        self.landed(in_flight, synced);
                    }
                    None => self.in_flight = Some(in_flight),
                }
            }
            let remaining = floor.saturating_sub(last.elapsed());
            if !remaining.is_zero() {
                std::thread::sleep(remaining);
            }
        }
    }

    fn idle_wait(&self) -> Duration {
        let mut wait = HOUSEKEEPING_EVERY.saturating_sub(self.last_housekeeping.elapsed());
        if let (Durability::Interval(every), Some(since)) =
            (self.shared.config.durability, self.dirty_since)
        {
            wait = wait.min(every.saturating_sub(since.elapsed()));
        }
        wait.max(Duration::from_millis(1))
    }

    /// Reached only from an empty queue with nothing in flight (the loop lands an
    /// in-flight batch rather than wait for commands).
    fn on_idle(&mut self) {
        self.sync_if_due();
        if self.last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
            self.housekeeping();
        }
    }

    /// Interval mode: syncs once the oldest unsynced write is an interval old. Checked
    /// after every commit as well as when idle: a producer that never lets the queue go
    /// idle must not postpone it (it did: 1 sync in 620 ms of back-to-back appends with
    /// a 20 ms interval, where 30 were due).
    fn sync_if_due(&mut self) {
        let Durability::Interval(every) = self.shared.config.durability else {
            return;
        };
        if self
            .dirty_since
            .is_some_and(|since| since.elapsed() >= every)
            && self.land()
        {
            if let Err(e) = self.sync() {
                tracing::error!(error = %e, "interval sync failed; the store stops accepting writes");
            }
        }
    }

    fn now(&mut self) -> UnixMs {
        // Receive times never go backwards, so ids stay ordered even if the clock does.
        self.last_ms = self.last_ms.max(self.shared.clock.now_ms());
        self.last_ms
    }

    fn begin_batch(&mut self) {
        self.encoder.begin();
        self.batch.clear();
    }

    /// Adds one command to the batch, or sets it aside as `carry` when it would not fit
    /// in the active segment (it then starts the next batch, after a roll-over).
    fn stage(&mut self, cmd: Command) {
        let needed = match &cmd {
            Command::Append { events, .. } => events.iter().map(NewEvent::queued_bytes).sum(),
            Command::Settle { ids, .. } => 32 + 8 * ids.len(),
            Command::Sync { .. } => 0,
        };
        let room = self.active.capacity - self.active.write_pos;
        if (self.encoder.len() + needed) as u64 > room {
            if !self.encoder.is_empty() {
                self.carry = Some(cmd);
                return;
            }
            if self.active.write_pos > codec::SEGMENT_HEADER_LEN as u64 {
                if let Err(e) = self.roll_segment() {
                    return fail(cmd, e, &self.shared);
                }
            }
        }
        if self.shared.halted.load(Ordering::Relaxed) {
            return fail(cmd, StoreError::Halted, &self.shared);
        }
        match cmd {
            Command::Append {
                events,
                charged,
                done,
            } => {
                self.shared
                    .queued_bytes
                    .fetch_sub(charged, Ordering::Relaxed);
                self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                // One receive time per command: its events arrived together.
                let received_at = self.now();
                let outcomes = events
                    .iter()
                    .map(|e| self.stage_event(e, received_at))
                    .collect();
                self.batch.staged.push(Staged::Append { outcomes, done });
            }
            Command::Settle {
                tenant,
                ids,
                how,
                done,
            } => {
                self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                match self.stage_settle(tenant, &ids, how) {
                    Ok(outcomes) => self.batch.staged.push(Staged::Settle { outcomes, done }),
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                }
            }
            Command::Sync { done } => {
                self.shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                self.batch.wants_sync = true;
                self.batch.staged.push(Staged::Sync { done });
            }
        }
    }

    fn stage_event(&mut self, e: &NewEvent, received_at: UnixMs) -> AppendOutcome {
        let salt = self.shared.salt;
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
        if let Some(h) = hashes {
            self.idempotency
                .insert(h.key_hash, seq, received_at, h.fingerprint);
            self.batch.new_keys.push(h.key_hash);
        }
        self.batch.new_events.push(NewIndexEntry {
            seq,
            tenant: e.tenant,
            event_type: self.type_names.shared(&e.event_type),
            offset: offset as u32,
            received_at,
            idempotency: hashes,
        });
        AppendOutcome::Created {
            id: EventId::new(received_at, seq, salt),
            received_at,
        }
    }

    fn stage_settle(
        &mut self,
        tenant: TenantId,
        ids: &[EventId],
        how: Settle,
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        let target = settled_state(how);
        let mut outcomes = Vec::with_capacity(ids.len());
        let mut changed = Vec::new();
        let mut undo = Vec::new();
        for &id in ids {
            let seq = id.sequence();
            let key = (tenant, id);
            let staged = self.batch.overlay.get(&key).or_else(|| {
                let syncing = self.in_flight.as_ref()?;
                syncing.batch.overlay.get(&key)
            });
            let state = match staged {
                Some(&s) => Some(s),
                None if id.salt() != self.shared.salt => None,
                None => match self.current_state(tenant, id) {
                    Ok(state) => state,
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
            let outcome = match state {
                None | Some(STATE_DELETED) | Some(STATE_EXPIRED) => SettleOutcome::NotFound,
                Some(s) if s == target => SettleOutcome::AlreadyDone,
                Some(_) => SettleOutcome::Done,
            };
            if outcome == SettleOutcome::Done {
                undo.push((key, self.batch.overlay.insert(key, target)));
                changed.push(seq);
            }
            outcomes.push(outcome);
        }
        if !changed.is_empty() {
            let at = self.now();
            self.encoder.push_settle(how, tenant, at, &changed);
            self.batch.settle_records.push(IndexedSettle {
                how,
                tenant,
                at,
                seqs: changed,
            });
        }
        Ok(outcomes)
    }

    /// The committed state of `id` as seen by `tenant`; `None` if it is not theirs, or
    /// if `id` is not exactly the id of an event (the caller checked the salt; here the
    /// sequence and the time part must both match).
    fn current_state(&self, tenant: TenantId, id: EventId) -> Result<Option<u8>, StoreError> {
        let seq = id.sequence();
        let location = {
            let index = self.shared.index.lock();
            if index.pending(tenant, id).is_some() {
                return Ok(Some(STATE_PENDING));
            }
            match index.locate(seq) {
                Some(loc) if loc.state == STATE_ACKED => loc,
                // Pending under another tenant, deleted, expired, or unknown.
                _ => return Ok(None),
            }
        };
        // Acked events are not in any inbox, so ownership is read from the record
        // itself (a rare path: re-acks, and deletes of acked events).
        let bytes = segment::read_record_at(&location.file, &location.path, location.offset)?;
        match codec::read_record(&bytes) {
            Ok(Record::Event(e)) if e.tenant == tenant && e.received_at == id.millis() => {
                Ok(Some(STATE_ACKED))
            }
            _ => Ok(None),
        }
    }

    /// Writes the staged batch, lands the one before it, then hands this one to the
    /// syncer (or, when it needs no sync, publishes it at once).
    fn commit(&mut self) {
        self.last_commit_commands = self.batch.staged.len();
        let written = self.write_batch();
        // The previous batch is published before this one: answers keep commit order,
        // and nothing answered here can rest on a batch that is not yet durable.
        if !self.land() {
            return;
        }
        let must_sync = (self.batch.wants_sync
            || self.shared.config.durability == Durability::Fsync)
            && self.dirty_since.is_some();
        if written.is_ok()
            && must_sync
            && self.batch.bytes >= self.shared.config.sync_overlap_min_bytes
        {
            self.dispatch_sync();
            return;
        }
        let durable = written.and_then(|()| {
            if !must_sync {
                return Ok(());
            }
            // Too small to be worth the hand-off (`sync_overlap_min_bytes`): sync here.
            let delay = self.shared.config.commit_delay;
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            self.sync()
        });
        let batch = self.take_batch();
        match durable {
            Ok(()) => self.publish(batch),
            Err(e) => self.roll_back(batch, &e),
        }
    }

    /// Takes the staged batch out, leaving the last finished batch's emptied buffers in
    /// its place for the next one.
    fn take_batch(&mut self) -> Batch {
        std::mem::replace(&mut self.batch, std::mem::take(&mut self.recycled))
    }

    fn write_batch(&mut self) -> Result<(), StoreError> {
        if !self.encoder.is_empty() {
            let bytes = self.encoder.finish();
            let len = bytes.len() as u64;
            if let Err(e) = self.active.file.write_all_at(bytes, self.active.write_pos) {
                // A partial write may have left part of the frame behind. Zero it (best
                // effort) so the next batch, written at the same position, is followed
                // by clean zero fill rather than a fragment.
                let zeros = vec![0u8; bytes.len()];
                let _ = self.active.file.write_all_at(&zeros, self.active.write_pos);
                return Err(StoreError::io(&self.active.path, e));
            }
            self.active.write_pos += len;
            self.batch.bytes = len;
            self.segment_commits += 1;
            self.dirty_since.get_or_insert_with(Instant::now);
        }
        self.batch.end_pos = self.active.write_pos;
        Ok(())
    }

    /// Starts syncing the active segment, which covers everything written so far, and
    /// sets the staged batch aside until the sync lands.
    fn dispatch_sync(&mut self) {
        self.last_sync_started = Some(Instant::now());
        self.dirty_since = None;
        let batch = self.take_batch();
        let path = self.active.path.clone();
        if let Err(source) = self.syncer.dispatch(self.active.file.clone()) {
            self.fail_sync(batch, path, source);
            return;
        }
        self.in_flight = Some(InFlight { batch, path });
    }

    /// Waits for the batch in flight, if any, and publishes it. Returns false if its
    /// sync failed: it has then been failed, and so has the batch staged after it.
    fn land(&mut self) -> bool {
        match self.in_flight.take() {
            Some(in_flight) => {
                let synced = self.syncer.wait();
                self.landed(in_flight, synced)
            }
            None => true,
        }
    }

    /// Publishes a batch whose sync finished, or fails it (see [`Writer::land`]).
    fn landed(&mut self, in_flight: InFlight, synced: Synced) -> bool {
        match synced.result {
            Ok(()) => {
                self.count_sync(synced.took);
                self.publish(in_flight.batch);
                true
            }
            Err(source) => {
                self.fail_sync(in_flight.batch, in_flight.path, source);
                false
            }
        }
    }

    /// A failed sync: the store stops writing, and the batch and everything staged
    /// after it fail, newest first so that sequence numbers roll back in order.
    fn fail_sync(&mut self, batch: Batch, path: PathBuf, source: std::io::Error) {
        // After a failed fsync the kernel may have dropped the dirty pages while
        // marking them clean; retrying would "succeed" over lost data. Stop writing.
        self.shared.halted.store(true, Ordering::Relaxed);
        let error = StoreError::SyncFailed { path, source };
        let after = self.take_batch();
        self.roll_back(after, &error);
        self.roll_back(batch, &error);
    }

    /// Syncs on this thread (small batches, and interval mode's timer); nothing may be
    /// in flight.
    fn sync(&mut self) -> Result<(), StoreError> {
        if self.dirty_since.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        self.last_sync_started = Some(started);
        if let Err(source) = self.active.file.sync_data() {
            // See `fail_sync`: a failed fsync cannot be retried.
            self.shared.halted.store(true, Ordering::Relaxed);
            return Err(StoreError::SyncFailed {
                path: self.active.path.clone(),
                source,
            });
        }
        self.dirty_since = None;
        self.count_sync(started.elapsed());
        Ok(())
    }

    fn count_sync(&self, took: Duration) {
        let stats = &self.shared.stats;
        let micros = took.as_micros() as u64;
        stats.sync_micros_total.fetch_add(micros, Ordering::Relaxed);
        let bucket = SYNC_LATENCY_BOUNDS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(SYNC_LATENCY_BOUNDS_US.len() - 1);
        stats.sync_latency[bucket].fetch_add(1, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
    }

    fn publish(&mut self, mut batch: Batch) {
        let notify = self.shared.notify.receiver_count() > 0;
        let mut committed = Vec::new();
        {
            let mut index = self.shared.index.lock();
            for e in &batch.new_events {
                index.add_event(e.seq, e.tenant, &e.event_type, e.offset, e.received_at);
            }
            if let Some(seg) = index.segments.last_mut() {
                seg.bytes = seg.bytes.max(batch.end_pos);
            }
            for r in &batch.settle_records {
                for &seq in &r.seqs {
                    index.settle(r.tenant, seq, settled_state(r.how), r.at);
                }
            }
        }
        for e in &batch.new_events {
            self.checkpoint.event(
                e.offset,
                e.tenant,
                e.received_at,
                &e.event_type,
                e.idempotency,
            );
        }
        for s in batch.settle_records.drain(..) {
            self.checkpoint.settle(s);
        }
        if notify {
            let salt = self.shared.salt;
            committed.extend(batch.new_events.iter().map(|e| Committed {
                id: EventId::new(e.received_at, e.seq, salt),
                tenant: e.tenant,
                event_type: e.event_type.clone(),
            }));
        }
        self.shared
            .stats
            .events_appended
            .fetch_add(batch.new_events.len() as u64, Ordering::Relaxed);
        for staged in batch.staged.drain(..) {
            staged.finish(None);
        }
        if !committed.is_empty() {
            let _ = self.shared.notify.send(committed.into());
        }
        self.recycle(batch);
    }

    fn recycle(&mut self, mut batch: Batch) {
        batch.clear();
        self.recycled = batch;
    }

    fn roll_back(&mut self, mut batch: Batch, error: &StoreError) {
        // Nothing of this batch was published, so forgetting it is a complete undo:
        // sequences are reused and the batch's idempotency keys are forgotten.
        if let Some(first) = batch.new_events.first().map(|e| e.seq) {
            self.next_seq = first.0;
            for key in &batch.new_keys {
                self.idempotency.remove_since(key, first);
            }
        }
        for staged in batch.staged.drain(..) {
            staged.finish(Some(error));
        }
        self.recycle(batch);
    }

    /// Seals the active segment and starts a new one at the next sequence.
    fn roll_segment(&mut self) -> Result<(), StoreError> {
        // The sealed segment's last batch must be durable and in its checkpoint first.
        if !self.land() {
            return Err(StoreError::Halted);
        }
        let path = self.active.path.clone();
        let sealed = path.clone();
        // The sealed segment is synced and trimmed to its data in every durability mode,
        // so only the active segment can ever hold a torn tail.
        self.active
            .file
            .sync_data()
            .and_then(|()| self.active.file.set_len(self.active.write_pos))
            .and_then(|()| self.active.file.sync_all())
            .map_err(|e| StoreError::io(&path, e))?;
        self.dirty_since = None;
        // Trimmed: nothing more may go here, even if creating the next segment fails
        // (disk full) and a smaller command comes along.
        self.active.capacity = self.active.write_pos;
        let header = SegmentHeader {
            salt: self.shared.salt,
            base_seq: Sequence(self.next_seq),
        };
        let dir = &self.shared.config.dir;
        let written = self.active.write_pos - codec::SEGMENT_HEADER_LEN as u64;
        let commit_bytes_mean = written / self.segment_commits.max(1);
        self.segment_commits = 0;
        let (file, path, capacity) =
            match self.spares.as_mut().and_then(|p| p.take(commit_bytes_mean)) {
                Some(spare) => {
                    let capacity = spare.capacity;
                    let (file, path) = segment::promote(dir, spare, header)?;
                    (file, path, capacity)
                }
                None => {
                    let capacity = self.shared.config.segment_bytes;
                    let (file, path) = segment::create(dir, header, capacity)?;
                    (file, path, capacity)
                }
            };
        // The next segment exists: only now is the sealed one's checkpoint final (a failed
        // roll-over is retried, and must not find an emptied builder).
        let built = self.checkpoint.finish().map(|sidecar| BuiltCheckpoint {
            sidecar,
            header: SegmentHeader {
                salt: self.shared.salt,
                base_seq: Sequence(self.active.base_seq),
            },
            len: self.active.write_pos,
        });
        let file = Arc::new(file);
        let header_len = codec::SEGMENT_HEADER_LEN as u64;
        self.shared.index.lock().segments.push(SegmentMeta::new(
            self.next_seq,
            path.clone(),
            file.clone(),
            0,
            header_len,
        ));
        self.active = Active {
            file,
            path,
            base_seq: self.next_seq,
            write_pos: codec::SEGMENT_HEADER_LEN as u64,
            capacity,
        };
        if let Some(pool) = self.spares.as_mut() {
            pool.checkpoint(sealed, built);
        }
        Ok(())
    }

    /// Expires dedup keys and pending events, and removes segments retention allows.
    fn housekeeping(&mut self) {
        self.last_housekeeping = Instant::now();
        let now = self.now();
        self.idempotency.expire(now);
        let config = &self.shared.config;
        let pending_cutoff = now - config.retention_pending.as_millis() as i64;
        let acked_cutoff = now - config.retention_acked.as_millis() as i64;
        let mut removable = Vec::new();
        {
            let mut guard = self.shared.index.lock();
            let index = &mut *guard;
            let active_base = self.active.base_seq;
            // Pending events past retention: expire whole segments at a time.
            for seg in index.segments.iter_mut() {
                if seg.base_seq == active_base
                    || seg.pending == 0
                    || seg.received_last >= pending_cutoff
                {
                    continue;
                }
                let (lo, hi) = (seg.base_seq, seg.end_seq());
                let mut expired = 0;
                for inbox in index.inboxes.values_mut() {
                    for s in inbox.remove_range(lo, hi) {
                        seg.states[(s - lo) as usize] = STATE_EXPIRED;
                        expired += 1;
                    }
                }
                seg.pending = 0;
                self.shared
                    .stats
                    .pending_expired
                    .fetch_add(expired, Ordering::Relaxed);
            }
            // Segments go oldest first only, so an ack record is never removed while
            // the event it acks is still on disk (which would resurrect that event).
            while index.segments.len() > 1 {
                let seg = &index.segments[0];
                if seg.pending > 0 || seg.received_last.max(seg.settled_last) >= acked_cutoff {
                    break;
                }
                removable.push(index.segments.remove(0).path);
            }
        }
        if !removable.is_empty() {
            for path in &removable {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove an expired segment");
                }
                let _ = std::fs::remove_file(super::sidecar::path_for(path));
            }
            if let Err(e) = super::fsutil::sync_dir(&self.shared.config.dir) {
                tracing::warn!(error = %e, "could not sync the data directory after retention");
            }
            self.shared
                .stats
                .segments_purged
                .fetch_add(removable.len() as u64, Ordering::Relaxed);
        }
    }
}

/// The index state an ack or a delete leaves an event in.
fn settled_state(how: Settle) -> u8 {
    match how {
        Settle::Ack => STATE_ACKED,
        Settle::Delete => STATE_DELETED,
    }
}

fn fail(cmd: Command, error: StoreError, shared: &Shared) {
    shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
    match cmd {
        Command::Append { done, charged, .. } => {
            shared.queued_bytes.fetch_sub(charged, Ordering::Relaxed);
            let _ = done.send(Err(error));
        }
        Command::Settle { done, .. } => {
            let _ = done.send(Err(error));
        }
        Command::Sync { done } => {
            let _ = done.send(Err(error));
        }
    }
}
