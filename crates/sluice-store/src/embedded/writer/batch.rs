//! What one group commit carries from staging to publication: the waiters to answer,
//! the new index entries, the settle records, and the overlay of states it gives.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::super::codec::IdempotencyHashes;
use super::super::error::EngineError;
use super::super::sidecar::IndexedSettle;
use crate::event_id::EventId;
use crate::types::{AppendOutcome, Sequence, SettleOutcome, TenantId, UnixMs};

/// A command staged into the current batch, with what it needs once durable.
pub(super) enum Staged {
    Append {
        outcomes: Vec<AppendOutcome>,
        done: oneshot::Sender<Result<Vec<AppendOutcome>, EngineError>>,
    },
    Settle {
        outcomes: Vec<SettleOutcome>,
        done: oneshot::Sender<Result<Vec<SettleOutcome>, EngineError>>,
    },
    Sync {
        done: oneshot::Sender<Result<(), EngineError>>,
    },
    Control {
        done: Option<oneshot::Sender<Result<(), EngineError>>>,
    },
}

impl Staged {
    /// Completes the waiter: its outcomes, or a copy of the commit's error. A waiter
    /// that gave up (its request was dropped) is not an error.
    pub(super) fn finish(self, failure: Option<&EngineError>) {
        match (self, failure) {
            (Staged::Append { outcomes, done }, None) => drop(done.send(Ok(outcomes))),
            (Staged::Settle { outcomes, done }, None) => drop(done.send(Ok(outcomes))),
            (Staged::Sync { done }, None) => drop(done.send(Ok(()))),
            (Staged::Control { done: Some(done) }, None) => drop(done.send(Ok(()))),
            (Staged::Control { done: Some(done) }, Some(e)) => drop(done.send(Err(e.replicate()))),
            (Staged::Control { done: None }, _) => {}
            (Staged::Append { done, .. }, Some(e)) => drop(done.send(Err(e.replicate()))),
            (Staged::Settle { done, .. }, Some(e)) => drop(done.send(Err(e.replicate()))),
            (Staged::Sync { done }, Some(e)) => drop(done.send(Err(e.replicate()))),
        }
    }
}

/// One event written by this batch, as the index and the checkpoint will need it.
pub(super) struct NewIndexEntry {
    pub(super) seq: Sequence,
    pub(super) tenant: TenantId,
    /// A shared copy of the type name (see `type_names`).
    pub(super) event_type: Bytes,
    pub(super) offset: u32,
    pub(super) received_at: UnixMs,
    pub(super) idempotency: Option<IdempotencyHashes>,
}

/// The fields of an event the commit feed carries beyond its index entry: kept, in a
/// list beside `new_events`, only while the feed has readers, so the index entries
/// stay small (the writer's cache misses were measured; see `type_names`). Each is a
/// range of the batch's `feed_bytes`.
pub(super) struct Announced {
    pub(super) source: Option<FeedRange>,
    pub(super) occurred_at: Option<FeedRange>,
    /// `None` once the batch's payloads passed what the feed carries inline.
    pub(super) payload: Option<FeedRange>,
}

/// Where in a batch's `feed_bytes` one field was copied.
#[derive(Clone, Copy)]
pub(super) struct FeedRange {
    start: usize,
    end: usize,
}

impl FeedRange {
    /// The field, out of the batch's frozen copy.
    pub(super) fn of(self, bytes: &Bytes) -> Bytes {
        bytes.slice(self.start..self.end)
    }
}

/// What one group commit stages, kept until it is durable and published.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) staged: Vec<Staged>,
    pub(super) new_events: Vec<NewIndexEntry>,
    /// For each of `new_events`, in order, what the feed announces; empty when the
    /// feed had no reader as the events were staged.
    pub(super) announced: Vec<Announced>,
    /// The announced fields' bytes, copied, all of a batch in one buffer. Copied rather
    /// than shared: a payload is a slice of the connection's read buffer, and the feed
    /// keeps a commit until its slowest reader is past it, so sharing would keep every
    /// connection allocating new read buffers while any reader is subscribed (measured:
    /// −8 % ingest with a subscription attached, in malloc and `malloc_consolidate`).
    pub(super) feed_bytes: Vec<u8>,
    pub(super) new_keys: Vec<[u8; 16]>,
    /// This batch's ack and delete records, for the index and the checkpoint.
    pub(super) settle_records: Vec<IndexedSettle>,
    /// This batch's control records, kind and fields, for the checkpoint.
    pub(super) control_records: Vec<(u8, Vec<u8>)>,
    /// The states this batch gives events, so that an ack staged after it, in it or in
    /// the next batch while this one syncs, sees them before the index does. Keyed by
    /// the whole id: a lookup by sequence alone would let an id that shares only the
    /// sequence of a staged event act on that event.
    pub(super) overlay: HashMap<(crate::types::InboxKey, EventId), u8>,
    pub(super) wants_sync: bool,
    /// The active segment's length once this batch is written.
    pub(super) end_pos: u64,
    /// Bytes this batch wrote.
    pub(super) bytes: u64,
    /// Payload bytes of the events, to decide whether the feed carries them inline.
    pub(super) payload_bytes: usize,
}

impl Batch {
    /// Copies one field for the feed.
    pub(super) fn keep_for_feed(&mut self, field: &[u8]) -> FeedRange {
        let start = self.feed_bytes.len();
        self.feed_bytes.extend_from_slice(field);
        FeedRange {
            start,
            end: self.feed_bytes.len(),
        }
    }

    /// Empties the batch, keeping its allocations for the next one.
    pub(super) fn clear(&mut self) {
        self.staged.clear();
        self.new_events.clear();
        self.announced.clear();
        self.feed_bytes.clear();
        self.new_keys.clear();
        self.settle_records.clear();
        self.control_records.clear();
        self.overlay.clear();
        self.wants_sync = false;
        self.end_pos = 0;
        self.bytes = 0;
        self.payload_bytes = 0;
    }
}
