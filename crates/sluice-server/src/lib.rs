//! Sluice's HTTP layer: ingest, inbox, admin and operations endpoints over any
//! [`sluice_store::Store`]. It knows nothing of file formats.
//!
//! - [`routes`]: the route table, from which [`router`], the metrics labels and the
//!   OpenAPI paths are derived;
//! - [`app`]: the request path (naming, routing, the caller, the handler, the answer);
//! - `handlers`: one module per part of the API;
//! - [`body`], [`reply`], [`access`]: reading bodies, writing answers, checking callers;
//! - [`envelope`]: parsing and validating ingest bodies;
//! - `json`: [`sluice_wire::json`], the JSON writer the answers use;
//! - [`server`] and [`listener`]: connections.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sluice_server::{App, ServerConfig, listener, serve};
//! use sluice_store::embedded::{EmbeddedConfig, EmbeddedStore};
//!
//! # async fn run() -> std::io::Result<()> {
//! let store = Arc::new(EmbeddedStore::open(EmbeddedConfig::new("./sluice-data")).expect("store"));
//! let config = ServerConfig::new("127.0.0.1:8080".parse().expect("addr"));
//! let (socket, _report) = listener::bind(config.listen, config.backlog)?;
//! let app = App::new(store, config.clone());
//! serve(app, socket, &config, None, async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod access;
pub mod app;
pub mod auth;
pub mod body;
pub mod config;
pub mod cors;
pub mod cursor;
mod drain;
pub mod envelope;
pub mod known;
pub use sluice_wire::json;
mod handlers;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod process;
pub mod reply;
pub mod router;
pub mod routes;
pub mod server;
pub mod tenants;
pub mod tls;
pub mod validate;

pub use app::App;
pub use config::{Limits, ServerConfig};
pub use server::serve;
