//! The storage backend `sluice serve` runs on, picked at run time (`--store`).
//!
//! An enum rather than a trait object: every [`Store`] method is one `match` on it, so
//! the hot path pays a branch, not an allocation or an indirect call, and the server
//! stays generic over one concrete type.

use std::sync::Arc;

use sluice_store::delivery::{
    AttemptPage, AttemptQuery, DeadLetterPage, DeliveryState, Fetched, Replay, Settled,
};
use sluice_store::embedded::EmbeddedStore;
use sluice_store::exposition::Exposition;
use sluice_store::feed::CommitFeed;
use sluice_store::jetstream::JetStreamStore;
use sluice_store::{
    AppendOutcome, CatalogChange, CatalogWatch, Changed, EventId, EventState, Health, InboxKey,
    InboxPage, InboxQuery, InboxSummary, LeaseAction, LeaseOutcome, LogPage, LogQuery, NewEvent,
    Sequence, Settle, SettleOutcome, Store, StoreError, StoreStats, StoredEvent, SubKey, TenantId,
};
use tokio::sync::Notify;

/// One of the storage backends.
pub enum Backend {
    /// The embedded engine: one process, its own data directory.
    Embedded(EmbeddedStore),
    /// NATS JetStream: a stateless node of a cluster.
    JetStream(JetStreamStore),
}

/// Runs `$body` with `$s` bound to the backend in use.
macro_rules! on {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            Backend::Embedded($s) => $body,
            Backend::JetStream($s) => $body,
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

    async fn get(
        &self,
        inbox: impl Into<InboxKey> + Send,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let inbox = inbox.into();
        on!(self, s => s.get(inbox, id).await)
    }

    async fn settle(
        &self,
        inbox: impl Into<InboxKey> + Send,
        ids: Vec<EventId>,
        how: Settle,
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        let inbox = inbox.into();
        on!(self, s => s.settle(inbox, ids, how).await)
    }

    async fn ack_leased(
        &self,
        inbox: impl Into<InboxKey> + Send,
        acks: Vec<(EventId, u32)>,
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        let inbox = inbox.into();
        on!(self, s => s.ack_leased(inbox, acks).await)
    }

    async fn lease_action(
        &self,
        inbox: impl Into<InboxKey> + Send,
        id: EventId,
        action: LeaseAction,
    ) -> Result<LeaseOutcome, StoreError> {
        let inbox = inbox.into();
        on!(self, s => s.lease_action(inbox, id, action).await)
    }

    async fn inbox_states(
        &self,
        inbox: impl Into<InboxKey> + Send,
        ids: Vec<EventId>,
    ) -> Result<Vec<Option<(EventState, u32)>>, StoreError> {
        let inbox = inbox.into();
        on!(self, s => s.inbox_states(inbox, ids).await)
    }

    async fn inbox_dead_letters(
        &self,
        inbox: impl Into<InboxKey> + Send,
        after: Option<Sequence>,
        limit: usize,
    ) -> Result<InboxPage, StoreError> {
        let inbox = inbox.into();
        on!(self, s => s.inbox_dead_letters(inbox, after, limit).await)
    }

    fn inbox_signal(&self, inbox: impl Into<InboxKey>, interchangeable: bool) -> Arc<Notify> {
        let inbox = inbox.into();
        on!(self, s => s.inbox_signal(inbox, interchangeable))
    }

    async fn inbox_summaries(&self) -> Result<Vec<InboxSummary>, StoreError> {
        on!(self, s => s.inbox_summaries().await)
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

    async fn catalog_sync(&self) -> Result<(), StoreError> {
        on!(self, s => s.catalog_sync().await)
    }

    async fn fetch_deliveries(&self, sub: SubKey, max: usize) -> Result<Fetched, StoreError> {
        on!(self, s => s.fetch_deliveries(sub, max).await)
    }

    async fn settle_deliveries(
        &self,
        sub: SubKey,
        settled: Vec<Settled>,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        on!(self, s => s.settle_deliveries(sub, settled).await)
    }

    async fn delivery_state(&self, sub: SubKey) -> Result<DeliveryState, StoreError> {
        on!(self, s => s.delivery_state(sub).await)
    }

    async fn attempts(&self, sub: SubKey, query: AttemptQuery) -> Result<AttemptPage, StoreError> {
        on!(self, s => s.attempts(sub, query).await)
    }

    async fn dead_letters(
        &self,
        sub: SubKey,
        after: Option<Sequence>,
        limit: usize,
    ) -> Result<DeadLetterPage, StoreError> {
        on!(self, s => s.dead_letters(sub, after, limit).await)
    }

    async fn replay(&self, sub: SubKey, what: Replay) -> Result<u64, StoreError> {
        on!(self, s => s.replay(sub, what).await)
    }

    async fn change_catalog(&self, change: CatalogChange) -> Result<Changed, StoreError> {
        on!(self, s => s.change_catalog(change).await)
    }
}
