//! What to run.

use std::time::Duration;

/// What each request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `POST` one event per request (to `/v1/events`).
    Ingest,
    /// `POST` `batch_size` events per request (to `/v1/events/batch`).
    Batch,
    /// `GET` the URL: any server, for reference measurements.
    Get,
}

impl Workload {
    /// Parses the CLI spelling.
    pub fn parse(name: &str) -> Option<Workload> {
        match name {
            "ingest" => Some(Workload::Ingest),
            "batch" => Some(Workload::Batch),
            "get" => Some(Workload::Get),
            _ => None,
        }
    }

    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Ingest => "ingest",
            Workload::Batch => "batch",
            Workload::Get => "get",
        }
    }
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Target URL (`http://host:port/path`).
    pub url: http::Uri,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// What each request does.
    pub workload: Workload,
    /// Keep-alive connections (HTTP/1.1).
    pub connections: usize,
    /// OS threads the connections are spread over, each with its own event loop.
    pub threads: usize,
    /// How long to send.
    pub duration: Duration,
    /// Open loop at this many requests per second; `None` is closed loop.
    pub rate: Option<u64>,
    /// Payload size of each generated event, in bytes.
    pub payload_bytes: usize,
    /// Events per request for `Workload::Batch`.
    pub batch_size: usize,
    /// A request without an answer after this long counts as a timeout.
    pub timeout: Duration,
}

impl BenchConfig {
    /// Defaults: 100 connections on 1 thread, 10 s, closed loop, 400-byte events.
    pub fn new(url: http::Uri, workload: Workload) -> Self {
        BenchConfig {
            url,
            api_key: None,
            workload,
            connections: 100,
            threads: 1,
            duration: Duration::from_secs(10),
            rate: None,
            payload_bytes: 400,
            batch_size: 100,
            timeout: Duration::from_secs(10),
        }
    }

    /// The request body of this workload (empty for `Get`).
    pub fn body(&self) -> bytes::Bytes {
        let event = || {
            let pad = "x".repeat(self.payload_bytes.saturating_sub(40));
            format!(r#"{{"event_type":"bench.event","payload":{{"pad":"{pad}"}}}}"#)
        };
        match self.workload {
            Workload::Get => bytes::Bytes::new(),
            Workload::Ingest => bytes::Bytes::from(event()),
            Workload::Batch => {
                let items = vec![event(); self.batch_size.max(1)];
                bytes::Bytes::from(format!("[{}]", items.join(",")))
            }
        }
    }

    /// Events each successful request carries.
    pub fn events_per_request(&self) -> u64 {
        match self.workload {
            Workload::Get => 0,
            Workload::Ingest => 1,
            Workload::Batch => self.batch_size.max(1) as u64,
        }
    }
}
