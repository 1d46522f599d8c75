//! Sluice's push delivery: webhook subscriptions delivered, signed, retried and
//! recorded, over any [`sluice_store::Store`]. It knows nothing of routing: the HTTP
//! layer hands it subscriptions and asks it for test deliveries and metrics.
//!
//! - [`dispatcher`]: one worker per subscription, woken by commits;
//! - [`schedule`]: the retry schedule, jitter and `Retry-After`;
//! - [`breaker`]: the per-endpoint circuit breaker;
//! - [`signer`]: Standard Webhooks signatures and `whsec_` secrets;
//! - [`request`]: the body and headers of a delivery;
//! - [`client`]: the pooled HTTP/1.1 + HTTP/2 (ALPN) client;
//! - [`connector`] and [`target`]: SSRF protection, on the URL and on every dial.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sluice_push::{Dispatcher, PushConfig};
//! use sluice_store::embedded::{EmbeddedConfig, EmbeddedStore};
//!
//! # async fn run() {
//! let store = Arc::new(EmbeddedStore::open(EmbeddedConfig::new("./sluice-data")).expect("store"));
//! let dispatcher = Dispatcher::new(store, PushConfig::default());
//! tokio::spawn(dispatcher.clone().run());
//! // ... serve; at shutdown:
//! dispatcher.stop().await;
//! # }
//! ```

#![warn(missing_docs)]

pub mod breaker;
pub mod client;
pub mod connector;
pub mod dispatcher;
pub mod metrics;
pub mod request;
pub mod schedule;
pub mod signer;
pub mod target;

pub use dispatcher::{Dispatcher, PushConfig};
