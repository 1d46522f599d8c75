//! The webhook workload: push delivery end to end.
//!
//! It starts its own receivers (one HTTP server per endpoint, on 127.0.0.1), creates one
//! subscription per endpoint through the API (each takes every event of this run's
//! type, so each event is delivered once per endpoint), ingests batches for the run's
//! duration (closed loop, or paced at `rate` events per second), waits for the
//! deliveries to drain, deletes the subscriptions, and reports:
//! - deliveries per second (arrivals at the receivers over the run and its drain);
//! - success: the share of expected deliveries (events × endpoints) that arrived;
//! - ingest→delivery latency: from the producer's 201 (the commit, as the client sees
//!   it) to the arrival at the receiver, per delivery.
//!
//! The receivers are in this process, so both ends of each latency are on one clock.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::config::BenchConfig;
use crate::runner::BenchError;
use crate::stats::{Counts, Percentiles, Report, RunShape};

/// The webhook workload's own settings.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Receivers, each with its own subscription.
    pub endpoints: usize,
    /// Each subscription's `max_in_flight` (`ordering: none`).
    pub max_in_flight: u32,
    /// How long each receiver waits before answering (a slow endpoint).
    pub receiver_delay: Duration,
    /// How long to wait for the deliveries to drain after the load stops.
    pub drain: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            endpoints: 4,
            max_in_flight: 64,
            receiver_delay: Duration::ZERO,
            drain: Duration::from_secs(30),
        }
    }
}

/// What one receiver saw: each delivery's event id and arrival.
#[derive(Default)]
struct Arrivals {
    seen: Mutex<Vec<(String, Instant)>>,
    count: AtomicU64,
}

type ApiClient = Client<HttpConnector, Full<Bytes>>;

async fn api(
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

/// Runs the workload; see the module docs.
pub fn run_webhook(config: &BenchConfig, options: &WebhookOptions) -> Result<Report, BenchError> {
    if config.url.scheme_str() == Some("https") {
        return Err(BenchError::BadConfig(
            "--workload webhook drives its own receivers over http; use an http:// server URL"
                .into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads.max(1))
        .enable_all()
        .build()
        .map_err(BenchError::Start)?;
    rt.block_on(run_async(config, options))
}

async fn run_async(config: &BenchConfig, options: &WebhookOptions) -> Result<Report, BenchError> {
    let bad = BenchError::BadConfig;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: ApiClient = Client::builder(TokioExecutor::new()).build(connector);
    let run_type = format!("bench.webhook.r{:08x}", rand::random::<u32>());

    // Receivers.
    let mut endpoints = Vec::with_capacity(options.endpoints);
    for _ in 0..options.endpoints.max(1) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(BenchError::Start)?;
        let addr = listener.local_addr().map_err(BenchError::Start)?;
        let arrivals = Arc::new(Arrivals::default());
        let a = arrivals.clone();
        let delay = options.receiver_delay;
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let a = a.clone();
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let a = a.clone();
                            async move {
                                let id = req
                                    .headers()
                                    .get("webhook-id")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned();
                                let _ = req.into_body().collect().await;
                                let now = Instant::now();
                                if let Ok(mut seen) = a.seen.lock() {
                                    seen.push((id, now));
                                }
                                a.count.fetch_add(1, Ordering::Relaxed);
                                if !delay.is_zero() {
                                    tokio::time::sleep(delay).await;
                                }
                                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        endpoints.push((addr, arrivals));
    }

    // Subscriptions.
    let mut subs = Vec::new();
    for (addr, _) in &endpoints {
        let body = serde_json::json!({
            "target_url": format!("http://{addr}/hook"),
            "event_types": [run_type],
            "ordering": "none",
            "max_in_flight": options.max_in_flight,
            "description": "sluice bench --workload webhook",
        });
        let (status, json) = api(
            &client,
            config,
            "POST",
            "/v1/subscriptions",
            body.to_string(),
        )
        .await
        .map_err(bad)?;
        if status != 201 {
            return Err(BenchError::BadConfig(format!(
                "creating a subscription answered {status}: {json} (the key needs the manage scope, and the server --allow-private-targets to reach this machine's receivers)"
            )));
        }
        subs.push(json["id"].as_str().unwrap_or_default().to_owned());
    }

    // Producers: batches of `batch_size` events.
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
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
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
    // Drain: wait (on the counters) until every delivery arrived, or the drain time.
    let expected = ingested.load(Ordering::Relaxed) * endpoints.len() as u64;
    let drain_deadline = Instant::now() + options.drain;
    loop {
        let arrived: u64 = endpoints
            .iter()
            .map(|(_, a)| a.count.load(Ordering::Relaxed))
            .sum();
        if arrived >= expected || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in &subs {
        let _ = api(
            &client,
            config,
            "DELETE",
            &format!("/v1/subscriptions/{id}"),
            String::new(),
        )
        .await;
    }

    // Join the two ends.
    let acks = acks.lock().map(|a| a.clone()).unwrap_or_default();
    let mut end_to_end = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| BenchError::BadConfig(e.to_string()))?;
    let mut delivered = 0u64;
    let mut last_arrival = started;
    for (_, arrivals) in &endpoints {
        let seen = arrivals.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let mut first: HashMap<&str, Instant> = HashMap::with_capacity(seen.len());
        for (id, at) in &seen {
            first.entry(id.as_str()).or_insert(*at);
        }
        for (id, at) in first {
            if let Some(acked) = acks.get(id) {
                delivered += 1;
                last_arrival = last_arrival.max(at);
                let us = at.saturating_duration_since(*acked).as_micros() as u64;
                let _ = end_to_end.record(us.max(1));
            }
        }
    }
    for us in latencies.lock().map(|l| l.clone()).unwrap_or_default() {
        let _ = latency.record(us.max(1));
    }
    let delivery_window = (last_arrival - started)
        .max(load_elapsed)
        .as_secs_f64()
        .max(1e-9);
    let requests = requests.load(Ordering::Relaxed);
    let failed = failures.load(Ordering::Relaxed);
    let ingested = ingested.load(Ordering::Relaxed);
    let mut statuses = std::collections::BTreeMap::new();
    statuses.insert(201, requests);
    Ok(Report {
        shape: RunShape {
            workload: "webhook",
            protocol: "http1",
            connections: producers,
            rate: config.rate,
        },
        elapsed_s: load_elapsed.as_secs_f64(),
        requests,
        success_pct: if expected == 0 {
            0.0
        } else {
            100.0 * delivered as f64 / expected as f64
        },
        req_per_s: requests as f64 / load_elapsed.as_secs_f64().max(1e-9),
        events_per_s: ingested as f64 / load_elapsed.as_secs_f64().max(1e-9),
        consumed_per_s: delivered as f64 / delivery_window,
        latency_ms: Percentiles::of(&latency),
        end_to_end_ms: Some(Percentiles::of(&end_to_end)),
        statuses,
        counts: Counts {
            events: ingested,
            consumed: delivered,
            io_errors: failed,
            ..Counts::default()
        },
    })
}

/// One batch POST; the ids of the events it stored.
async fn post_batch(
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
