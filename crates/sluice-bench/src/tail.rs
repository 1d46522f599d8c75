//! The tail workload: how soon a live tail (`GET /v1/stream`) shows an event.
//!
//! It opens `tails` streams of this run's event type, waits until each has its `200`,
//! ingests for the run's duration (closed loop, or paced at `rate` events per second,
//! in batches of `batch_size`: 1 for single events), waits for the streams to catch up,
//! and reports, per event per tail, the time from the producer's 201 to the moment its
//! SSE message (`id:` line) arrived: both ends on this process's clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::config::BenchConfig;
use crate::produce::{api_client, block_on, produce, Arrivals};
use crate::runner::BenchError;
use crate::stats::Report;

/// The tail workload's own settings.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Streams open during the run, each reading every event of the run.
    pub tails: usize,
    /// How long to wait for the streams to catch up after the load stops.
    pub drain: Duration,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            tails: 1,
            drain: Duration::from_secs(10),
        }
    }
}

/// The most bytes of one SSE line a reader keeps while it waits for its end: far above
/// any `id:` line; a longer line is a `data:` one, skipped.
const LINE_BYTES_MAX: usize = 64;

/// Runs the workload; see the module docs.
pub fn run_tail(config: &BenchConfig, options: &TailOptions) -> Result<Report, BenchError> {
    block_on(config, || run_async(config, options))
}

async fn run_async(config: &BenchConfig, options: &TailOptions) -> Result<Report, BenchError> {
    let run_type = format!("bench.tail.r{:08x}", rand::random::<u32>());
    let authority = config
        .url
        .authority()
        .ok_or_else(|| BenchError::BadConfig("the URL has no host".into()))?
        .to_string();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let streams: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let mut readers = Vec::new();
    let mut seen_all = Vec::new();
    for _ in 0..options.tails.max(1) {
        let mut req = http::Request::get(format!(
            "http://{authority}/v1/stream?event_type={run_type}"
        ))
        .header("accept", "text/event-stream");
        if let Some(key) = &config.api_key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| BenchError::BadConfig(e.to_string()))?;
        let resp = streams
            .request(req)
            .await
            .map_err(|e| BenchError::BadConfig(format!("opening a tail: {e}")))?;
        if resp.status() != 200 {
            return Err(BenchError::BadConfig(format!(
                "GET /v1/stream answered {} (the key needs the consume scope)",
                resp.status()
            )));
        }
        let seen = Arc::new(Arrivals::default());
        seen_all.push(seen.clone());
        let mut body = resp.into_body();
        readers.push(tokio::spawn(async move {
            let mut line: Vec<u8> = Vec::with_capacity(LINE_BYTES_MAX);
            let mut long = false;
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let now = Instant::now();
                for &b in data.iter() {
                    if b != b'\n' {
                        if line.len() < LINE_BYTES_MAX {
                            line.push(b);
                        } else {
                            long = true;
                        }
                        continue;
                    }
                    if !long {
                        if let Some(id) = line.strip_prefix(b"id: ") {
                            seen.record(String::from_utf8_lossy(id).into_owned(), now);
                        }
                    }
                    line.clear();
                    long = false;
                }
            }
        }));
    }

    let client = api_client();
    let produced = produce(&client, config, &run_type).await?;
    produced.drain(&seen_all, options.drain).await;
    for r in &readers {
        r.abort();
    }
    produced.finish("tail", &seen_all)
}
