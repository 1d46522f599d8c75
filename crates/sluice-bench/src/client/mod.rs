//! The HTTP clients: a lean HTTP/1.1 client of its own, and hyper for HTTP/2.
//!
//! Why not hyper for HTTP/1.1 too: a load generator must not be the bottleneck, and one
//! thread of it should keep up with wrk. hyper's client runs each connection as its own
//! task and builds an `http::Request` (a header map) for every request; against a fast
//! server that held one thread to about two thirds of wrk's rate. The HTTP/1.1 client
//! here writes pre-encoded bytes from a reused buffer and parses answers with
//! `httparse` (the parser inside hyper), on the task that sent the request.

mod http1;
mod http2;
mod tls;

pub(crate) use http2::Shared as Http2Shared;
pub(crate) use tls::{Stream, Tls};

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::time::Sleep;

use crate::config::BenchConfig;

/// What every request of a run shares: where it goes and who it says it is.
#[derive(Debug)]
pub(crate) struct Target {
    /// `host:port`, connected to and sent as `Host`.
    pub authority: String,
    /// `Bearer <key>`, if a key was given.
    pub authorization: Option<String>,
    /// Per-request timeout (connecting included).
    pub timeout: Duration,
    /// For `https://`: the TLS client, shared by the run's threads.
    pub tls: Option<std::sync::Arc<Tls>>,
    /// `http` or `https`, for the HTTP/2 client's request URIs.
    pub scheme: &'static str,
}

impl Target {
    /// The run's TLS client, for an `https://` URL (with ALPN for the run's protocol).
    pub fn tls_for(config: &BenchConfig) -> Result<Option<std::sync::Arc<Tls>>, String> {
        if config.url.scheme_str() != Some("https") {
            return Ok(None);
        }
        let host = config.url.host().unwrap_or_default();
        let alpn: &[u8] = match config.protocol {
            crate::config::Protocol::Http1 => b"http/1.1",
            crate::config::Protocol::Http2 => b"h2",
        };
        Tls::new(host, config.ca_file.as_deref(), alpn).map(|t| Some(std::sync::Arc::new(t)))
    }

    pub fn new(config: &BenchConfig, tls: Option<std::sync::Arc<Tls>>) -> Target {
        Target {
            scheme: if tls.is_some() { "https" } else { "http" },
            tls,
            authority: config
                .url
                .authority()
                .map_or_else(String::new, |a| a.to_string()),
            authorization: config.api_key.as_ref().map(|k| format!("Bearer {k}")),
            timeout: config.timeout,
        }
    }
}

/// One request, borrowed from the worker that builds it.
pub(crate) struct Outgoing<'a> {
    pub method: &'static str,
    pub path: &'a str,
    /// `Idempotency-Key`, when this request carries one.
    pub idempotency_key: Option<&'a str>,
    /// A JSON body; empty means none (and no `Content-Type`).
    pub body: &'a [u8],
}

/// An answer: its status and, when asked for, its body.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Why a request got no answer. Each is counted on its own in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The TCP connection could not be opened (or the HTTP/2 handshake failed).
    Connect,
    /// The connection broke before the answer was complete (reset, close, bad bytes).
    Io,
    /// No answer within the timeout.
    Timeout,
}

/// A worker's way to its server: its own HTTP/1.1 connection, or a share of an
/// HTTP/2 connection. Connects lazily and again after any failure.
pub(crate) struct Channel {
    kind: Kind,
    /// The request timeout. One timer per worker, moved later for each request:
    /// extending a tokio timer does not touch the timer wheel, where a fresh
    /// `timeout()` per request inserted and removed an entry every time (~2 % of a
    /// client thread, measured with perf against a hello server).
    timer: Pin<Box<Sleep>>,
}

enum Kind {
    Http1(Option<http1::Connection>),
    Http2(Rc<http2::Shared>),
}

/// `future`'s output, or `None` if `timer` fires first.
pub(crate) async fn within<T>(
    timer: Pin<&mut Sleep>,
    future: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        out = future => Some(out),
        () = timer => None,
    }
}

impl Channel {
    /// A worker's own HTTP/1.1 connection, opened on first use.
    pub fn http1() -> Channel {
        Channel::new(Kind::Http1(None))
    }

    /// A share of an HTTP/2 connection: `streams` workers hold the same `shared`.
    pub fn http2(shared: Rc<http2::Shared>) -> Channel {
        Channel::new(Kind::Http2(shared))
    }

    fn new(kind: Kind) -> Channel {
        Channel {
            kind,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Sends `request` and waits for the whole answer, at most the target's timeout
    /// after `sent` (connecting included). `keep_body` returns the body; otherwise it
    /// is read and dropped.
    pub async fn exchange(
        &mut self,
        target: &Target,
        request: &Outgoing<'_>,
        keep_body: bool,
        sent: Instant,
    ) -> Result<Answer, Failure> {
        self.timer.as_mut().reset((sent + target.timeout).into());
        let mut timer = self.timer.as_mut();
        match &mut self.kind {
            Kind::Http1(slot) => {
                let connection = match slot.take() {
                    Some(c) => c,
                    None => match within(timer.as_mut(), http1::Connection::open(target)).await {
                        Some(Ok(c)) => c,
                        Some(Err(_)) | None => return Err(Failure::Connect),
                    },
                };
                let connection = slot.insert(connection);
                match within(timer, connection.exchange(target, request, keep_body)).await {
                    Some(Ok((answer, reusable))) => {
                        if !reusable {
                            *slot = None;
                        }
                        Ok(answer)
                    }
                    Some(Err(_)) => {
                        *slot = None;
                        Err(Failure::Io)
                    }
                    None => {
                        *slot = None;
                        Err(Failure::Timeout)
                    }
                }
            }
            Kind::Http2(shared) => shared.exchange(target, request, keep_body, timer).await,
        }
    }
}
