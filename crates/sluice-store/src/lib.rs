//! Sluice's storage: everything about keeping events, nothing about HTTP.
//!
//! - [`Store`] is the one trait the server is written against;
//! - [`embedded::EmbeddedStore`] is the default backend: a segmented, append-only log
//!   with group commit, in process;
//! - [`conformance`] is the backend-independent test suite every backend must pass.
//!
//! ```no_run
//! use bytes::Bytes;
//! use sluice_store::{embedded::{EmbeddedConfig, EmbeddedStore}, ConsumerId, NewEvent, Store, TenantId, InboxQuery};
//!
//! # async fn demo() -> Result<(), sluice_store::StoreError> {
//! let store = EmbeddedStore::open(EmbeddedConfig::new("./sluice-data"))?;
//! let outcomes = store.append(vec![NewEvent {
//!     tenant: TenantId(1),
//!     event_type: Bytes::from_static(b"order.created"),
//!     source: None,
//!     occurred_at: None,
//!     idempotency: None,
//!     payload: Bytes::from_static(br#"{"order":42}"#),
//! }]).await?;
//! // The event is on disk (fdatasync'd) once `append` returns.
//! let page = store.list(InboxQuery { tenant: TenantId(1), consumer: ConsumerId::DEFAULT,
//!     limit: 10, after: None,
//!     event_type: None, lease_ms: Some(30_000), max_deliveries: None }).await?;
//! assert_eq!(page.events.len(), 1);
//! # let _ = outcomes; Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod catalog;
pub mod conformance;
pub mod delivery;
pub mod embedded;
mod error;
mod event_id;
pub mod exposition;
pub mod feed;
pub mod idhash;
#[cfg(feature = "jetstream")]
pub mod jetstream;
mod store;
mod types;

pub use catalog::{
    ApiKeyRecord, Catalog, CatalogChange, Changed, Consumer, ConsumerStart, InboxSettings,
    NewConsumer, NewSubscription, Ordering, Scope, SigningSecret, SubKey, Subscription,
    SubscriptionPatch, SubscriptionStatus, Tenant, TenantLimits,
};
pub use error::StoreError;
pub use event_id::EventId;
pub use store::{CatalogOps, CatalogWatch, Store, StoreStats};
pub use types::{
    now_ms, AppendOutcome, Committed, ConsumerId, EventState, Health, IdempotencyKey, InboxKey,
    InboxPage, InboxQuery, InboxSummary, LeaseAction, LeaseOutcome, LogEvent, LogPage, LogQuery,
    NewEvent, Sequence, Settle, SettleOutcome, StoredEvent, TenantId, UnixMs,
};
