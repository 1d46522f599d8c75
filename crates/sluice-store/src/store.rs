//! The storage boundary: the one trait the HTTP layer, the dispatcher and the tail are
//! written against.
//!
//! Its vocabulary is DESIGN.md's consumer model. A tenant's events form one ordered log
//! ([`Store::append`], [`Store::read_log`], [`Store::feed`]); everything that reads it
//! is a consumer with its own state: the inboxes here ([`Store::list`],
//! [`Store::settle`]; every tenant's `default` one and its named consumers, each an
//! [`InboxKey`]), each subscription and each live tail. Inbox methods take
//! `impl Into<InboxKey>`, so a bare [`TenantId`] names the tenant's default inbox.
//! Positions in the log are [`Sequence`]s:
//! increasing in commit order within a tenant's log, not necessarily dense (other
//! tenants' events and deleted ones leave gaps).
//!
//! Two backends implement it: [`crate::embedded::EmbeddedStore`] (the default, in
//! process) and, for scale-out, NATS JetStream. Both must pass [`crate::conformance`].
//! Methods return `impl Future + Send` rather than boxed futures, so the hot path pays
//! no allocation for the abstraction; `sluice serve` picks a backend at run time with
//! an enum whose every method is one `match`.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::catalog::{ApiKeyRecord, Catalog, CatalogChange, Changed, SubKey, Tenant, TenantLimits};
use crate::delivery::{
    AttemptPage, AttemptQuery, DeadLetterPage, DeliveryState, Fetched, Replay, Settled,
};
use crate::error::StoreError;
use crate::event_id::EventId;
use crate::exposition::Exposition;
use crate::feed::CommitFeed;
use crate::types::{
    AppendOutcome, EventState, Health, InboxKey, InboxPage, InboxQuery, InboxSummary, LeaseAction,
    LeaseOutcome, LogPage, LogQuery, NewEvent, Sequence, Settle, SettleOutcome, StoredEvent,
    TenantId,
};

/// What every backend counts, for `/metrics` and the console. A backend's own figures
/// (segments, fsync latencies, stream state) go through [`Store::write_metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Events made durable since start.
    pub events_appended: u64,
    /// Durable writes since start (group commits, acknowledged publishes).
    pub commits: u64,
    /// Writes waiting to be made durable now.
    pub queue_depth: u64,
    /// Appends refused because the store was at capacity.
    pub overloaded_total: u64,
    /// Pending events dropped because they outlived `retention.pending`.
    pub pending_expired: u64,
    /// Events moved to the inbox dead letters (leased `max_deliveries` times).
    pub dead_lettered: u64,
}

/// A live view of the catalog: every change, made on this node or (for a clustered
/// backend) on another, is published here. Reading the current value never waits.
pub type CatalogWatch = watch::Receiver<Arc<Catalog>>;

/// Durable event storage plus the control-plane catalog; see the module docs.
pub trait Store: Send + Sync + 'static {
    /// Makes every event durable (under the configured durability mode) and returns
    /// one outcome per event, in order. Idempotency keys are resolved atomically with
    /// sequencing, so one key never yields two events, even under concurrency.
    fn append(
        &self,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<AppendOutcome>, StoreError>> + Send;

    /// Reads a page of a tenant's log after a position, in order, whatever any consumer
    /// did with the events (deleted and expired ones are left out).
    fn read_log(&self, query: LogQuery)
        -> impl Future<Output = Result<LogPage, StoreError>> + Send;

    /// The position of the latest event in the tenant's log, or one at least as recent
    /// (`None` when nothing was ever committed): a reader that starts "from now"
    /// subscribes to the [`Store::feed`] first, then takes this as its position.
    fn log_position(
        &self,
        tenant: TenantId,
    ) -> impl Future<Output = Result<Option<Sequence>, StoreError>> + Send;

    /// A subscription to what is committed from now on. A reader that falls behind is
    /// told so and reads the log instead (see [`crate::feed::LogFollower`]); the commit
    /// path never waits for it.
    fn feed(&self) -> impl Future<Output = Result<CommitFeed, StoreError>> + Send;

    /// Lists (and optionally leases) a page of an inbox's pending events.
    fn list(&self, query: InboxQuery)
        -> impl Future<Output = Result<InboxPage, StoreError>> + Send;

    /// Reads one event of this tenant, with its state in `inbox`. Another tenant's id
    /// answers `None`, exactly like an unknown id, and so does any id that is not
    /// exactly an event's own, or (for a named consumer) one of an event it does not
    /// take. Acked events stay readable until retention; deleted ones do not.
    fn get(
        &self,
        inbox: impl Into<InboxKey> + Send,
        id: EventId,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;

    /// Acknowledges, dead-letters or requeues events in an inbox durably, or deletes
    /// them from the log (from every inbox: a delete is the log's), one outcome per id.
    fn settle(
        &self,
        inbox: impl Into<InboxKey> + Send,
        ids: Vec<EventId>,
        how: Settle,
    ) -> impl Future<Output = Result<Vec<SettleOutcome>, StoreError>> + Send;

    /// Acknowledges events under leases, one outcome per `(id, lease generation)`: each
    /// only if its lease is current (the event was not leased again since), else
    /// [`SettleOutcome::LeaseExpired`] and it is left as it is. An event already acked
    /// answers [`SettleOutcome::AlreadyDone`].
    fn ack_leased(
        &self,
        inbox: impl Into<InboxKey> + Send,
        acks: Vec<(EventId, u32)>,
    ) -> impl Future<Output = Result<Vec<SettleOutcome>, StoreError>> + Send;

    /// Nacks or extends a lease (see [`LeaseAction`]). Leases are not durable, so
    /// neither is this: a restart makes every pending event visible.
    fn lease_action(
        &self,
        inbox: impl Into<InboxKey> + Send,
        id: EventId,
        action: LeaseAction,
    ) -> impl Future<Output = Result<LeaseOutcome, StoreError>> + Send;

    /// The current state and delivery count of each id in an inbox, in order (`None`:
    /// not this tenant's, not one a named consumer takes, deleted, expired or unknown),
    /// for listings that read the log and report where each event stands.
    fn inbox_states(
        &self,
        inbox: impl Into<InboxKey> + Send,
        ids: Vec<EventId>,
    ) -> impl Future<Output = Result<Vec<Option<(EventState, u32)>>, StoreError>> + Send;

    /// A page of an inbox's dead letters (events leased `max_deliveries` times
    /// without an ack), oldest first. `next_cursor` is how far the page looked, which
    /// can be past its last event. [`Store::settle`] with [`Settle::Requeue`] puts them
    /// back; an ack or a delete settles them as any event.
    fn inbox_dead_letters(
        &self,
        inbox: impl Into<InboxKey> + Send,
        after: Option<Sequence>,
        limit: usize,
    ) -> impl Future<Output = Result<InboxPage, StoreError>> + Send;

    /// Notified when events may have become visible in an inbox (a commit of its
    /// tenant's events, a nack): what a long poll waits on. Enable the `Notified` future
    /// before listing, so a commit between the two is not missed.
    ///
    /// `interchangeable` polls (leasing, no type filter: any of them takes any event)
    /// share a signal that wakes one of them per event (`notify_one`), so idle
    /// consumers do not all wake for each event; every other poll is woken by every
    /// commit of its tenant (`notify_waiters`).
    fn inbox_signal(
        &self,
        inbox: impl Into<InboxKey>,
        interchangeable: bool,
    ) -> Arc<tokio::sync::Notify>;

    /// Every inbox (each tenant's default one that holds anything, and every named
    /// consumer): pending count and the age of its oldest pending event.
    fn inbox_summaries(&self)
        -> impl Future<Output = Result<Vec<InboxSummary>, StoreError>> + Send;

    /// Pending (unacked, undeleted) events in each tenant's default inbox:
    /// [`Store::inbox_summaries`]' counts, derived rather than kept beside them.
    fn pending_counts(
        &self,
    ) -> impl Future<Output = Result<Vec<(TenantId, u64)>, StoreError>> + Send {
        async move {
            Ok(self
                .inbox_summaries()
                .await?
                .into_iter()
                .filter(|s| s.consumer == crate::types::ConsumerId::DEFAULT)
                .map(|s| (s.tenant, s.pending))
                .collect())
        }
    }

    /// The neutral counters.
    fn stats(&self) -> impl Future<Output = StoreStats> + Send;

    /// Writes the backend's own series into a `/metrics` document. Names already in use
    /// stay as they are: dashboards rely on them.
    fn write_metrics(&self, out: &mut Exposition) -> impl Future<Output = ()> + Send;

    /// Whether the store can serve (readiness), and why not.
    fn health(&self) -> impl Future<Output = Health> + Send;

    /// Waits until everything accepted so far is durable (used at shutdown).
    fn sync(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The catalog, live.
    fn catalog(&self) -> CatalogWatch;

    /// Brings this node's [`Store::catalog`] up to the newest the cluster holds, for a
    /// caller that found something missing that another node may have just created (an
    /// API key used through a load balancer a moment after it was made elsewhere).
    /// A single-node backend's catalog is always current: the default answers at once.
    fn catalog_sync(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// What a subscription should deliver now: due retries and replays first, then
    /// the next events of its tenant's log that match it, up to `max` and to its own
    /// `max_in_flight` (one with FIFO ordering, where nothing new goes out while an
    /// event waits for its retry). What is handed out is in flight until it is settled.
    fn fetch_deliveries(
        &self,
        sub: SubKey,
        max: usize,
    ) -> impl Future<Output = Result<Fetched, StoreError>> + Send;

    /// Records how deliveries ended (durably: this answers once the record is), and
    /// their attempts in the attempts log. Answers each attempt's serial, in order, or
    /// `None` for a settle that was stale (not handed out, or settled already) and
    /// changed nothing.
    fn settle_deliveries(
        &self,
        sub: SubKey,
        settled: Vec<Settled>,
    ) -> impl Future<Output = Result<Vec<Option<u64>>, StoreError>> + Send;

    /// A subscription's delivery state.
    fn delivery_state(
        &self,
        sub: SubKey,
    ) -> impl Future<Output = Result<DeliveryState, StoreError>> + Send;

    /// A page of a subscription's attempts log, newest first.
    fn attempts(
        &self,
        sub: SubKey,
        query: AttemptQuery,
    ) -> impl Future<Output = Result<AttemptPage, StoreError>> + Send;

    /// A page of a subscription's dead letters, oldest first.
    fn dead_letters(
        &self,
        sub: SubKey,
        after: Option<Sequence>,
        limit: usize,
    ) -> impl Future<Output = Result<DeadLetterPage, StoreError>> + Send;

    /// Queues events to be delivered again; answers how many were queued (matching
    /// events of the subscription's tenant, still retained). A dead letter replayed
    /// leaves the dead letters.
    fn replay(
        &self,
        sub: SubKey,
        what: Replay,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Applies one change to the catalog (see [`Catalog::apply`], whose rules every
    /// backend shares), durably, and publishes the result on the [`Store::catalog`]
    /// watch before returning, so this node reads its own write at once.
    fn change_catalog(
        &self,
        change: CatalogChange,
    ) -> impl Future<Output = Result<Changed, StoreError>> + Send;
}

/// The catalog changes callers make most, as typed calls over
/// [`Store::change_catalog`]; implemented for every store.
pub trait CatalogOps: Store {
    /// Creates a tenant; names are unique.
    fn create_tenant(
        &self,
        name: &str,
        limits: TenantLimits,
    ) -> impl Future<Output = Result<Tenant, StoreError>> + Send {
        let change = CatalogChange::CreateTenant {
            name: name.to_owned(),
            limits,
        };
        async move { tenant_of(self.change_catalog(change).await?) }
    }

    /// Replaces a tenant's limits.
    fn set_tenant_limits(
        &self,
        name: &str,
        limits: TenantLimits,
    ) -> impl Future<Output = Result<Tenant, StoreError>> + Send {
        let change = CatalogChange::SetTenantLimits {
            name: name.to_owned(),
            limits,
        };
        async move { tenant_of(self.change_catalog(change).await?) }
    }

    /// Stores a new API key record (the key itself is never stored, only its hash).
    fn add_key(&self, key: ApiKeyRecord) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            self.change_catalog(CatalogChange::AddKey(key))
                .await
                .map(drop)
        }
    }

    /// Revokes a key by id.
    fn revoke_key(&self, key_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        let change = CatalogChange::RevokeKey {
            key_id: key_id.to_owned(),
        };
        async move { self.change_catalog(change).await.map(drop) }
    }
}

impl<S: Store> CatalogOps for S {}

/// The tenant a tenant change made. [`Catalog::apply`] answers a tenant change with a
/// tenant; anything else is a backend's bug, reported as such rather than as some
/// other failure.
fn tenant_of(changed: Changed) -> Result<Tenant, StoreError> {
    match changed {
        Changed::Tenant(t) => Ok(t),
        other => Err(StoreError::Corrupt(format!(
            "a tenant change was answered with {other:?}"
        ))),
    }
}
