//! The vocabulary shared by every backend and by the HTTP layer.

use bytes::Bytes;

use crate::event_id::EventId;

/// A tenant's compact numeric identity. Names live in the catalog; the data plane only
/// carries this 4-byte id so that per-event records and index entries stay small.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct TenantId(pub u32);

/// One of a tenant's consumers: an independent inbox over the tenant's log, with its own
/// pending set, leases, acks and dead letters (Kafka's consumer group, JetStream's
/// durable consumer). Ids are issued by the catalog and never reused, so a record of a
/// deleted consumer can never reach a new one of the same name.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct ConsumerId(pub u32);

impl ConsumerId {
    /// The inbox every tenant has, named `default`: it takes every event of the tenant.
    pub const DEFAULT: ConsumerId = ConsumerId(0);
}

/// Which inbox an inbox call is about: a tenant's consumer. A bare [`TenantId`] converts
/// into its default inbox, which is what most callers mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InboxKey {
    /// The owner.
    pub tenant: TenantId,
    /// Which of its consumers.
    pub consumer: ConsumerId,
}

impl From<TenantId> for InboxKey {
    fn from(tenant: TenantId) -> Self {
        InboxKey {
            tenant,
            consumer: ConsumerId::DEFAULT,
        }
    }
}

/// Position of an event in the store's single, gap-free ingest order.
///
/// Sequences are monotonic across restarts, so they double as inbox cursors and as the
/// tie-breaker that keeps per-tenant order equal to ingest order.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Sequence(pub u64);

/// Milliseconds since the Unix epoch. Kept as a plain integer because every backend
/// stores it that way and formatting belongs to the HTTP layer.
pub type UnixMs = i64;

/// The system clock, in [`UnixMs`]. A clock before the epoch reads as 0.
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The idempotency part of an append: the client's key plus a fingerprint of what the
/// client sent with it, so that a reused key with a different body can be refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key exactly as the client sent it.
    pub key: Bytes,
    /// A digest of the request content the key was sent with (the HTTP layer decides
    /// what "the same body" means; the store only compares fingerprints).
    pub fingerprint: [u8; 16],
}

/// An event as accepted by the HTTP layer, validated and ready to be made durable.
///
/// Fields are `Bytes` so that they can point into the request body without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Owner of the event.
    pub tenant: TenantId,
    /// Validated `event_type` (1–256 characters of `[A-Za-z0-9._:-]`).
    pub event_type: Bytes,
    /// Optional free-form origin of the event, UTF-8.
    pub source: Option<Bytes>,
    /// Optional RFC 3339 timestamp supplied by the producer, kept verbatim.
    pub occurred_at: Option<Bytes>,
    /// Optional idempotency key; see [`IdempotencyKey`].
    pub idempotency: Option<IdempotencyKey>,
    /// The JSON payload, byte for byte as the producer sent it.
    pub payload: Bytes,
}

impl NewEvent {
    /// Bytes this event occupies in a commit queue; used to bound queued memory.
    pub fn queued_bytes(&self) -> usize {
        self.event_type.len()
            + self.source.as_ref().map_or(0, Bytes::len)
            + self.occurred_at.as_ref().map_or(0, Bytes::len)
            + self.idempotency.as_ref().map_or(0, |k| k.key.len() + 16)
            + self.payload.len()
            + 64
    }
}

/// What became of one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// A new event was made durable.
    Created {
        /// The new event's id.
        id: EventId,
        /// When the store received it.
        received_at: UnixMs,
    },
    /// The idempotency key was seen before with the same fingerprint; nothing new was
    /// stored and the original event is named.
    Replayed {
        /// The original event's id.
        id: EventId,
        /// When the original was received.
        received_at: UnixMs,
    },
    /// The idempotency key was seen before with a different fingerprint.
    KeyReused {
        /// The event the key already belongs to.
        id: EventId,
    },
}

/// Where an event stands in its tenant's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    /// Waiting to be consumed, not leased.
    Pending,
    /// Handed to a consumer whose lease runs until the given time.
    Leased {
        /// When the lease expires and the event becomes visible again.
        until: UnixMs,
    },
    /// Acknowledged by a consumer; kept for replay until retention removes it.
    Acked,
    /// Leased `max_deliveries` times without an ack: moved to the dead letters, where
    /// no poll leases it until it is requeued (or acked, or deleted).
    Dead,
}

/// An event read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event's id.
    pub id: EventId,
    /// Its owner.
    pub tenant: TenantId,
    /// Its type.
    pub event_type: Bytes,
    /// Its optional source.
    pub source: Option<Bytes>,
    /// Its optional producer timestamp, verbatim.
    pub occurred_at: Option<Bytes>,
    /// When the store received it.
    pub received_at: UnixMs,
    /// The payload, byte for byte as ingested.
    pub payload: Bytes,
    /// How many times a lease has handed it out; kept after an ack (up to 255 there),
    /// but not across restarts, as leases are not.
    pub delivery_count: u32,
    /// Inbox state.
    pub state: EventState,
}

/// A request for a page of a tenant's pending events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxQuery {
    /// Whose inbox.
    pub tenant: TenantId,
    /// Which of the tenant's consumers.
    pub consumer: ConsumerId,
    /// Page size, 1..=1000.
    pub limit: usize,
    /// Return events strictly after this sequence (the previous page's `next_cursor`).
    pub after: Option<Sequence>,
    /// Only events of this type.
    pub event_type: Option<String>,
    /// Lease the returned events for this long; `None` lists without leasing.
    pub lease_ms: Option<u64>,
    /// For a leasing poll: an event already leased this many times is moved to the
    /// dead letters instead of being leased again. `None`: unlimited.
    pub max_deliveries: Option<u32>,
}

/// One page of an inbox listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxPage {
    /// The events, oldest first. A leased one's `delivery_count` is its lease's
    /// generation: what [`crate::Store::ack_leased`] and [`crate::Store::lease_action`]
    /// check a lease against.
    pub events: Vec<StoredEvent>,
    /// Cursor for the next page: the sequence of the last event returned.
    pub next_cursor: Option<Sequence>,
    /// Whether more matching events exist after this page.
    pub has_more: bool,
    /// For a leasing poll: the earliest time an event this poll passed over because it
    /// was hidden (leased, or nacked with a delay) becomes visible again, so that a
    /// long poll knows when to look again without being woken by a commit.
    pub next_visible: Option<UnixMs>,
}

/// Where one consumer's inbox stands: what `GET /v1/consumers` and the lag metric show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxSummary {
    /// Whose.
    pub tenant: TenantId,
    /// Which of its consumers.
    pub consumer: ConsumerId,
    /// Events not yet acked or deleted (dead letters included).
    pub pending: u64,
    /// When the oldest of them was received: the consumer's lag.
    pub oldest_pending_ms: Option<UnixMs>,
}

/// What a consumer does with a lease before it ends: give the event back, or keep it
/// longer. Leases are named by their generation (the event's `delivery_count` when it
/// was leased): a lease taken again since is another generation, and the old one is
/// stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    /// Ends the lease now: the event is visible again after `delay_ms` (0: at once).
    /// Without a lease, any pending event can be delayed this way.
    Nack {
        /// The lease being given back, if the caller holds one.
        lease: Option<u32>,
        /// How long the event stays hidden first.
        delay_ms: u64,
    },
    /// Keeps the event hidden for `lease_ms` from now.
    Extend {
        /// The lease being extended.
        lease: u32,
        /// The new length, from now.
        lease_ms: u64,
    },
}

/// What became of a [`LeaseAction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Done; the event is hidden until this time (now or earlier: visible).
    Done {
        /// When the event becomes visible to lease pollers.
        visible_at: UnixMs,
    },
    /// The lease is not current: the event was leased again since.
    Stale,
    /// No such pending event for this tenant (unknown, acked, deleted, another's).
    NotFound,
}

/// What became of one id in an ack or delete request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleOutcome {
    /// The event changed state now.
    Done,
    /// The event was already in the requested state (repeating an ack is harmless).
    AlreadyDone,
    /// No such event for this tenant (unknown, deleted, or another tenant's).
    NotFound,
    /// An ack under a lease that is not current (the event was leased again since):
    /// nothing changed.
    LeaseExpired,
}

/// A settle request: acknowledge, delete outright, or move to and from the dead
/// letters. Each is durable: it is a record in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Consumed; kept for replay until retention.
    Ack,
    /// Removed from the inbox and from reads at once.
    Delete,
    /// A pending event moved to the dead letters (leased `max_deliveries` times); a
    /// dead letter already, or an event not pending, answers `AlreadyDone` or
    /// `NotFound`.
    Dead,
    /// A dead letter put back in the inbox, with its delivery count at 0; an event that
    /// is not a dead letter answers `NotFound`.
    Requeue,
}

/// One committed event, as the commit feed announces it (to the webhook dispatcher and
/// the live tail).
///
/// The event's fields come along so that a reader that keeps up needs no read of the
/// log; the payload comes too unless the commit was large (see
/// [`Committed::payload`]), so that the feed's memory stays bounded by its capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The event's id; its sequence is the event's position in the log.
    pub id: EventId,
    /// Its owner.
    pub tenant: TenantId,
    /// Its type, for subscription matching without a read.
    pub event_type: Bytes,
    /// Its optional source.
    pub source: Option<Bytes>,
    /// Its optional producer timestamp, verbatim.
    pub occurred_at: Option<Bytes>,
    /// When the store received it.
    pub received_at: UnixMs,
    /// The payload, or `None` when its commit was too large to carry in the feed: the
    /// reader then reads the event from the log.
    pub payload: Option<Bytes>,
}

impl Committed {
    /// The event's position in its tenant's log.
    pub fn seq(&self) -> Sequence {
        self.id.sequence()
    }
}

/// An event as the log holds it, without any consumer's state: what the live tail, the
/// dispatcher and replays read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// The event's id.
    pub id: EventId,
    /// Its owner.
    pub tenant: TenantId,
    /// Its type.
    pub event_type: Bytes,
    /// Its optional source.
    pub source: Option<Bytes>,
    /// Its optional producer timestamp, verbatim.
    pub occurred_at: Option<Bytes>,
    /// When the store received it.
    pub received_at: UnixMs,
    /// The payload, byte for byte as ingested.
    pub payload: Bytes,
}

/// A read of a tenant's log, in sequence order, from a position on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// Whose log.
    pub tenant: TenantId,
    /// Read events strictly after this position (`None`: from the oldest retained).
    pub after: Option<Sequence>,
    /// Most events to return, 1..=1000.
    pub limit: usize,
    /// Only events of this exact type.
    pub event_type: Option<String>,
}

/// One page of a log read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// The events, in sequence order. Deleted and expired events are left out.
    pub events: Vec<LogEvent>,
    /// The position the read got to: pass it as the next query's `after`. It can be
    /// past the last event returned (events of other tenants and types are skipped
    /// without being returned), so a reader never scans the same stretch twice.
    pub position: Option<Sequence>,
    /// Whether the log holds more after `position` (as of this read).
    pub has_more: bool,
}

/// Whether the store can serve, for readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Reads and writes can succeed.
    pub ready: bool,
    /// Why not, for the operator, when not ready.
    pub detail: Option<String>,
}
