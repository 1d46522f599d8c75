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

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::config::BenchConfig;
use crate::produce::{api, api_client, block_on, produce, Arrivals};
use crate::runner::BenchError;
use crate::stats::Report;

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

/// Runs the workload; see the module docs.
pub fn run_webhook(config: &BenchConfig, options: &WebhookOptions) -> Result<Report, BenchError> {
    block_on(config, || run_async(config, options))
}

async fn run_async(config: &BenchConfig, options: &WebhookOptions) -> Result<Report, BenchError> {
    let bad = BenchError::BadConfig;
    let client = api_client();
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
                                a.record(id, Instant::now());
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

    // Producers: batches of `batch_size` events of this run's type.
    let produced = produce(&client, config, &run_type).await?;
    // Drain: wait (on the counters) until every delivery arrived, or the drain time.
    let ends: Vec<Arc<Arrivals>> = endpoints.iter().map(|(_, a)| a.clone()).collect();
    produced.drain(&ends, options.drain).await;
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
    produced.finish("webhook", &ends)
}
