//! Request bodies: reading them whole under a limit and a stall timeout, checking their
//! content type, and draining the ones no handler read.

use std::future::Future as _;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::body::Incoming;

use crate::known::KnownHeaders;
use crate::problem::{Code, Problem};

/// A request's body until a handler takes it. Whatever is still here when the answer
/// is ready was refused unread, and is drained before the answer goes out (see
/// [`drain_unread`]).
pub type BodySlot = Option<Incoming>;

/// A body that no handler read (a refusal before reading it, such as a 401 or a 413)
/// is read and discarded up to this size before the answer goes out, so the connection
/// can carry the next request and the client gets the answer instead of a reset; past
/// it, the answer says `Connection: close`.
pub const REFUSED_BODY_DRAIN_MAX: usize = 16 << 20;

/// Takes the body out of `slot` and reads it whole, up to `limit` bytes. An over-limit
/// body is refused with its unread part left in `slot`, for [`drain_unread`]; one that
/// sends nothing for `stall` is refused with a 408 (and its connection closed).
pub async fn read(
    head: &KnownHeaders<'_>,
    slot: &mut BodySlot,
    limit: usize,
    stall: Duration,
) -> Result<Bytes, Problem> {
    read_bounded(head, slot, limit, stall, &|| {
        Problem::new(
            Code::PayloadTooLarge,
            format!("the request body is larger than this route's limit of {limit} bytes"),
        )
    })
    .await
}

/// Like [`read`], with the caller's own refusal for an over-limit body: the ingest
/// route's limit is the tenant's payload limit plus room for the envelope, and its
/// refusal should name the limit the tenant set, not the sum.
pub async fn read_bounded(
    head: &KnownHeaders<'_>,
    slot: &mut BodySlot,
    limit: usize,
    stall: Duration,
    too_large: &(dyn Fn() -> Problem + Sync),
) -> Result<Bytes, Problem> {
    let declared = declared_length(head);
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let Some(mut body) = slot.take() else {
        return Ok(Bytes::new());
    };
    // A body that arrives as one frame (most do: hyper hands over what one read
    // brought) is returned as that frame, without a copy; only a body in several frames
    // is joined, into a buffer sized from Content-Length.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    // A body whose declared length has all arrived says so: no second call to learn it.
    while !body.is_end_stream() {
        let Some(frame) = next_frame(&mut body, stall).await? else {
            break;
        };
        let frame = frame.map_err(|e| {
            Problem::new(
                Code::MalformedJson,
                format!("could not read the request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing of the event
        };
        total += data.len();
        if total > limit {
            *slot = Some(body);
            return Err(too_large());
        }
        if let Some(buf) = joined.as_mut() {
            buf.extend_from_slice(&data);
        } else if let Some(earlier) = first.take() {
            let mut buf = BytesMut::with_capacity(declared.unwrap_or(total).max(total));
            buf.extend_from_slice(&earlier);
            buf.extend_from_slice(&data);
            joined = Some(buf);
        } else {
            first = Some(data);
        }
    }
    Ok(match (joined, first) {
        (Some(buf), _) => buf.freeze(),
        (None, Some(one)) => one,
        (None, None) => Bytes::new(),
    })
}

/// Checks the content type; returns whether the body is NDJSON.
pub fn require_json(head: &KnownHeaders<'_>, allow_ndjson: bool) -> Result<bool, Problem> {
    // What nearly every client sends, and the encoding nearly every client leaves out:
    // settled by one compare.
    if head.content_encoding.is_none()
        && head
            .content_type
            .is_some_and(|v| v.as_bytes() == b"application/json")
    {
        return Ok(false);
    }
    let ct = head
        .content_type
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Compressed bodies are not read (yet): say so rather than fail to parse them.
    if let Some(enc) = head.content_encoding {
        if !enc.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Err(Problem::new(
                Code::UnsupportedMediaType,
                format!(
                    "Content-Encoding {:?} is not supported: send the body uncompressed",
                    String::from_utf8_lossy(enc.as_bytes())
                ),
            ));
        }
    }
    // The media type is what precedes any parameters (found bytewise: `str::split`
    // with a char pattern cost ~150 instructions on this 16-byte value).
    let mime = ct[..ct.bytes().position(|b| b == b';').unwrap_or(ct.len())].trim();
    // Media types are case-insensitive; compared in place, not lowercased into a copy.
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(false)
    } else if allow_ndjson && mime.eq_ignore_ascii_case("application/x-ndjson") {
        Ok(true)
    } else {
        let accepted = if allow_ndjson {
            "application/json or application/x-ndjson"
        } else {
            "application/json"
        };
        Err(Problem::new(
            Code::UnsupportedMediaType,
            format!("send Content-Type: {accepted} (got {ct:?})"),
        ))
    }
}

/// The declared `Content-Length`, if it is a number.
pub fn declared_length(head: &KnownHeaders<'_>) -> Option<usize> {
    head.content_length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads and discards a body that was refused unread, so that the answer is not lost to
/// a reset and the connection can carry the next request.
///
/// Closing a socket with unread data in it makes the kernel send a reset, which can
/// destroy the answer before the client reads it; and over HTTP/1.1 hyper closes a
/// connection whose request body was not read to the end, without saying so, so a
/// client that reuses it gets a broken pipe on its next request (`tests/random_requests.rs`
/// found this: a 404 to a `GET` with a body, then the next request failed). nginx's
/// lingering close does the same. Returns false when the body is larger than
/// [`REFUSED_BODY_DRAIN_MAX`], breaks off or stalls: the answer must then close the
/// connection.
pub async fn drain_unread(mut body: Incoming, head: &KnownHeaders<'_>, stall: Duration) -> bool {
    if body.is_end_stream() {
        return true;
    }
    if declared_length(head).is_some_and(|len| len > REFUSED_BODY_DRAIN_MAX) {
        return false;
    }
    let mut drained = 0usize;
    loop {
        match next_frame(&mut body, stall).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                drained += frame.data_ref().map_or(0, Bytes::len);
                if drained > REFUSED_BODY_DRAIN_MAX {
                    return false;
                }
            }
            // Broken off, or stalled: not worth waiting for.
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// The body's next frame, or a 408 when nothing arrives for `stall`. The deadline is
/// made only once the frame has to be waited for: most single-event bodies are already
/// there, and a timer costs a clock read and a runtime-handle lookup to make even when
/// it never fires.
async fn next_frame(
    body: &mut Incoming,
    stall: Duration,
) -> Result<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>, Problem> {
    let mut frame = std::pin::pin!(body.frame());
    let mut deadline = std::pin::pin!(None::<tokio::time::Sleep>);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(frame) = frame.as_mut().poll(cx) {
            return Poll::Ready(Ok(frame));
        }
        if deadline.is_none() {
            deadline.set(Some(tokio::time::sleep(stall)));
        }
        match deadline.as_mut().as_pin_mut().map(|d| d.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(Problem::new(
                Code::RequestTimeout,
                format!(
                    "the request body stalled: nothing arrived for {} ms",
                    stall.as_millis()
                ),
            ))),
            // Set just above when it was not.
            _ => Poll::Pending,
        }
    })
    .await
}
