//! The handlers, one module per part of the API. Each is an `async fn(&App, &mut Cx)`
//! named in the route table; what several share (mapping store errors, writing an
//! event) is here.

pub(crate) mod admin;
pub(crate) mod console;
pub(crate) mod consumers;
pub(crate) mod events;
pub(crate) mod inbox;
pub(crate) mod ingest;
pub(crate) mod ops;
pub(crate) mod subscriptions;
pub(crate) mod tail;

use bytes::Bytes;
use sluice_store::catalog::DEFAULT_CONSUMER;
use sluice_store::{EventId, EventState, InboxKey, Store, StoreError, StoredEvent, TenantId};

use crate::json::{rfc3339_ms, JsonWriter};
use crate::problem::{Code, FieldError, Problem};

/// Lease length bounds, in seconds.
pub(crate) const LEASE_SECONDS_MAX: u64 = 12 * 3600;

/// Maps storage failures to what a client can act on.
pub(crate) fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::Overloaded => {
            Problem::new(Code::Overloaded, "the server is at capacity; retry shortly")
                .retry_after(1)
        }
        StoreError::Full(_) => Problem::new(
            Code::StorageFull,
            "the server's storage is full; nothing was stored",
        )
        .retry_after(30),
        StoreError::Unavailable(detail) => {
            tracing::error!(%detail, "storage unavailable");
            Problem::new(
                Code::StorageUnavailable,
                "storage is unavailable; the request was not carried out",
            )
            .retry_after(5)
        }
        // Not "nothing was stored": the write may well be, and a client that retries
        // without its idempotency key would store it twice.
        StoreError::Unconfirmed(detail) => {
            tracing::error!(%detail, "write unconfirmed");
            Problem::new(
                Code::StorageUnconfirmed,
                "the change reached storage but could not be confirmed in time, so it may \
                 have been made: check before repeating it (an event retried with the same \
                 Idempotency-Key is stored at most once and answers its id)",
            )
            .retry_after(5)
        }
        StoreError::Conflict(m) => Problem::new(Code::Conflict, m),
        StoreError::NotFound(m) => Problem::new(Code::NotFound, format!("{m} not found")),
        StoreError::Corrupt(detail) => {
            tracing::error!(%detail, "storage found corrupt data");
            Problem::new(
                Code::Internal,
                "stored data failed a check; the operator has been told (see the server log)",
            )
        }
    }
}

/// Parses a JSON request body into `T`; a body of the wrong shape is a 422 naming what
/// serde found (an unknown field, a missing one, a wrong type).
pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            let message = e.to_string();
            let field = message
                .split('`')
                .nth(1)
                .filter(|_| message.contains("field"))
                .unwrap_or("");
            Problem::validation(vec![crate::problem::FieldError::new(
                field,
                message.clone(),
            )])
        } else {
            Problem::new(Code::MalformedJson, format!("body is not valid JSON: {e}"))
        }
    })
}

/// For JSON merge patch fields (RFC 7396): a field that is there, even as `null`, is
/// `Some`; one left out (with `#[serde(default)]`) is `None`.
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// A request body that is JSON when it is there (an empty body is allowed: the
/// handler decides), read up to `limit` bytes.
pub(crate) async fn read_json_body<S: sluice_store::Store>(
    app: &crate::app::App<S>,
    cx: &mut crate::app::Cx<'_>,
    limit: usize,
) -> Result<Bytes, Problem> {
    let head = cx.known;
    if head.content_length.is_some_and(|v| v != "0") || head.content_type.is_some() {
        crate::body::require_json(head, false)?;
    }
    crate::body::read(head, cx.body, limit, app.config.body_read_timeout).await
}

/// A listing's `limit` parameter (1 to 1000; 100 when absent): a bad one is noted in
/// `errors` and the default is returned, since the request is refused anyway.
pub(crate) fn limit_param(v: &str, errors: &mut Vec<FieldError>) -> usize {
    match v.parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => n,
        _ => {
            errors.push(FieldError::new(
                "limit",
                "must be an integer from 1 to 1000",
            ));
            100
        }
    }
}

/// Writes a page of events: `{"events": [...], "next_cursor", "has_more"}`, the shape
/// of the inbox, its dead letters and the history. `lease_id` names each item's lease
/// when the page took leases.
pub(crate) fn write_event_page<'e>(
    events: &'e [StoredEvent],
    lease_id: impl Fn(&'e StoredEvent) -> Option<String>,
    next_cursor: Option<String>,
    has_more: bool,
) -> Bytes {
    let mut w =
        JsonWriter::with_capacity(events.iter().map(|e| e.payload.len() + 256).sum::<usize>() + 64);
    w.begin_object();
    w.key("events");
    w.begin_array();
    for e in events {
        write_event_leased(&mut w, e, lease_id(e).as_deref());
    }
    w.end_array();
    match next_cursor {
        Some(c) => w.field_str("next_cursor", &c),
        None => w.field_null("next_cursor"),
    }
    w.field_bool("has_more", has_more);
    w.end_object();
    w.finish()
}

/// A query string's parameters.
pub(crate) fn query_pairs<'a>(
    cx: &'a crate::app::Cx<'_>,
) -> impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)> {
    form_urlencoded::parse(cx.head.uri.query().unwrap_or("").as_bytes())
}

/// The inbox an inbox route acts on: `?consumer=<name>` (the tenant's `default` inbox
/// when absent), with its `max_deliveries`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inbox {
    pub(crate) key: InboxKey,
    pub(crate) max_deliveries: Option<u32>,
}

/// The inbox the request's `?consumer=` names (see [`Inbox`]).
pub(crate) async fn inbox_of<S: Store>(
    app: &crate::app::App<S>,
    cx: &crate::app::Cx<'_>,
) -> Result<Inbox, Problem> {
    let (who, tenant) = cx.key()?;
    let name = query_pairs(cx)
        .find(|(k, _)| k == "consumer")
        .map(|(_, v)| v);
    consumer_inbox(app, who.tenant, tenant.max_deliveries, name.as_deref()).await
}

/// The tenant's inbox named `name`: `default` (or no name) is its own, any other is a
/// named consumer, and one it does not have is `404` (another tenant's too).
pub(crate) async fn consumer_inbox<S: Store>(
    app: &crate::app::App<S>,
    tenant: TenantId,
    default_max_deliveries: Option<u32>,
    name: Option<&str>,
) -> Result<Inbox, Problem> {
    match name {
        None | Some("") | Some(DEFAULT_CONSUMER) => Ok(Inbox {
            key: tenant.into(),
            max_deliveries: default_max_deliveries,
        }),
        Some(name) => app
            .find_in_catalog(|catalog| {
                catalog.consumer(tenant, name).map(|c| Inbox {
                    key: InboxKey {
                        tenant,
                        consumer: c.id,
                    },
                    max_deliveries: c.max_deliveries,
                })
            })
            .await?
            .ok_or_else(|| not_found_consumer(name)),
    }
}

/// The 404 for a consumer name the tenant does not have.
pub(crate) fn not_found_consumer(name: &str) -> Problem {
    Problem::new(
        Code::NotFound,
        format!("no consumer {name:?} for this tenant (GET /v1/consumers lists them; every tenant has \"default\")"),
    )
}

/// The 404 for an event id that names none of the tenant's events.
pub(crate) fn not_found_event(id: &str) -> Problem {
    Problem::new(Code::NotFound, format!("no event {id} for this tenant"))
}

/// The event an id names, parsed; a malformed id names no event.
pub(crate) fn event_id(text: &str) -> Result<EventId, Problem> {
    EventId::parse(text).ok_or_else(|| not_found_event(text))
}

/// Writes an event with its delivery state, as the inbox and the event routes show it.
pub(crate) fn write_event(w: &mut JsonWriter, e: &StoredEvent) {
    write_event_leased(w, e, None);
}

/// Writes the fields an event has whoever reads it (inbox, history, tail), inside an
/// object the caller opened: id, type, source, the payload verbatim, the two times.
pub(crate) fn write_event_fields(
    w: &mut JsonWriter,
    id: EventId,
    event_type: &Bytes,
    source: Option<&Bytes>,
    payload: &Bytes,
    received_at: sluice_store::UnixMs,
    occurred_at: Option<&Bytes>,
) {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let mut buf = [0u8; 30];
    w.field_token("event_id", id.encode(&mut buf));
    w.field_str("event_type", &text(event_type));
    w.field_opt_str("source", source.map(text).as_deref());
    w.key("payload");
    w.raw(payload);
    w.field_timestamp("received_at", received_at);
    w.field_opt_str("occurred_at", occurred_at.map(text).as_deref());
}

/// Writes an event as [`write_event`] does, with the `lease_id` of the lease a poll
/// just took on it.
pub(crate) fn write_event_leased(w: &mut JsonWriter, e: &StoredEvent, lease_id: Option<&str>) {
    w.begin_object();
    write_event_fields(
        w,
        e.id,
        &e.event_type,
        e.source.as_ref(),
        &e.payload,
        e.received_at,
        e.occurred_at.as_ref(),
    );
    w.field_u64("delivery_count", e.delivery_count as u64);
    let (state, lease) = match e.state {
        EventState::Pending => ("pending", None),
        EventState::Leased { until } => ("leased", Some(until)),
        EventState::Acked => ("acked", None),
        EventState::Dead => ("dead", None),
    };
    w.field_str("state", state);
    w.field_opt_str("lease_expires_at", lease.map(rfc3339_ms).as_deref());
    // Always there, `null` but on the items a leasing poll just took: one shape for all.
    w.field_opt_str("lease_id", lease_id);
    w.end_object();
}
