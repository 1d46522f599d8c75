//! The group-commit writer: one thread that owns the tail of the log.
//!
//! Callers put commands on the bounded [`commit_queue`](super::commit_queue) and wait
//! on a oneshot. The writer takes every command waiting (up to `batch_bytes_max`),
//! assigns sequences, resolves idempotency keys, encodes one batch frame, and issues one
//! `pwrite` and one `fdatasync`. Only then does it publish the events to the indexes and
//! complete the waiters. Sketch: a sync costs ~0.2 ms on this class of disk, so at most
//! ~5k commits/s; at 100 concurrent producers each commit carries ~100 events, which is
//! how one thread reaches hundreds of thousands of durable events per second.
//!
//! Because sequencing, dedup and the write all happen on this one thread, in one batch
//! at a time, a failed commit can be rolled back completely: nothing of it was published.
//!
//! The sync itself runs on [`Syncer`]'s thread, so that the next batch is encoded and
//! written while the previous one syncs. At most one batch is in flight. It is
//! published, and its waiters completed, before the batch after it, so answers keep
//! commit order. If its sync fails, the batch written after it fails too, newest first.
//!
//! One job per module, all on this one thread:
//! - [`stage`]: commands into the batch (sequencing, dedup, settle checks);
//! - [`commit`]: the write, the sync (here or on the syncer) and rolling back;
//! - [`publish`]: a durable batch into the index, the checkpoint, the feed, the waiters;
//! - [`roll`]: sealing the active segment and starting the next;
//! - retention runs from here too, but lives in [`super::retention`].

mod batch;
mod commit;
mod publish;
mod roll;
mod stage;

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use self::batch::Batch;
use super::codec::{self, BatchEncoder};
use super::commit_queue::{Empty, QueueReceiver};
use super::config::{Durability, EmbeddedConfig};
use super::counters::Counters;
use super::error::EngineError;
use super::idempotency::IdempotencyIndex;
use super::index::Index;
use super::sidecar::SidecarBuilder;
use super::spare::SparePool;
use super::syncer::Syncer;
use super::type_names::TypeNames;
use crate::event_id::EventId;
use crate::feed::FeedSender;
use crate::types::{AppendOutcome, NewEvent, Settle, SettleOutcome, UnixMs};

/// A unit of work for the writer.
pub(crate) enum Command {
    /// Make events durable.
    Append {
        /// The events.
        events: Vec<NewEvent>,
        /// Where the outcome goes.
        done: oneshot::Sender<Result<Vec<AppendOutcome>, EngineError>>,
    },
    /// Ack or delete events.
    Settle {
        /// Whose inbox (a delete is the log's, whichever inbox asks).
        inbox: crate::types::InboxKey,
        /// Which.
        ids: Vec<EventId>,
        /// Ack or delete.
        how: Settle,
        /// For acks under leases: each id's lease generation, in order, which must be
        /// the event's delivery count still (else the outcome is `LeaseExpired`).
        leases: Option<Vec<u32>>,
        /// Where the outcome goes.
        done: oneshot::Sender<Result<Vec<SettleOutcome>, EngineError>>,
    },
    /// Write a control record (a subscription's progress or a replay request).
    /// `done`, when set, is completed once it is durable; a pull record's sender does
    /// not wait (losing it in a crash only hands its events out again).
    Control {
        /// The record.
        control: super::control::Control,
        /// Where the outcome goes, if anyone waits.
        done: Option<oneshot::Sender<Result<(), EngineError>>>,
    },
    /// Make everything so far durable, whatever the durability mode.
    Sync {
        /// Completed after the sync.
        done: oneshot::Sender<Result<(), EngineError>>,
    },
}

impl Command {
    /// The bytes this command may add to a batch: what the commit queue charges it, and
    /// what staging checks against the room left in the active segment.
    pub(crate) fn charged_bytes(&self) -> usize {
        match self {
            Command::Append { events, .. } => events.iter().map(NewEvent::queued_bytes).sum(),
            Command::Settle { ids, .. } => 32 + 8 * ids.len(),
            Command::Control { control, .. } => control.bound_bytes(),
            Command::Sync { .. } => 0,
        }
    }

    /// Answers the command with an error without staging it.
    fn fail(self, error: EngineError) {
        match self {
            Command::Append { done, .. } => drop(done.send(Err(error))),
            Command::Settle { done, .. } => drop(done.send(Err(error))),
            Command::Control { done, .. } => {
                if let Some(done) = done {
                    drop(done.send(Err(error)))
                }
            }
            Command::Sync { done } => drop(done.send(Err(error))),
        }
    }
}

/// How often retention and dedup expiry run.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// The handles the writer shares with the store's readers, each for one purpose:
/// nothing else crosses the thread boundary.
pub(crate) struct Links {
    /// The in-memory index; the writer publishes into it, readers read it.
    pub(crate) index: Arc<Mutex<Index>>,
    /// Where commits are announced.
    pub(crate) feed: FeedSender,
    /// The engine's counters.
    pub(crate) counters: Arc<Counters>,
    /// Set after a failed sync: the store then refuses every write.
    pub(crate) halted: Arc<AtomicBool>,
    /// Long polls' wake-ups, rung after each publication.
    pub(crate) signals: Arc<super::signals::InboxSignals>,
}

/// The writer's starting point, from recovery.
pub(crate) struct Start {
    /// The active segment: its file, path, write position and capacity.
    pub(crate) active: (Arc<File>, PathBuf, u64, u64),
    /// The first sequence of the active segment.
    pub(crate) active_base: u64,
    /// The next sequence to assign.
    pub(crate) next_seq: u64,
    /// The latest receive time recovered, so ids stay time-ordered across restarts.
    pub(crate) last_ms: UnixMs,
    /// The dedup index, rebuilt.
    pub(crate) idempotency: IdempotencyIndex,
    /// The store's id salt.
    pub(crate) salt: u16,
}

/// The segment being appended to.
struct Active {
    file: Arc<File>,
    path: PathBuf,
    base_seq: u64,
    write_pos: u64,
    capacity: u64,
}

/// A written batch whose sync is running on the syncer.
struct InFlight {
    batch: Batch,
    path: PathBuf,
}

/// The writer thread's state. Everything here is owned by that one thread.
pub(crate) struct Writer {
    config: EmbeddedConfig,
    salt: u16,
    links: Links,
    queue: QueueReceiver,
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
    /// A command that did not fit the active segment: it starts the next batch.
    carry: Option<Command>,
    dirty_since: Option<Instant>,
    /// When the latest sync began, and how many commands the latest group commit
    /// carried, for `sync_interval_min`.
    last_sync_started: Option<Instant>,
    last_commit_commands: usize,
    last_housekeeping: Instant,
    spares: Option<SparePool>,
    /// Group commits written into the active segment (for the spare policy).
    segment_commits: u64,
}

impl Writer {
    /// Builds the writer from recovered state.
    pub(crate) fn new(
        config: EmbeddedConfig,
        links: Links,
        queue: QueueReceiver,
        start: Start,
        syncer: Syncer,
    ) -> Self {
        let (file, path, write_pos, capacity) = start.active;
        Writer {
            config,
            salt: start.salt,
            links,
            queue,
            active: Active {
                file,
                path,
                base_seq: start.active_base,
                write_pos,
                capacity,
            },
            next_seq: start.next_seq,
            last_ms: start.last_ms,
            idempotency: start.idempotency,
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
    pub(crate) fn run(mut self) {
        self.spares = match SparePool::start(&self.config.dir, self.config.segment_bytes) {
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
                None if self.in_flight.is_some() => match self.queue.try_recv() {
                    Ok(cmd) => cmd,
                    Err(Empty::Now) => {
                        self.land();
                        continue;
                    }
                    Err(Empty::Closed) => break,
                },
                None => match self.queue.recv_timeout(self.idle_wait()) {
                    Ok(cmd) => cmd,
                    Err(Empty::Now) => {
                        self.on_idle();
                        continue;
                    }
                    Err(Empty::Closed) => break,
                },
            };
            self.pace_sync();
            self.begin_batch();
            self.stage(first);
            while self.carry.is_none() && self.encoder.len() < self.config.batch_bytes_max {
                match self.queue.try_recv() {
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
            if let Err(e) = self.active.file.sync_data() {
                tracing::error!(error = %e, path = %self.active.path.display(), "the final sync at shutdown failed");
            }
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
        let floor = self.config.sync_interval_min;
        if floor.is_zero()
            || self.config.durability != Durability::Fsync
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
            (self.config.durability, self.dirty_since)
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
        let Durability::Interval(every) = self.config.durability else {
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
        self.last_ms = self.last_ms.max(self.config.clock.now_ms());
        self.last_ms
    }

    fn begin_batch(&mut self) {
        self.encoder.begin();
        self.batch.clear();
    }

    /// Expires dedup keys and pending events, and removes the segments retention
    /// allows (see [`super::retention`]).
    fn housekeeping(&mut self) {
        self.last_housekeeping = Instant::now();
        let now = self.now();
        self.idempotency.expire(now);
        super::retention::run(&self.config, &self.links, self.active.base_seq, now);
    }
}
