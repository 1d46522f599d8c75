//! The command line. Flags override environment variables (`SLUICE_*`), which override
//! the TOML file given with `--config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

/// Sluice: durable event ingestion and delivery.
///
/// Producers POST JSON events; Sluice makes each one durable (fsync) before it answers.
/// Consumers pull them from a per-tenant inbox with leases and acks.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server. On an empty data directory it creates tenant "default" and prints
    /// an API key with all scopes.
    #[command(
        after_help = "Every flag can also be set in the TOML file given with --config (same name; \
retention as [retention] acked/pending) or as an environment variable SLUICE_<NAME> (for example \
SLUICE_DATA_DIR, SLUICE_RETENTION__ACKED). Precedence: file < environment < flags."
    )]
    Serve(Box<ServeFlags>),
    /// Manage tenants in a stopped server's data directory (or use the admin API).
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Manage API keys in a stopped server's data directory (or use the admin API).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Verify every checksum in a data directory. Exits 1 if it is corrupt.
    Check(DataDir),
    /// Show a data directory's segments, event counts and sizes.
    Inspect(DataDir),
    /// Load-test a server: closed loop (N connections as fast as answers come) or open
    /// loop (--rate, latency from each request's intended send time, free of
    /// coordinated omission). Prints req/s, events/s and latency percentiles.
    Bench(BenchFlags),
}

#[derive(Debug, Args)]
pub struct BenchFlags {
    /// Target URL, e.g. http://127.0.0.1:8080/v1/events
    #[arg(long)]
    pub url: String,
    /// API key, sent as `Authorization: Bearer`
    #[arg(long, env = "SLUICE_API_KEY")]
    pub api_key: Option<String>,
    /// ingest (one event per POST), batch (--batch-size events per POST) or get (any URL)
    #[arg(long, default_value = "ingest", value_parser = ["ingest", "batch", "get"])]
    pub workload: String,
    /// Keep-alive connections
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Threads the connections are spread over
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// How long to send, e.g. 10s or 1m
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Open loop at this many requests per second (default: closed loop)
    #[arg(long)]
    pub rate: Option<u64>,
    /// Size of each generated event's payload, in bytes
    #[arg(long, default_value_t = 400)]
    pub payload_bytes: usize,
    /// Events per request for --workload batch
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Print the report as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Flags of `sluice serve`. Every one can also be set in the TOML file (same name) or
/// as `SLUICE_<NAME>` (for example `SLUICE_DATA_DIR`); flags win over both.
#[derive(Debug, Args, Serialize, Default)]
pub struct ServeFlags {
    /// TOML configuration file
    #[arg(long, env = "SLUICE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: ./sluice-data]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// When a 2xx is sent: `fsync` (after fdatasync of the group commit; nothing
    /// acknowledged is ever lost), `interval` (after the write; fsync every
    /// --fsync-interval, so a power loss can lose that window), or `none` (tests only)
    /// [default: fsync]
    #[arg(long, value_parser = ["fsync", "interval", "none"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<String>,
    /// Sync period in `interval` mode, e.g. 10ms [default: 10ms]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsync_interval: Option<String>,
    /// Token for the admin API (/v1/admin); without it the admin API is disabled
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// PEM certificate chain: with --tls-key, the port serves TLS (ALPN: h2, http/1.1)
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Listen backlog; the kernel caps it at net.core.somaxconn [default: 4096]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u32>,
    /// Connections served at once; beyond it new ones get 503 and are closed [default: 20000]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Time to send request headers, and the longest an idle keep-alive connection
    /// is kept [default: 30s]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<String>,
    /// Default per-tenant limit on a single event's payload, in bytes [default: 1048576]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_payload_bytes: Option<usize>,
    /// Largest batch request body, in bytes [default: 16777216]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_bytes: Option<usize>,
    /// Default per-tenant sustained request rate, per second [default: 100000]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    /// Default per-tenant burst above the rate [default: 200000]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_burst: Option<u32>,
    /// Commands the commit queue holds before requests get 503 overloaded [default: 8192]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_queue_depth: Option<usize>,
    /// Size of each log segment, in bytes [default: 67108864]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_bytes: Option<u64>,
    /// How long idempotency keys are remembered [default: 24h]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_window: Option<String>,
    /// How long acked events are kept for replay (TOML: retention.acked) [default: 7d]
    #[arg(long)]
    #[serde(skip)]
    pub retention_acked: Option<String>,
    /// How long unconsumed events are kept (TOML: retention.pending) [default: 30d]
    #[arg(long)]
    #[serde(skip)]
    pub retention_pending: Option<String>,
    /// Log one request in N (0: no access log) [default: 0]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_sample: Option<u64>,
    /// Open a damaged data directory by truncating the damaged segment at the first bad
    /// batch. Events after the damage in that segment are lost; run `sluice check` first
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repair: bool,
    /// Slow-disk simulation: extra delay per group commit (for demos and overload tests)
    #[arg(long, hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_delay: Option<String>,
}

#[derive(Debug, Args)]
pub struct DataDir {
    /// Data directory
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct LimitFlags {
    /// Largest single-event payload, in bytes
    #[arg(long)]
    pub max_payload_bytes: Option<u32>,
    /// Sustained requests per second
    #[arg(long)]
    pub rate_per_second: Option<u32>,
    /// Burst above the rate
    #[arg(long)]
    pub rate_burst: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant.
    Create {
        /// Name: 1-64 characters of a-z, 0-9, '_' or '-'
        name: String,
        #[command(flatten)]
        limits: LimitFlags,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Replace a tenant's limits (unset flags fall back to the server defaults).
    SetLimits {
        /// Tenant name
        name: String,
        #[command(flatten)]
        limits: LimitFlags,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (it is shown only once).
    Create {
        /// Tenant name
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Comma-separated scopes: ingest, consume, manage
        #[arg(long, default_value = "ingest,consume,manage", value_delimiter = ',')]
        scopes: Vec<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List keys (never the secrets).
    List {
        /// Only this tenant's keys
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Revoke a key by its id (key_...).
    Revoke {
        /// The key id
        key_id: String,
        #[command(flatten)]
        dir: DataDir,
    },
}
