//! A real webhook receiver on 127.0.0.1: it records every request (headers, body,
//! arrival time) and answers as the test tells it, per request.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Notify;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// How many requests for this `webhook-id` came before this one.
    pub earlier: usize,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn event_id(&self) -> &str {
        self.header("webhook-id")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// Waits this long before answering.
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

type Behaviour = Arc<dyn Fn(&Received) -> Answer + Send + Sync>;

struct Shared {
    received: Mutex<Vec<Received>>,
    arrived: Notify,
    behaviour: Mutex<Behaviour>,
    in_flight: AtomicUsize,
    in_flight_max: AtomicUsize,
}

/// The receiver; see the module docs.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Starts on a free port, answering 200 until told otherwise.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            behaviour: Mutex::new(Arc::new(|_: &Received| Answer::status(200))),
            in_flight: AtomicUsize::new(0),
            in_flight_max: AtomicUsize::new(0),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(s.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers every request from now on with `f`.
    pub fn answer(&self, f: impl Fn(&Received) -> Answer + Send + Sync + 'static) {
        *self.shared.behaviour.lock().expect("behaviour") = Arc::new(f);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("received").clone()
    }

    /// The most requests it had open at once.
    pub fn in_flight_max(&self) -> usize {
        self.shared.in_flight_max.load(Ordering::Relaxed)
    }

    /// Waits (on arrivals, not on a timer) until `done` holds for what was received;
    /// fails the test after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            {
                let got = self.shared.received.lock().expect("received");
                if done(&got) {
                    return got.clone();
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let got = self.received();
                panic!(
                    "waited {timeout:?} for {what}; received {} requests: {:?}",
                    got.len(),
                    got.iter()
                        .map(|r| r.event_id().to_owned())
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    /// Waits until `n` requests arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_until(timeout, &format!("{n} requests"), |r| r.len() >= n)
            .await
    }
}

async fn handle(
    s: Arc<Shared>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let open = s.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    s.in_flight_max.fetch_max(open, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut r = Received {
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
        at: Instant::now(),
        earlier: 0,
    };
    let behaviour = s.behaviour.lock().expect("behaviour").clone();
    {
        let mut got = s.received.lock().expect("received");
        r.earlier = got.iter().filter(|g| g.event_id() == r.event_id()).count();
        got.push(r.clone());
    }
    s.arrived.notify_waiters();
    let answer = behaviour(&r);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    s.in_flight.fetch_sub(1, Ordering::Relaxed);
    let mut resp = http::Response::new(Full::new(Bytes::from_static(b"ok")));
    *resp.status_mut() = http::StatusCode::from_u16(answer.status).expect("status");
    if let Some(ra) = answer.retry_after {
        resp.headers_mut().insert(
            "retry-after",
            http::HeaderValue::from_str(&ra).expect("value"),
        );
    }
    Ok(resp)
}
