//! The live tail: `GET /v1/stream?event_type=`, Server-Sent Events of what the tenant
//! commits from now on, or, with `Last-Event-ID`, from right after that event.
//!
//! One task per stream follows the tenant's log with a [`LogFollower`] (the commit feed
//! while it keeps up, the log when it starts behind), writes each event as one SSE
//! message into a bounded channel the response body drains, and sends `: ping` every
//! [`PING_EVERY`]. The commit path never waits for it: the follower's feed is a bounded
//! broadcast, and a client that reads slower than events arrive fills the channel; at
//! [`TAIL_BUFFER_FRAMES`] it is sent a final `event: lagged` and the stream ends. A
//! client that reconnects with `Last-Event-ID` then misses nothing still retained.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, StatusCode};
use sluice_store::feed::{LogFollower, TypeFilter};
use sluice_store::{EventId, LogEvent, Sequence, Store, TenantId};
use tokio::sync::mpsc;

use super::{query_pairs, write_event_fields};
use crate::app::{App, Cx};
use crate::json::JsonWriter;
use crate::problem::{Code, FieldError, Problem};
use crate::reply::{self, Reply};
use crate::validate;

/// SSE messages buffered for one client before it counts as lagging: with 1 MiB
/// payloads at most, a stalled client holds at most this many messages of memory.
pub const TAIL_BUFFER_FRAMES: usize = 256;

/// A frame of the stream gathers the messages already at hand (one commit's, mostly)
/// up to this size, so the client's buffer counts commits, not events: at 30,000
/// events/s in commits of ~100, 256 single-message frames were 8 ms of slack, and a
/// scheduling hiccup on a busy 2-core machine made a reading client "lag".
pub const TAIL_FRAME_BYTES_MAX: usize = 64 << 10;

/// The keep-alive comment's period (DESIGN.md: 15 s), so proxies keep the stream open.
pub const PING_EVERY: Duration = Duration::from_secs(15);

static LAGGED: &[u8] = b"event: lagged\ndata: {\"reason\":\"the client read slower than events arrived; reconnect with Last-Event-ID to resume\"}\n\n";

/// `GET /v1/stream`
pub(crate) async fn stream<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let mut filter = TypeFilter::All;
    for (k, v) in query_pairs(cx) {
        match k.as_ref() {
            "event_type" if v.is_empty() => {}
            "event_type" if validate::event_type(&v) => filter = TypeFilter::Exact(v.into_owned()),
            "event_type" => {
                return Err(Problem::validation(vec![FieldError::new(
                    "event_type",
                    validate::EVENT_TYPE_RULE,
                )]))
            }
            other => {
                return Err(Problem::validation(vec![FieldError::new(
                    other,
                    "is not a known parameter (event_type)",
                )]))
            }
        }
    }
    let after = match cx.head.headers.get("last-event-id") {
        None => None,
        Some(v) => {
            let id = v.to_str().ok().and_then(EventId::parse).ok_or_else(|| {
                Problem::new(
                    Code::InvalidCursor,
                    "Last-Event-ID must be the id of an event this stream sent (evt_...)",
                )
            })?;
            Some(id.sequence())
        }
    };
    let (tx, rx) = mpsc::channel(TAIL_BUFFER_FRAMES + 1);
    let store = app.store.clone();
    let open = app.metrics.tails_open.clone();
    tokio::spawn(follow(store, who.tenant, filter, after, tx, open));
    let mut r = reply::stream(StatusCode::OK, "text/event-stream", rx);
    let h = r.headers_mut();
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    // Proxies that buffer responses (nginx) would hold the events back.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}

/// Counts an open stream for as long as its task lives.
struct Open(Arc<AtomicU64>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

async fn follow<S: Store>(
    store: Arc<S>,
    tenant: TenantId,
    filter: TypeFilter,
    after: Option<Sequence>,
    tx: mpsc::Sender<Bytes>,
    open: Arc<AtomicU64>,
) {
    open.fetch_add(1, Relaxed);
    let _open = Open(open);
    let mut follower = match LogFollower::new(&*store, tenant, filter, after).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "live tail could not start");
            return;
        }
    };
    // Tell the browser how soon to reconnect, and open the stream at once.
    if tx.try_send(Bytes::from_static(b"retry: 1000\n\n")).is_err() {
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let frame = tokio::select! {
            () = tx.closed() => return,
            _ = ping.tick() => Bytes::from_static(b": ping\n\n"),
            next = follower.next() => match next {
                Ok(event) => {
                    let mut frame = BytesMut::new();
                    message(&event, &mut frame);
                    while frame.len() < TAIL_FRAME_BYTES_MAX {
                        let Some(more) = follower.next_ready() else { break };
                        message(&more, &mut frame);
                    }
                    frame.freeze()
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live tail stopped");
                    return;
                }
            },
        };
        // One slot is kept for the `lagged` notice: past the buffer, the client gets it
        // and the stream ends (and the follower with it), so a stalled client holds
        // bounded memory and no reads.
        if tx.capacity() <= 1 {
            let _ = tx.try_send(Bytes::from_static(LAGGED));
            return;
        }
        if tx.try_send(frame).is_err() {
            return;
        }
    }
}

/// One SSE message, appended to `out`: `event:` the type, `id:` the event id, `data:`
/// the event's JSON (one `data:` line per line of it: a payload kept verbatim may hold
/// newlines).
fn message(e: &LogEvent, out: &mut BytesMut) {
    let mut w = JsonWriter::with_capacity(e.payload.len() + 256);
    w.begin_object();
    write_event_fields(
        &mut w,
        e.id,
        &e.event_type,
        e.source.as_ref(),
        &e.payload,
        e.received_at,
        e.occurred_at.as_ref(),
    );
    w.end_object();
    let json = w.finish();
    out.reserve(json.len() + e.event_type.len() + 64);
    out.put_slice(b"event: ");
    // Event types are [A-Za-z0-9._:-]: no newline can end the field early.
    out.put_slice(&e.event_type);
    out.put_slice(b"\nid: ");
    let mut buf = [0u8; 30];
    out.put_slice(e.id.encode(&mut buf).as_bytes());
    out.put_u8(b'\n');
    for line in json.split(|&b| b == b'\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
}
