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
    /// Print a shell completion script: `sluice completions bash > /etc/bash_completion.d/sluice`
    /// (also zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Load-test a server: closed loop (N connections as fast as answers come) or open
    /// loop (--rate, latency from each request's intended send time, free of
    /// coordinated omission). Prints req/s, events/s, latency percentiles and every
    /// error; --sweep runs several loads and --plot draws them.
    #[command(after_help = "Examples:
  sluice bench --url http://127.0.0.1:8080 --api-key sk_... --workload ingest --connections 100
  sluice bench --url http://127.0.0.1:8080 --workload batch --batch-size 100 --duration 30s
  sluice bench --url http://127.0.0.1:8080 --workload ingest --rate 10000       # open loop
  sluice bench --url http://127.0.0.1:8080 --workload mixed --connections 50    # ingest→consume latency
  sluice bench --url http://127.0.0.1:8080 --sweep 10,100,1000,10000 --plot sweep.svg
  sluice bench --url http://127.0.0.1:9000/ --workload get --protocol http2 --streams 10
  sluice bench --url http://127.0.0.1:8080 --workload webhook --endpoints 4 --rate 10000
  sluice bench --url http://127.0.0.1:8080 --workload tail --batch-size 1 --rate 5000

A URL without a path gets the workload's own: /v1/events, /v1/events/batch or /v1/inbox.
Connections past the open-files limit are refused up front; the limit is raised to the
hard limit first.")]
    Bench(Box<BenchFlags>),
}

#[derive(Debug, Args)]
pub struct BenchFlags {
    /// Target, e.g. http://127.0.0.1:8080 or https://sluice.example:8443 (a path, if
    /// given, replaces the workload's)
    #[arg(long)]
    pub url: String,
    /// For https:// URLs: trust only the certificates in this PEM file (a private CA,
    /// or a self-signed server's own certificate) instead of the system's roots
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// API key, sent as `Authorization: Bearer`
    #[arg(long, env = "SLUICE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// ingest: one event per POST; batch: --batch-size events per POST; consume: poll the
    /// inbox with a lease, then ack; mixed: producers and --consumers at once, with
    /// ingest→consume latency; get: GET the URL (any server); webhook: start --endpoints
    /// receivers here, subscribe each, ingest batches, and report deliveries/s and
    /// ingest→delivery latency (the key needs the manage scope, and the server
    /// --allow-private-targets, since the receivers are on this machine); tail: open
    /// --tails live tails (GET /v1/stream), ingest --batch-size events per POST, and
    /// report the time from each event's 201 to its arrival on every tail
    #[arg(long, default_value = "ingest", value_parser = ["ingest", "batch", "consume", "mixed", "get", "webhook", "tail"])]
    pub workload: String,
    /// HTTP version: http1 (keep-alive) or http2 (h2c, prior knowledge)
    #[arg(long, default_value = "http1", value_parser = ["http1", "http2"])]
    pub protocol: String,
    /// TCP connections
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Requests in flight per connection with --protocol http2
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Threads the connections are spread over, each with its own event loop
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// How long to send (per sweep point), e.g. 10s or 1m
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Open loop at this many requests per second (default: closed loop)
    #[arg(long)]
    pub rate: Option<u64>,
    /// Size of each generated event's payload, in bytes
    #[arg(long, default_value_t = 400)]
    pub payload_bytes: usize,
    /// Events per request with --workload batch; the poll limit for consume and mixed
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Fraction (0 to 1) of single-event ingests sent with an Idempotency-Key
    #[arg(long, default_value_t = 0.0)]
    pub key_ratio: f64,
    /// Draw those keys from this many fixed keys, so repeats are replays (default:
    /// every key new)
    #[arg(long)]
    pub key_space: Option<u64>,
    /// Consumer connections of --workload mixed (default: a tenth, at least 1)
    #[arg(long)]
    pub consumers: Option<usize>,
    /// Lease each poll takes, in seconds (consume and mixed)
    #[arg(long, default_value_t = 30)]
    pub lease_seconds: u32,
    /// Long-poll: each poll of consume and mixed waits up to this long for an event
    /// (0..=20; 0 polls and, when empty, backs off 1 ms before polling again)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub wait_seconds: u32,
    /// Receivers (and subscriptions) of --workload webhook; each event goes to every one
    #[arg(long, default_value_t = 4)]
    pub endpoints: usize,
    /// Each webhook subscription's max_in_flight (--workload webhook)
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: u32,
    /// How long each webhook receiver takes to answer, e.g. 5ms (--workload webhook)
    #[arg(long, default_value = "0ms")]
    pub receiver_delay: String,
    /// Live tails --workload tail opens; every one reads every event of the run
    #[arg(long, default_value_t = 1)]
    pub tails: usize,
    /// A request without an answer after this long is a timeout
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// Run once per value, e.g. 10,100,1000,10000 (connections; rates with
    /// --sweep-over rate), and print one row each
    #[arg(long, value_delimiter = ',')]
    pub sweep: Vec<u64>,
    /// What --sweep varies: connections (closed loop unless --rate) or rate (open loop)
    #[arg(long, default_value = "connections", value_parser = ["connections", "rate"])]
    pub sweep_over: String,
    /// Write an SVG plot of a sweep (throughput, p50/p99 latency and success % against load)
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print the report as JSON (an array for a sweep) instead of a table
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero (code 2) when any run's success falls below this percentage, so a
    /// script or CI job notices a run in which requests failed
    #[arg(long, default_value_t = 100.0)]
    pub min_success: f64,
}

/// Flags of `sluice serve`. Every one can also be set in the TOML file (same name) or
/// as `SLUICE_<NAME>` (for example `SLUICE_DATA_DIR`); flags win over both.
#[derive(Debug, Args, Serialize, Default)]
pub struct ServeFlags {
    /// TOML configuration file
    #[arg(long, env = "SLUICE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Storage backend: `embedded` (a log in --data-dir, in this process) or `nats`
    /// (a NATS JetStream cluster at --nats-url; any number of Sluice nodes can serve
    /// it) [default: embedded]
    #[arg(long, value_parser = ["embedded", "nats"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// With --store nats: the servers, comma-separated, e.g.
    /// nats://h1:4222,nats://h2:4222 [default: nats://127.0.0.1:4222]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// With --store nats: replicas of each stream and of the catalog bucket, when this
    /// node creates them (3 on a 3-node cluster: a write survives one server's loss)
    /// [default: 1]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_replicas: Option<usize>,
    /// With --store nats: partition streams of a new deployment (each is one Raft
    /// group; tenants are spread over them). Fixed once the deployment exists [default: 3]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_partitions: Option<u32>,
    /// With --store nats: prefix of every stream, subject and bucket, so deployments
    /// can share a cluster ([a-z0-9_]) [default: sluice]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_namespace: Option<String>,
    /// With --store nats and --durability fsync: the servers' monitoring addresses
    /// (host:port, comma-separated), read to check that every server fsyncs before it
    /// acknowledges [default: each --nats-url host, port 8222]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_monitor: Option<String>,
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
    /// In fsync mode under concurrent load, the least time between the starts of two
    /// syncs; requests that arrive meanwhile share the next one. Keeps the sync rate
    /// under metered cloud disks' operation budgets (past ~2,500 syncs/s the test VMs'
    /// disk stalls 10-20 ms every 100 ms). A lone client is never held back. 0 turns
    /// pacing off, e.g. on local NVMe [default: 1ms]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_interval_min: Option<String>,
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
    /// Longest wait for the next part of a request body; a body that stalls longer gets
    /// 408 and the connection is closed [default: 30s]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_read_timeout: Option<String>,
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
    /// Allow webhook targets on private, loopback and local addresses (tests, private
    /// networks). Without it they are refused at creation and at every connect
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_private_targets: bool,
    /// Waits before each webhook retry, comma-separated; the attempt after the last
    /// step is the last (its failure makes a dead letter) [default: 5s,5m,30m,2h,5h,10h,10h]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_retry_schedule: Option<String>,
    /// How long a webhook attempt may take, connect to answer [default: 15s]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_timeout: Option<String>,
    /// Disable a subscription that has had nothing but failures for this long [default: 5d]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_disable_after: Option<String>,
    /// How long an endpoint's circuit breaker first stays open after 5 failures in a
    /// row (it doubles on each failed probe, up to 10 min) [default: 30s]
    #[arg(long, hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_breaker_open: Option<String>,
    /// Log one request in N (0: no access log) [default: 0]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_sample: Option<u64>,
    /// Origins allowed to call the API from a browser (CORS): "*" or a comma-separated
    /// list such as https://app.example.com; preflights are answered before auth
    /// [default: none]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_origins: Option<String>,
    /// Open a damaged data directory by truncating the damaged segment at the first bad
    /// batch. Events after the damage in that segment are lost; run `sluice check` first
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repair: bool,
    /// Slow-disk simulation: extra time per group commit's sync (for demos and overload tests)
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
