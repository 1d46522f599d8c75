//! The storage backend `sluice serve` runs on, picked at run time (`--store`).
//!
//! An enum rather than a trait object: every [`Store`] method is one `match` on it, so
//! the hot path pays a branch, not an allocation or an indirect call, and the server
//! stays generic over one concrete type.

use sluice_store::embedded::EmbeddedStore;
use sluice_store::exposition::Exposition;
use sluice_store::feed::CommitFeed;
use sluice_store::{
    ApiKeyRecord, AppendOutcome, CatalogWatch, EventId, Health, InboxPage, InboxQuery, LogPage,
    LogQuery, NewEvent, Sequence, Settle, SettleOutcome, Store, StoreError, StoreStats,
    StoredEvent, Tenant, TenantId, TenantLimits,
};

/// One of the storage backends.
pub enum Backend {
    /// The embedded engine: one process, its own data directory.
    Embedded(EmbeddedStore),
}

/// Runs `$body` with `$s` bound to the backend in use.
macro_rules! on {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            Backend::Embedded($s) => $body,
        }
    };
}

impl Store for Backend {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError> {
        on!(self, s => s.append(events).await)
    }

    async fn read_log(&self, query: LogQuery) -> Result<LogPage, StoreError> {
        on!(self, s => s.read_log(query).await)
    }

    async fn log_position(&self, tenant: TenantId) -> Result<Option<Sequence>, StoreError> {
        on!(self, s => s.log_position(tenant).await)
    }

    async fn feed(&self) -> Result<CommitFeed, StoreError> {
        on!(self, s => s.feed().await)
    }

    async fn list(&self, query: InboxQuery) -> Result<InboxPage, StoreError> {
        on!(self, s => s.list(query).await)
    }

    async fn get(&self, tenant: TenantId, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        on!(self, s => s.get(tenant, id).await)
    }

    async fn settle(
        &self,
        tenant: TenantId,
        ids: Vec<EventId>,
        how: Settle,
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        on!(self, s => s.settle(tenant, ids, how).await)
    }

    async fn pending_counts(&self) -> Result<Vec<(TenantId, u64)>, StoreError> {
        on!(self, s => s.pending_counts().await)
    }

    async fn stats(&self) -> StoreStats {
        on!(self, s => s.stats().await)
    }

    async fn write_metrics(&self, out: &mut Exposition) {
        on!(self, s => s.write_metrics(out).await)
    }

    async fn health(&self) -> Health {
        on!(self, s => s.health().await)
    }

    async fn sync(&self) -> Result<(), StoreError> {
        on!(self, s => s.sync().await)
    }

    fn catalog(&self) -> CatalogWatch {
        on!(self, s => s.catalog())
    }

    async fn create_tenant(&self, name: &str, limits: TenantLimits) -> Result<Tenant, StoreError> {
        on!(self, s => s.create_tenant(name, limits).await)
    }

    async fn set_tenant_limits(
        &self,
        name: &str,
        limits: TenantLimits,
    ) -> Result<Tenant, StoreError> {
        on!(self, s => s.set_tenant_limits(name, limits).await)
    }

    async fn add_key(&self, key: ApiKeyRecord) -> Result<(), StoreError> {
        on!(self, s => s.add_key(key).await)
    }

    async fn revoke_key(&self, key_id: &str) -> Result<(), StoreError> {
        on!(self, s => s.revoke_key(key_id).await)
    }
}
