//! The webhook client keeps connections alive: a run of deliveries to one endpoint
//! opens one connection (HTTP/1.1 keep-alive), not one per delivery.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_push::client::WebhookClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_deliveries_share_one_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let client = WebhookClient::new(true, Duration::from_secs(5));
    for _ in 0..20 {
        let req = http::Request::post(format!("http://{addr}/hook"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request");
        let answer = client.send(req).await;
        assert_eq!(answer.status, Some(200), "{answer:?}");
    }
    // One, or two when the first connection was not back in the pool yet as the second
    // request went out (the pool takes it back as its answer's end is read).
    let opened = accepted.load(Ordering::Relaxed);
    assert!(opened <= 2, "20 deliveries opened {opened} connections");
}
