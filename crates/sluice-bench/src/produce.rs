//! What the end-to-end workloads (webhook, tail) share: the API client, the producers
//! (batches of the run's type, closed loop or paced), and the join of each event's 201
//! with its arrival at the far end, on this process's one clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::config::BenchConfig;
use crate::runner::BenchError;
use crate::stats::{Counts, Percentiles, Report, RunShape};

/// A client for the API calls of a run.
pub(crate) fn api_client() -> ApiClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The HTTP client the end-to-end workloads call the API with.
pub(crate) type ApiClient = Client<HttpConnector, Full<Bytes>>;

/// One API call; the status and the JSON answer (`null` when it is not JSON).
pub(crate) async fn api(
    client: &ApiClient,
    config: &BenchConfig,
    method: &str,
    path: &str,
    body: String,
) -> Result<(u16, serde_json::Value), String> {
    let authority = config.url.authority().ok_or("the URL has no host")?;
    let uri = format!("http://{authority}{path}");
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(key) = &config.api_key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

/// What the producers did.
pub(crate) struct Produced {
    /// When the load started.
    pub(crate) started: Instant,
    /// How long it ran.
    pub(crate) load_elapsed: Duration,
    /// Each stored event's id and the moment its 201 arrived.
    pub(crate) acks: HashMap<String, Instant>,
    /// Requests answered 201.
    pub(crate) requests: u64,
    /// Requests that failed.
    pub(crate) failures: u64,
    /// Events stored.
    pub(crate) ingested: u64,
    /// Request latency, microseconds.
    pub(crate) latency: Histogram<u64>,
    /// Producer connections.
    pub(crate) producers: usize,
    /// The offered rate, if paced.
    pub(crate) rate: Option<u64>,
}

/// Runs `config.connections` producers of `batch_size` events of type `run_type` for
/// the run's duration, closed loop or paced at `config.rate` events per second.
pub(crate) async fn produce(
    client: &ApiClient,
    config: &BenchConfig,
    run_type: &str,
) -> Result<Produced, BenchError> {
    let batch = config.batch_size.clamp(1, 1000);
    let payload = format!(
        r#"{{"pad":"{}"}}"#,
        "x".repeat(config.payload_bytes.saturating_sub(10))
    );
    let body: Bytes = {
        let items: Vec<String> = (0..batch)
            .map(|_| format!(r#"{{"event_type":"{run_type}","payload":{payload}}}"#))
            .collect();
        Bytes::from(format!("[{}]", items.join(",")))
    };
    let started = Instant::now();
    let deadline = started + config.duration;
    let producers = config.connections.max(1);
    let interval = config
        .rate
        .map(|r| Duration::from_secs_f64(producers as f64 * batch as f64 / r.max(1) as f64));
    let acks = Arc::new(Mutex::new(HashMap::<String, Instant>::new()));
    let ingested = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| BenchError::BadConfig(e.to_string()))?;
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut tasks = Vec::new();
    for p in 0..producers {
        let (client, body, acks, ingested, requests, failures, latencies) = (
            client.clone(),
            body.clone(),
            acks.clone(),
            ingested.clone(),
            requests.clone(),
            failures.clone(),
            latencies.clone(),
        );
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let mut next = started
                + interval.map_or(Duration::ZERO, |i| i.mul_f64(p as f64 / producers as f64));
            while Instant::now() < deadline {
                if let Some(i) = interval {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
                    next += i;
                }
                let sent = Instant::now();
                match post_batch(&client, &config, body.clone()).await {
                    Ok(ids) => {
                        let now = Instant::now();
                        requests.fetch_add(1, Ordering::Relaxed);
                        ingested.fetch_add(ids.len() as u64, Ordering::Relaxed);
                        if let Ok(mut l) = latencies.lock() {
                            l.push((now - sent).as_micros() as u64);
                        }
                        if let Ok(mut acks) = acks.lock() {
                            for id in ids {
                                acks.insert(id, now);
                            }
                        }
                    }
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let load_elapsed = started.elapsed();
    let mut latency = latency;
    for us in latencies.lock().map(|l| l.clone()).unwrap_or_default() {
        let _ = latency.record(us.max(1));
    }
    Ok(Produced {
        started,
        load_elapsed,
        acks: acks.lock().map(|a| a.clone()).unwrap_or_default(),
        requests: requests.load(Ordering::Relaxed),
        failures: failures.load(Ordering::Relaxed),
        ingested: ingested.load(Ordering::Relaxed),
        latency,
        producers,
        rate: config.rate,
    })
}

/// What one far end (a webhook receiver, a live tail) saw: each event id and when it
/// arrived there.
#[derive(Default)]
pub(crate) struct Arrivals {
    seen: Mutex<Vec<(String, Instant)>>,
    count: AtomicU64,
}

impl Arrivals {
    /// Notes that event `id` arrived `at`.
    pub(crate) fn record(&self, id: String, at: Instant) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((id, at));
        }
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Checks `config`, then runs an end-to-end workload on a runtime of `config.threads`.
pub(crate) fn block_on<F>(
    config: &BenchConfig,
    run: impl FnOnce() -> F,
) -> Result<Report, BenchError>
where
    F: std::future::Future<Output = Result<Report, BenchError>>,
{
    config.validate().map_err(BenchError::BadConfig)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads.max(1))
        .enable_all()
        .build()
        .map_err(BenchError::Start)?;
    rt.block_on(run())
}

/// How often [`Produced::drain`] looks at the far ends' counters.
const DRAIN_POLL: Duration = Duration::from_millis(20);

impl Produced {
    /// Waits until every far end saw every stored event, or `within` passed.
    pub(crate) async fn drain(&self, ends: &[Arc<Arrivals>], within: Duration) {
        let expected = self.ingested * ends.len() as u64;
        let deadline = Instant::now() + within;
        loop {
            let arrived: u64 = ends.iter().map(|a| a.count.load(Ordering::Relaxed)).sum();
            if arrived >= expected || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// Joins each far end's arrivals with the 201s and reports the run: every stored
    /// event is expected once at every end.
    pub(crate) fn finish(
        &self,
        workload: &'static str,
        ends: &[Arc<Arrivals>],
    ) -> Result<Report, BenchError> {
        let mut end_to_end = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
            .map_err(|e| BenchError::BadConfig(e.to_string()))?;
        let (mut arrived, mut last_arrival) = (0u64, None);
        for end in ends {
            let seen = end.seen.lock().map(|s| s.clone()).unwrap_or_default();
            let (joined, last) = join(&self.acks, &seen, &mut end_to_end);
            arrived += joined;
            last_arrival = last_arrival.max(last);
        }
        let expected = self.ingested * ends.len() as u64;
        Ok(self.report(workload, expected, arrived, last_arrival, &end_to_end))
    }

    /// The run's report: `expected` arrivals at the far end, `arrived` of them joined
    /// with their 201s, with their ingest→arrival latencies in `end_to_end`.
    fn report(
        &self,
        workload: &'static str,
        expected: u64,
        arrived: u64,
        last_arrival: Option<Instant>,
        end_to_end: &Histogram<u64>,
    ) -> Report {
        let load_s = self.load_elapsed.as_secs_f64().max(1e-9);
        let window = last_arrival
            .map_or(self.load_elapsed, |l| l - self.started)
            .max(self.load_elapsed)
            .as_secs_f64()
            .max(1e-9);
        let mut statuses = std::collections::BTreeMap::new();
        statuses.insert(201, self.requests);
        Report {
            shape: RunShape {
                workload,
                protocol: "http1",
                connections: self.producers,
                rate: self.rate,
            },
            elapsed_s: self.load_elapsed.as_secs_f64(),
            requests: self.requests,
            success_pct: if expected == 0 {
                0.0
            } else {
                100.0 * arrived as f64 / expected as f64
            },
            req_per_s: self.requests as f64 / load_s,
            events_per_s: self.ingested as f64 / load_s,
            consumed_per_s: arrived as f64 / window,
            latency_ms: Percentiles::of(&self.latency),
            end_to_end_ms: Some(Percentiles::of(end_to_end)),
            statuses,
            counts: Counts {
                events: self.ingested,
                consumed: arrived,
                io_errors: self.failures,
                ..Counts::default()
            },
        }
    }
}

/// Records, per event seen at the far end (its first arrival only), the time from its
/// 201 to that arrival; answers how many joined and the latest arrival.
fn join(
    acks: &HashMap<String, Instant>,
    seen: &[(String, Instant)],
    into: &mut Histogram<u64>,
) -> (u64, Option<Instant>) {
    let mut first: HashMap<&str, Instant> = HashMap::with_capacity(seen.len());
    for (id, at) in seen {
        first.entry(id.as_str()).or_insert(*at);
    }
    let (mut joined, mut last) = (0, None::<Instant>);
    for (id, at) in first {
        if let Some(acked) = acks.get(id) {
            joined += 1;
            last = Some(last.map_or(at, |l| l.max(at)));
            let us = at.saturating_duration_since(*acked).as_micros() as u64;
            let _ = into.record(us.max(1));
        }
    }
    (joined, last)
}

/// One batch POST; the ids of the events it stored.
pub(crate) async fn post_batch(
    client: &ApiClient,
    config: &BenchConfig,
    body: Bytes,
) -> Result<Vec<String>, String> {
    let authority = config.url.authority().ok_or("the URL has no host")?;
    let mut req = http::Request::post(format!("http://{authority}/v1/events/batch"))
        .header("content-type", "application/json");
    if let Some(key) = &config.api_key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    if resp.status() != 201 {
        return Err(format!("HTTP {}", resp.status()));
    }
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(json["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|i| i["event_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}
