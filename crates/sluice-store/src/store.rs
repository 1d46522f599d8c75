//! The one storage trait that the HTTP layer is written against.
//!
//! Two backends implement it: [`crate::embedded::EmbeddedStore`] (the default, in
//! process) and, later, NATS JetStream for scale-out. Both must pass
//! [`crate::conformance`]. Methods return `impl Future + Send` rather than boxed futures
//! so the hot path pays no allocation for dynamic dispatch; the server is generic over
//! `S: Store`.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::catalog::{ApiKeyRecord, Catalog, Tenant, TenantLimits};
use crate::error::StoreError;
use crate::event_id::EventId;
use crate::types::{
    AppendOutcome, Committed, InboxPage, InboxQuery, NewEvent, Settle, SettleOutcome, StoredEvent,
    TenantId,
};

/// Upper bounds, in microseconds, of the sync-latency buckets of
/// [`StoreStats::sync_latency_counts`]; the last bucket is unbounded. From the cheapest
/// sync of a fast disk to the stalls worth an alert.
pub const SYNC_LATENCY_BOUNDS_US: [u64; 12] = [
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    250_000,
    u64::MAX,
];

/// Counters and gauges a backend exposes for `/metrics`; all cheap to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Events made durable since start.
    pub events_appended: u64,
    /// Group commits (write + sync) since start.
    pub commits: u64,
    /// Sum of sync latencies in microseconds, for a mean.
    pub sync_micros_total: u64,
    /// Syncs by latency: how many fell in each bucket of [`SYNC_LATENCY_BOUNDS_US`]
    /// (per bucket, not cumulative). A mean hides the stalls that set the p99 of
    /// ingest; these show them.
    pub sync_latency_counts: [u64; SYNC_LATENCY_BOUNDS_US.len()],
    /// Commands waiting in the commit queue now.
    pub queue_depth: u64,
    /// Appends refused because the queue was full.
    pub overloaded_total: u64,
    /// Segments on disk.
    pub segments: u64,
    /// Bytes of log on disk.
    pub log_bytes: u64,
    /// Bytes of log kept only because old segments still hold pending events (the
    /// space that long-pending events pin; bounded by `retention.pending`).
    pub pinned_bytes: u64,
    /// Segments removed by retention since start.
    pub segments_purged: u64,
    /// Pending events dropped because they outlived `retention.pending`.
    pub pending_expired: u64,
    /// Sealed segments the background scrub found damaged (readiness turns off).
    pub corrupt_segments: u64,
}

/// Durable event storage plus the control-plane catalog; see the module docs.
pub trait Store: Send + Sync + 'static {
    /// Makes every event durable (under the configured durability mode) and returns
    /// one outcome per event, in order. Idempotency keys are resolved atomically with
    /// sequencing, so one key never yields two events, even under concurrency.
    fn append(
        &self,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<AppendOutcome>, StoreError>> + Send;

    /// Lists (and optionally leases) a page of a tenant's pending events.
    fn list(&self, query: InboxQuery)
        -> impl Future<Output = Result<InboxPage, StoreError>> + Send;

    /// Reads one event of this tenant. Another tenant's id answers `None`, exactly like
    /// an unknown id. Acked events stay readable until retention; deleted ones do not.
    fn get(
        &self,
        tenant: TenantId,
        id: EventId,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;

    /// Acknowledges or deletes events durably, one outcome per id.
    fn settle(
        &self,
        tenant: TenantId,
        ids: Vec<EventId>,
        how: Settle,
    ) -> impl Future<Output = Result<Vec<SettleOutcome>, StoreError>> + Send;

    /// A stream of committed events, for the webhook dispatcher and the live tail.
    /// A receiver that falls behind skips ahead (it sees `Lagged`), it never blocks
    /// the commit path.
    fn subscribe(&self) -> broadcast::Receiver<Arc<[Committed]>>;

    /// Pending (unacked, undeleted) events of a tenant, for metrics.
    fn pending_count(&self, tenant: TenantId) -> u64;

    /// Counters for metrics.
    fn stats(&self) -> StoreStats;

    /// Whether writes can currently succeed (readiness).
    fn is_writable(&self) -> bool;

    /// Waits until everything accepted so far is on disk (used at shutdown).
    fn sync(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The current catalog: a cheap, immutable snapshot.
    fn catalog(&self) -> Arc<Catalog>;

    /// Creates a tenant; names are unique.
    fn create_tenant(
        &self,
        name: &str,
        limits: TenantLimits,
    ) -> impl Future<Output = Result<Tenant, StoreError>> + Send;

    /// Replaces a tenant's limits.
    fn set_tenant_limits(
        &self,
        name: &str,
        limits: TenantLimits,
    ) -> impl Future<Output = Result<Tenant, StoreError>> + Send;

    /// Stores a new API key record (the key itself is never stored, only its hash).
    fn add_key(&self, key: ApiKeyRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Revokes a key by id.
    fn revoke_key(&self, key_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}
