//! The connection layer: accept, limit, serve HTTP/1.1 and HTTP/2 on one port, and shut
//! down gracefully.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use sluice_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::app::App;
use crate::config::ServerConfig;
use crate::drain::Drain;
use crate::problem::{Code, Problem};

/// How long a refused connection is drained before it is closed: reading what the client
/// sent before closing keeps the kernel from answering with a reset.
const REFUSAL_DRAIN: Duration = Duration::from_secs(2);

/// Time a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
/// finish (up to `shutdown_grace`) and returns. With `tls`, every connection is TLS
/// (ALPN picks HTTP/2 or HTTP/1.1); without it, HTTP/1.1 and h2c share the port.
pub async fn serve<S: Store>(
    app: Arc<App<S>>,
    listener: TcpListener,
    config: &ServerConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.http2_keepalive)
        .keep_alive_timeout(config.http2_keepalive)
        .max_concurrent_streams(256);
    // Capped at u32::MAX, the most `acquire_many` can wait for: no process has that
    // many descriptors, so the cap never binds.
    let limit = config.max_connections.min(u32::MAX as usize) as u32;
    let permits = Arc::new(Semaphore::new(limit as usize));
    let drain = Arc::new(Drain::default());
    let keeper = tokio::spawn(keep_next_timer_near(config.header_read_timeout));
    tokio::pin!(shutdown);

    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a transient network error: back off briefly
                    // rather than spin; the backlog holds the waiting connections.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            app.metrics().connection_refused();
            tokio::spawn(refuse(stream));
            continue;
        };
        let conn_app = app.clone();
        let service = service_fn(move |req| conn_app.clone().handle(req));
        let app = app.clone();
        app.metrics().connection_opened();
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                let conn = drain.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    app.metrics().connection_closed();
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let (acceptor, builder, drain) = (acceptor.clone(), builder.clone(), drain.clone());
                tokio::spawn(async move {
                    // The handshake runs on the connection's own task, never in the
                    // accept loop, and is bounded in time.
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        let conn = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .into_owned();
                        let _ = drain.watch(conn).await;
                    }
                    app.metrics().connection_closed();
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    keeper.abort();
    drain.close();
    // Every connection (and TLS handshake) holds a permit until it ends: all permits
    // back means all connections closed.
    let all_closed = permits.acquire_many(limit);
    tokio::select! {
        _ = all_closed => {}
        () = tokio::time::sleep(config.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing the remaining connections");
        }
    }
}

/// Keeps a timer due within `header_read_timeout / 2` (at most a second away) for as
/// long as the server runs.
///
/// hyper arms a `header_read_timeout` timer for every request head it reads. Tokio's
/// timer driver writes to the runtime's `eventfd` whenever a timer is registered with a
/// deadline earlier than the driver's next planned wake-up, and with no timer pending
/// there is no planned wake-up, so every request paid a `write` syscall and a spurious
/// `epoll_wait` return: 0.22 `write`s per request were counted under 100 producers
/// (`perf stat -e syscalls:sys_enter_write`), all from here (tokio-rs/tokio#5207). With
/// a nearer timer always pending, a header timer is never the earliest, and arming it
/// costs no syscall.
async fn keep_next_timer_near(header_read_timeout: Duration) {
    let period = (header_read_timeout / 2).clamp(Duration::from_millis(1), Duration::from_secs(1));
    loop {
        tokio::time::sleep(period).await;
    }
}

/// Answers a connection over the limit with a 503 and closes it cleanly.
async fn refuse(mut stream: TcpStream) {
    // Written by hand because hyper never sees this connection, but the body comes from
    // the same Problem serializer as every other refusal.
    let problem = Problem::new(
        Code::TooManyConnections,
        "the server is at its connection limit; retry shortly",
    );
    let body = problem.body("");
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let response = [head.as_bytes(), &body[..]].concat();
    let _ = tokio::time::timeout(REFUSAL_DRAIN, async {
        let mut buf = [0u8; 4096];
        // Read the request first (or what arrives of it), answer, then drain until the
        // client closes, so no unread data makes the kernel send a reset.
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
        stream.write_all(&response).await?;
        stream.shutdown().await?;
        while stream.read(&mut buf).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
