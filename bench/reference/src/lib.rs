//! The reference servers of the benchmark suite, sharing one accept loop so that they
//! differ from each other only in what a request costs:
//!
//! - `hello-server`: answers every request with a tiny JSON body. The ceiling of HTTP on
//!   this machine.
//! - `parse-server`: reads the body, parses the ingest envelope the way Sluice does
//!   (borrowed `RawValue`s, no DOM) and answers 201 without storing anything. The
//!   ceiling for ingest: Sluice's durable ingest is reported as a ratio to it.
//!
//! Both serve HTTP/1.1 and h2c on one port with the same hyper settings as Sluice.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// Serves `handler` on `addr` (from the first argument, default 127.0.0.1:9090) forever.
pub fn run<F, Fut>(handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".into())
        .parse()
        .expect("usage: <server> [ADDR]");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        eprintln!(
            "listening on http://{}",
            listener.local_addr().expect("addr")
        );
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
}

/// The ingest envelope, parsed the way Sluice parses it (borrowed `RawValue`s, no
/// DOM): the work every ingest server here does for a request.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
pub struct Envelope<'a> {
    #[serde(borrow)]
    event_type: &'a str,
    #[serde(borrow)]
    payload: &'a serde_json::value::RawValue,
    #[serde(borrow, default)]
    source: Option<&'a str>,
    #[serde(borrow, default)]
    occurred_at: Option<&'a str>,
    #[serde(borrow, default)]
    idempotency_key: Option<&'a str>,
}

/// Whether `body` is a well-formed ingest envelope.
pub fn parses(body: &[u8]) -> bool {
    serde_json::from_slice::<Envelope<'_>>(body).is_ok()
}

/// A JSON response with a status.
pub fn json(status: u16, body: &'static [u8]) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}
