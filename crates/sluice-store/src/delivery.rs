//! Push delivery's state, as the storage boundary holds it: each subscription is a
//! consumer of its tenant's log with a durable position, a bounded window of deliveries
//! in flight or waiting to be retried, dead letters, and an attempts log.
//!
//! The store keeps the state and its bounds; the dispatcher (`sluice-push`) decides
//! what to send and when to retry. The exchange is a pull consumer's, as in JetStream:
//! [`Store::fetch_deliveries`](crate::Store::fetch_deliveries) hands out what is due,
//! and [`Store::settle_deliveries`](crate::Store::settle_deliveries) records how each
//! attempt ended (delivered, retry at a time, or dead). Memory per subscription is its
//! window (at most `max_in_flight` entries) plus its dead letters and the last
//! [`ATTEMPTS_KEPT_MAX`] attempts, whatever the backlog: a dead endpoint with a million
//! events behind it holds a position, not a million entries.
//!
//! Guarantees: every event due is handed out again after a crash (at least once), and
//! an event whose delivery was recorded is not handed out again, except those in
//! flight at the crash.

use crate::event_id::EventId;
use crate::types::{LogEvent, Sequence, UnixMs};

/// Attempts each subscription keeps for its attempts log, newest first. The log is in
/// the store too, and goes with retention; this bounds what is listed and held.
pub const ATTEMPTS_KEPT_MAX: usize = 1000;

/// Longest error text an attempt keeps.
pub const ATTEMPT_ERROR_BYTES_MAX: usize = 256;

/// Events one replay request queues at most; a longer range is cut here (the answer
/// says how many were queued, and a later `since` queues the rest).
pub const REPLAY_EVENTS_MAX: usize = 10_000;

/// Events waiting to be replayed, per subscription, at most: a replay past it is
/// refused until the queue drains.
pub const REPLAY_QUEUE_MAX: usize = 100_000;

/// One delivery to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event.
    pub event: LogEvent,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// Whether it comes from a replay (its attempts count from 1 again).
    pub replay: bool,
}

/// What a fetch found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// What to deliver now, in sequence order (replays first).
    pub deliveries: Vec<Delivery>,
    /// When the next retry falls due, if one is waiting: the dispatcher sleeps until
    /// then, or until a commit wakes it.
    pub next_due_at: Option<UnixMs>,
}

/// How an attempt ended, as the attempts log lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx within the timeout.
    Delivered,
    /// Failed; a retry is scheduled.
    Failed,
    /// Failed for the last time: the event is a dead letter.
    Dead,
}

impl AttemptOutcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Dead => "dead",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<AttemptOutcome> {
        match name {
            "delivered" => Some(AttemptOutcome::Delivered),
            "failed" => Some(AttemptOutcome::Failed),
            "dead" => Some(AttemptOutcome::Dead),
            _ => None,
        }
    }
}

/// One attempt, for the attempts log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Increasing with time across the store; names the attempt (`att_…`). Assigned by
    /// the store when the attempt is recorded.
    pub serial: u64,
    /// The event delivered (a test event has its own id and no place in the log).
    pub event_id: EventId,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// When the request started.
    pub started_at: UnixMs,
    /// How long until the answer (or the failure).
    pub latency_ms: u32,
    /// The endpoint's status, when it answered.
    pub status: Option<u16>,
    /// What went wrong, when something did (at most [`ATTEMPT_ERROR_BYTES_MAX`] bytes).
    pub error: Option<String>,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Done: delivered.
    Delivered,
    /// Try again at this time.
    RetryAt(UnixMs),
    /// Done: a dead letter.
    Dead,
}

/// One attempt's result, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The event's position (`None` for a test event, which only enters the attempts
    /// log).
    pub seq: Option<Sequence>,
    /// Whether the delivery was a replay.
    pub replay: bool,
    /// What becomes of the delivery.
    pub next: Next,
    /// The attempt, for the log (its `serial` is assigned by the store).
    pub attempt: Attempt,
}

/// A subscription's delivery state, for its owner and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryState {
    /// Matching events not yet delivered (waiting, in flight, retrying or queued for a
    /// replay).
    pub backlog: u64,
    /// Deliveries handed out and not yet settled.
    pub in_flight: u32,
    /// Deliveries waiting for a retry.
    pub retrying: u32,
    /// Dead letters.
    pub dead_letters: u64,
    /// The last delivery's time.
    pub last_success_at: Option<UnixMs>,
    /// The last failure's time.
    pub last_failure_at: Option<UnixMs>,
    /// Since when every attempt failed (cleared by a success): what
    /// `webhook_disable_after` is measured from.
    pub failing_since: Option<UnixMs>,
    /// Every matching event up to here is done.
    pub position: Sequence,
}

/// A query of a subscription's attempts log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptQuery {
    /// Only attempts older than this serial (the previous page's last).
    pub before: Option<u64>,
    /// Page size, 1..=1000.
    pub limit: usize,
    /// Only attempts that ended so.
    pub outcome: Option<AttemptOutcome>,
}

/// A page of the attempts log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptPage {
    /// Newest first.
    pub attempts: Vec<Attempt>,
    /// Whether older attempts match.
    pub has_more: bool,
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event.
    pub event: LogEvent,
    /// When its last attempt failed.
    pub dead_at: UnixMs,
    /// How many attempts it had.
    pub attempts: u32,
}

/// A page of dead letters, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterPage {
    /// The dead letters.
    pub dead: Vec<DeadLetter>,
    /// Pass as `after` for the next page.
    pub next: Option<Sequence>,
    /// Whether more follow.
    pub has_more: bool,
}

/// Which events to deliver again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The subscription's matching events received in `since..until` (`until` absent:
    /// up to now), at most [`REPLAY_EVENTS_MAX`].
    Range {
        /// From this receive time on.
        since: UnixMs,
        /// Before this receive time.
        until: Option<UnixMs>,
    },
    /// These events of the tenant (the ones that match the subscription and are still
    /// retained).
    Ids(Vec<EventId>),
}
