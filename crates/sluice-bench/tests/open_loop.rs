//! Open-loop latency accounting against a deliberately stalling local server: a 1 s
//! stall must show up in p99 (every request scheduled during the stall is late), while
//! a closed loop hides it behind the requests it never sent (coordinated omission).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_bench::{BenchConfig, Workload};

/// Serves 200s; the first request that arrives after `stall_after` waits 1 s.
fn stalling_server(stall_after: Duration) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let started = Instant::now();
            let stalled = Arc::new(AtomicBool::new(false));
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let stalled = stalled.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        let stalled = stalled.clone();
                        async move {
                            if started.elapsed() >= stall_after
                                && !stalled.swap(true, Ordering::SeqCst)
                            {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    rx.recv().expect("server address")
}

fn config(addr: SocketAddr, rate: Option<u64>) -> BenchConfig {
    let mut c = BenchConfig::new(
        format!("http://{addr}/").parse().expect("url"),
        Workload::Get,
    );
    c.connections = 2;
    c.duration = Duration::from_secs(3);
    c.rate = rate;
    c
}

#[test]
fn open_loop_counts_a_stall_against_every_request_it_delayed() {
    let addr = stalling_server(Duration::from_millis(500));
    let report = sluice_bench::run(&config(addr, Some(200))).expect("run");
    // ~600 scheduled requests; the stalled connection's ~100 during the stall are late
    // by up to a second, so well over 1 % of all latencies are hundreds of ms.
    assert!(
        report.latency_ms.max >= 900.0,
        "max {} ms",
        report.latency_ms.max
    );
    assert!(
        report.latency_ms.p99 >= 500.0,
        "the stall must show in p99: {report:?}"
    );
    assert_eq!(report.success_pct, 100.0, "{}", report.error_breakdown());
    assert!(
        (500..=700).contains(&report.requests),
        "open loop sends on schedule: {}",
        report.requests
    );
}

#[test]
fn closed_loop_hides_the_same_stall_behind_unsent_requests() {
    let addr = stalling_server(Duration::from_millis(500));
    let report = sluice_bench::run(&config(addr, None)).expect("run");
    assert!(
        report.latency_ms.max >= 900.0,
        "the stalled request itself is seen: {} ms",
        report.latency_ms.max
    );
    assert!(
        report.latency_ms.p99 < 100.0,
        "one stalled request among thousands: p99 {} ms",
        report.latency_ms.p99
    );
    assert!(
        report.requests > 1000,
        "closed loop runs as fast as answers come: {}",
        report.requests
    );
}
