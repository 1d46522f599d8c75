//! Replies: the one response type every route returns, whole or streamed.
//!
//! [`Body`] is an enum rather than a boxed body so that a whole reply (every route but
//! the live tail) is a `Bytes` moved into the response, with no allocation for the body
//! type; a streamed reply reads from a bounded channel that its producer task fills.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;

use crate::problem::Problem;

/// The response type of every route.
pub type Reply = Response<Body>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");

/// A reply body: whole, or streamed from a channel.
#[derive(Debug)]
pub enum Body {
    /// The whole body, sent at once (`None` once sent, or for an empty body).
    Full(Option<Bytes>),
    /// Chunks from a producer task; the stream ends when the task drops its sender.
    /// Dropping the body (the client went away) closes the channel, which is how the
    /// producer learns to stop.
    Stream(mpsc::Receiver<Bytes>),
}

impl Body {
    /// A whole body.
    pub fn full(bytes: Bytes) -> Body {
        Body::Full(Some(bytes))
    }

    /// An empty body.
    pub fn empty() -> Body {
        Body::Full(None)
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.is_none(),
            Body::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

/// A JSON response with a status.
pub fn json(status: StatusCode, body: Bytes) -> Reply {
    let mut reply = Response::new(Body::full(body));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, JSON);
    reply
}

/// A response with a status and no body (`204`).
pub fn empty(status: StatusCode) -> Reply {
    let mut reply = Response::new(Body::empty());
    *reply.status_mut() = status;
    reply
}

/// A response with a body of the given content type.
pub fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut reply = Response::new(Body::full(body));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// A streamed response: its body is what `rx` yields.
pub fn stream(status: StatusCode, content_type: &'static str, rx: mpsc::Receiver<Bytes>) -> Reply {
    let mut reply = Response::new(Body::Stream(rx));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

/// Renders a problem as a response.
pub fn problem(p: &Problem, request_id: &str) -> Reply {
    let mut reply = Response::new(Body::full(p.body(request_id)));
    *reply.status_mut() = p.code.status();
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, PROBLEM_JSON);
    if let Some(s) = p.retry_after_s {
        headers.insert(RETRY_AFTER, decimal_header(s));
    }
    if let Some(allow) = p.allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    if p.challenge {
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sluice\""),
        );
    }
    reply
}

/// Numbers below this have a header value made once, at first use, and shared: the
/// `RateLimit-Reset` and `Retry-After` seconds of every request fall here.
const SMALL_DECIMALS: usize = 1024;

/// `0` to `SMALL_DECIMALS - 1` as header values over leaked strings (a few kilobytes,
/// once), so a copy is a pointer and a length (`Bytes::from_static`), with no
/// allocation and no count.
static SMALL: std::sync::LazyLock<Box<[HeaderValue]>> = std::sync::LazyLock::new(|| {
    (0..SMALL_DECIMALS)
        .map(|n| HeaderValue::from_static(Box::leak(n.to_string().into_boxed_str())))
        .collect()
});

/// A header value holding a decimal number. Small ones are shared (see [`SMALL`]);
/// others allocate once, exactly sized, where `HeaderValue::from(u64)` allocates twice
/// (a growable buffer, then shared bytes for it).
pub fn decimal_header(n: u64) -> HeaderValue {
    if let Some(v) = usize::try_from(n).ok().and_then(|i| SMALL.get(i)) {
        return v.clone();
    }
    let mut digits = itoa::Buffer::new();
    match HeaderValue::from_str(digits.format(n)) {
        Ok(v) => v,
        // Decimal digits are visible ASCII, which every header value may hold.
        Err(_) => unreachable!("decimal digits are a valid header value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_headers_match_the_http_crate() {
        for n in (0..1100).chain([u64::from(u32::MAX), u64::MAX]) {
            assert_eq!(decimal_header(n), HeaderValue::from(n));
        }
    }
}
