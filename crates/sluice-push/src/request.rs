//! One delivery's HTTP request: the body the receiver gets, and its headers.
//!
//! ```text
//! POST <target_url>
//! content-type: application/json
//! user-agent: Sluice/<version>
//! webhook-id: <event id>            (the same on every retry)
//! webhook-timestamp: <unix seconds> (this attempt's)
//! webhook-signature: v1,<sig> [v1,<sig>]
//! <the subscription's own headers>
//!
//! {"type":…,"timestamp":<received_at>,"data":<payload>,"event_id":…,"source"?,"occurred_at"?}
//! ```

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::Request;
use http_body_util::Full;
use sluice_store::{LogEvent, Subscription, UnixMs};
use sluice_wire::json::JsonWriter;

use crate::signer::{signature_header, Secret};

static WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
static WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
static WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// Headers a subscription may not set: the ones each delivery must carry as Sluice
/// sets them (and the ones hyper manages).
pub const RESERVED_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "user-agent",
];

/// The receiver's body for one event.
pub fn body(event: &LogEvent) -> Bytes {
    // The fields were checked to be UTF-8 at ingest; the lossy form only guards a
    // record that was not (and allocates only then).
    fn text(b: &Bytes) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(b)
    }
    let mut w = JsonWriter::with_capacity(event.payload.len() + 256);
    let mut id = [0u8; 30];
    w.begin_object();
    w.field_str("type", &text(&event.event_type));
    w.field_timestamp("timestamp", event.received_at);
    w.key("data");
    w.raw(&event.payload);
    w.field_token("event_id", event.id.encode(&mut id));
    if let Some(source) = &event.source {
        w.field_str("source", &text(source));
    }
    if let Some(at) = &event.occurred_at {
        w.field_str("occurred_at", &text(at));
    }
    w.end_object();
    w.finish()
}

/// The secrets that sign now: the current one, and any rotated-out one not yet past
/// its end. A secret that does not decode is left out (creation checks them).
pub fn live_secrets(sub: &Subscription, now: UnixMs) -> Vec<Secret> {
    sub.secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|at| at > now))
        .filter_map(|s| Secret::parse(&s.secret).ok())
        .collect()
}

/// What every request of one subscription shares, made once per change of the
/// subscription rather than per delivery: the parsed URL, the fixed headers and the
/// decoded secrets. (Parsing the URL and decoding the secrets per request showed in
/// the dispatcher's profile.)
#[derive(Debug, Clone)]
pub struct Prepared {
    uri: http::Uri,
    headers: http::HeaderMap,
    secrets: Vec<Secret>,
    /// When the next rotated-out secret stops signing: then this is prepared again.
    pub valid_until: Option<UnixMs>,
}

impl Prepared {
    /// Prepares `sub`'s requests as of `now`.
    pub fn new(sub: &Subscription, now: UnixMs) -> Result<Prepared, http::Error> {
        let uri: http::Uri = sub.target_url.parse()?;
        let mut headers = http::HeaderMap::with_capacity(6 + sub.headers.len());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("Sluice/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in &sub.headers {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        let valid_until = sub
            .secrets
            .iter()
            .filter_map(|s| s.expires_at)
            .filter(|&at| at > now)
            .min();
        Ok(Prepared {
            uri,
            headers,
            secrets: live_secrets(sub, now),
            valid_until,
        })
    }

    /// Whether a secret it signs with has expired by `now`.
    pub fn stale(&self, now: UnixMs) -> bool {
        self.valid_until.is_some_and(|at| at <= now)
    }

    /// The request for one attempt at `now`.
    pub fn request(&self, event: &LogEvent, now: UnixMs) -> Request<Full<Bytes>> {
        let body = body(event);
        let mut id = [0u8; 30];
        let id = event.id.encode(&mut id);
        let timestamp = now.div_euclid(1000);
        let signature = signature_header(&self.secrets, id, timestamp, &body);
        let mut headers = self.headers.clone();
        // An encoded id, a decimal number and base64 signatures are visible ASCII, which
        // every header value may hold: these conversions cannot fail.
        if let Ok(v) = HeaderValue::from_str(id) {
            headers.insert(WEBHOOK_ID.clone(), v);
        }
        let mut digits = itoa::Buffer::new();
        if let Ok(v) = HeaderValue::from_str(digits.format(timestamp)) {
            headers.insert(WEBHOOK_TIMESTAMP.clone(), v);
        }
        if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(signature)) {
            headers.insert(WEBHOOK_SIGNATURE.clone(), v);
        }
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = headers;
        req
    }
}
