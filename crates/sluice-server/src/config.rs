//! The server's settings. The binary fills them from file, environment and flags.

use std::net::SocketAddr;
use std::time::Duration;

/// Default per-tenant limits; a tenant's catalog entry may override each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest single-event request body. Default 1 MiB.
    pub max_payload_bytes: usize,
    /// Largest batch request body. Default 16 MiB (1,000 events of ~16 KiB).
    pub max_batch_bytes: usize,
    /// Sustained requests per second per tenant. Default 100,000: high enough that a
    /// single default tenant can be benchmarked, low enough to stop a runaway client.
    pub rate_per_second: u32,
    /// Burst above the sustained rate. Default 200,000.
    pub rate_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 1 << 20,
            max_batch_bytes: 16 << 20,
            rate_per_second: 100_000,
            rate_burst: 200_000,
        }
    }
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Listen backlog. Default 4096: a backlog of 128 dropped connections under load in
    /// the systems Sluice replaces.
    pub backlog: u32,
    /// Open connections served at once; past it new connections get a 503 and are
    /// closed (never reset silently). Default 20,000.
    pub max_connections: usize,
    /// Time allowed to send request headers, and the longest an HTTP/1.1 keep-alive
    /// connection may sit idle between requests (slowloris guard). Default 30 s.
    pub header_read_timeout: Duration,
    /// Longest wait for the next part of a request body (the slow-body form of
    /// slowloris, which the header timeout does not cover): a body that stalls longer
    /// gets a 408 and the connection is closed. Default 30 s.
    pub body_read_timeout: Duration,
    /// HTTP/2 keep-alive ping interval; a peer that does not answer within the same
    /// time is dropped. Default 60 s.
    pub http2_keepalive: Duration,
    /// Default limits for tenants.
    pub limits: Limits,
    /// Token for `/v1/admin/*`; `None` disables the admin API.
    pub admin_token: Option<String>,
    /// Log one request in N at info level (0 = no access log, the default: per-request
    /// logging cost the systems Sluice replaces double-digit percentages).
    pub access_log_sample: u64,
    /// Time allowed at shutdown for in-flight requests to finish.
    pub shutdown_grace: Duration,
    /// Push delivery's settings.
    pub push: sluice_push::PushConfig,
    /// Origins allowed to call the API from a browser (CORS); none by default.
    pub cors: crate::cors::CorsOrigins,
}

impl ServerConfig {
    /// Defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            backlog: 4096,
            max_connections: 20_000,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            http2_keepalive: Duration::from_secs(60),
            limits: Limits::default(),
            admin_token: None,
            access_log_sample: 0,
            shutdown_grace: Duration::from_secs(30),
            push: sluice_push::PushConfig::default(),
            cors: crate::cors::CorsOrigins::None,
        }
    }
}
