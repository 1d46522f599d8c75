//! What to run: the workload, the protocol, the load shape.

use std::time::Duration;

/// What each connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `POST` one event per request (to `/v1/events`).
    Ingest,
    /// `POST` `batch_size` events per request (to `/v1/events/batch`).
    Batch,
    /// Poll the inbox with a lease (`batch_size` events at most), then ack what came.
    Consume,
    /// Producers ingest while consumers poll and ack; reports ingest→consume latency.
    Mixed,
    /// `GET` the URL: any server, for reference measurements.
    Get,
    /// Push delivery end to end: receivers, subscriptions, batch ingest, and the
    /// ingest→delivery latency (see [`crate::webhook`]).
    Webhook,
    /// Live tails open while producers ingest; the ingest→SSE latency (see
    /// [`crate::tail`]).
    Tail,
}

impl Workload {
    /// Every workload, in the order `--help` lists them.
    pub const ALL: [Workload; 7] = [
        Workload::Ingest,
        Workload::Batch,
        Workload::Consume,
        Workload::Mixed,
        Workload::Get,
        Workload::Webhook,
        Workload::Tail,
    ];

    /// Parses the CLI spelling.
    pub fn parse(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.as_str() == name)
    }

    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Ingest => "ingest",
            Workload::Batch => "batch",
            Workload::Consume => "consume",
            Workload::Mixed => "mixed",
            Workload::Get => "get",
            Workload::Webhook => "webhook",
            Workload::Tail => "tail",
        }
    }

    /// The path a URL without one (`http://host:port`) is given.
    fn default_path(self) -> &'static str {
        match self {
            Workload::Ingest | Workload::Mixed => "/v1/events",
            Workload::Batch | Workload::Webhook | Workload::Tail => "/v1/events/batch",
            Workload::Consume => "/v1/inbox",
            Workload::Get => "/",
        }
    }
}

/// The HTTP version spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive: one request in flight per connection.
    Http1,
    /// HTTP/2 with prior knowledge (h2c): `streams` requests in flight per connection.
    Http2,
}

impl Protocol {
    /// Parses the CLI spelling (`http1`, `http2`).
    pub fn parse(name: &str) -> Option<Protocol> {
        match name {
            "http1" => Some(Protocol::Http1),
            "http2" => Some(Protocol::Http2),
            _ => None,
        }
    }

    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
        }
    }
}

/// Which knob a sweep turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepAxis {
    /// Closed loop at each connection count: finds the capacity and its knee.
    Connections,
    /// Open loop at each request rate, on the configured connections: finds the rate
    /// where latency leaves the floor.
    Rate,
}

impl SweepAxis {
    /// The axis label of plots and tables: the webhook workload paces events (each
    /// fanned out to every endpoint), the others requests.
    pub fn label(self, workload: Workload) -> &'static str {
        match (self, workload) {
            (SweepAxis::Connections, _) => "connections",
            (SweepAxis::Rate, Workload::Webhook | Workload::Tail) => "offered rate (events/s)",
            (SweepAxis::Rate, _) => "offered rate (req/s)",
        }
    }
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Target URL (`http://host:port/path`). Without a path, the workload's own path
    /// is used (`/v1/events`, `/v1/events/batch`, `/v1/inbox`, `/`).
    pub url: http::Uri,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// What each connection does.
    pub workload: Workload,
    /// HTTP/1.1 or HTTP/2.
    pub protocol: Protocol,
    /// Connections (TCP).
    pub connections: usize,
    /// Requests in flight per HTTP/2 connection (HTTP/1.1 always has one).
    pub streams: usize,
    /// OS threads the connections are spread over, each with its own event loop.
    pub threads: usize,
    /// How long to send.
    pub duration: Duration,
    /// Open loop at this many requests per second (producers' requests, for `Mixed`);
    /// `None` is closed loop.
    pub rate: Option<u64>,
    /// Payload size of each generated event, in bytes.
    pub payload_bytes: usize,
    /// Events per request for `Batch`; the poll limit for `Consume` and `Mixed`.
    pub batch_size: usize,
    /// Fraction (0 to 1) of single-event ingests that carry an `Idempotency-Key`.
    pub key_ratio: f64,
    /// Draw those keys from this many fixed keys, so that repeats are replays; `None`
    /// makes every key new.
    pub key_space: Option<u64>,
    /// Consumer connections of `Mixed` (the rest produce). Default: a tenth, at least 1.
    pub consumers: Option<usize>,
    /// Lease taken by each poll of `Consume` and `Mixed`.
    pub lease_seconds: u32,
    /// Each poll's `wait_seconds` (long polling); 0 polls and backs off briefly when
    /// the inbox is empty.
    pub wait_seconds: u32,
    /// A request without an answer after this long counts as a timeout.
    pub timeout: Duration,
    /// For `https://`: trust only the certificates in this PEM file (else the system's).
    pub ca_file: Option<std::path::PathBuf>,
}

impl BenchConfig {
    /// Defaults: 100 HTTP/1.1 connections on 1 thread, 10 s, closed loop, 400-byte
    /// events, batches (and polls) of 100, no idempotency keys.
    pub fn new(url: http::Uri, workload: Workload) -> Self {
        BenchConfig {
            url,
            api_key: None,
            workload,
            protocol: Protocol::Http1,
            connections: 100,
            streams: 1,
            threads: 1,
            duration: Duration::from_secs(10),
            rate: None,
            payload_bytes: 400,
            batch_size: 100,
            key_ratio: 0.0,
            key_space: None,
            consumers: None,
            lease_seconds: 30,
            wait_seconds: 0,
            timeout: Duration::from_secs(10),
            ca_file: None,
        }
    }

    /// The path of the workload's main request.
    pub fn path(&self) -> &str {
        match self.url.path_and_query().map(|p| p.as_str()) {
            Some(p) if p != "/" && !p.is_empty() => p,
            _ => self.workload.default_path(),
        }
    }

    /// How many of the connections consume (only `Mixed` has both kinds).
    pub fn consumer_connections(&self) -> usize {
        match self.workload {
            Workload::Consume => self.connections,
            Workload::Mixed => self
                .consumers
                .unwrap_or(self.connections / 10)
                .clamp(1, self.connections.saturating_sub(1).max(1)),
            Workload::Ingest
            | Workload::Batch
            | Workload::Get
            | Workload::Webhook
            | Workload::Tail => 0,
        }
    }

    /// Events each successful producer request carries.
    pub fn events_per_request(&self) -> u64 {
        match self.workload {
            Workload::Get | Workload::Consume => 0,
            Workload::Ingest | Workload::Mixed => 1,
            Workload::Batch | Workload::Webhook | Workload::Tail => self.batch_size.max(1) as u64,
        }
    }

    /// Refuses settings that cannot run, with the flag to fix.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.url.scheme_str(), Some("http" | "https"))
            || self.url.authority().is_none()
        {
            return Err(format!(
                "--url must look like http://host:port/path or https://host:port/path (got {})",
                self.url
            ));
        }
        if self.url.scheme_str() == Some("https")
            && matches!(self.workload, Workload::Webhook | Workload::Tail)
        {
            return Err(format!(
                "--workload {} calls the API over plain http; use an http:// URL",
                self.workload.as_str()
            ));
        }
        if self.connections == 0 || self.threads == 0 || self.streams == 0 {
            return Err("--connections, --threads and --streams must be at least 1".into());
        }
        if self.rate == Some(0) {
            return Err("--rate must be at least 1 request per second".into());
        }
        if self.workload == Workload::Mixed && self.connections < 2 {
            return Err(
                "--workload mixed needs at least 2 connections (producers and consumers)".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.key_ratio) {
            return Err("--key-ratio is a fraction from 0 to 1".into());
        }
        if self.key_space == Some(0) {
            return Err("--key-space must be at least 1".into());
        }
        if self.batch_size == 0 || self.batch_size > 1000 {
            return Err("--batch-size must be 1 to 1000 (the API's limit per request)".into());
        }
        Ok(())
    }
}
