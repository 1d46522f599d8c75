//! `POST /v1/events` and `POST /v1/events/batch`: parse, validate, make durable, answer.
//!
//! The single-event path is the hot path: the body is read as one frame without a copy,
//! the payload stays a slice of it all the way to the log, and the receipt is written
//! into one exactly sized buffer.

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use sluice_store::{AppendOutcome, EventId, Sequence, Store};

use super::store_problem;
use crate::app::{App, Cx};
use crate::body;
use crate::envelope::{self, ItemPath};
use crate::json::JsonWriter;
use crate::problem::{Code, FieldError, Problem};
use crate::reply::{self, Reply};

static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Room for the envelope around a payload of the tenant's maximum size.
const ENVELOPE_BYTES_MAX: usize = 64 << 10;

/// `POST /v1/events`
pub(crate) async fn single<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let (who, tenant) = cx.key()?;
    let max_payload_bytes = tenant.max_payload_bytes;
    let head = cx.known;
    body::require_json(head, false)?;
    let header_key = match head.idempotency_key.map(HeaderValue::to_str) {
        Some(Ok(k)) => Some(k),
        Some(Err(_)) => {
            return Err(Problem::validation(vec![FieldError::new(
                "Idempotency-Key",
                "must be visible ASCII",
            )]))
        }
        None => None,
    };
    let limit = max_payload_bytes + ENVELOPE_BYTES_MAX;
    let too_large = || {
        Problem::new(
            Code::PayloadTooLarge,
            format!(
                "the request body is larger than this tenant's payload limit of {max_payload_bytes} bytes (plus {ENVELOPE_BYTES_MAX} bytes for the envelope around it)"
            ),
        )
    };
    let body = body::read_bounded(
        head,
        cx.body,
        limit,
        app.config.body_read_timeout,
        &too_large,
    )
    .await?;
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Problem::validation(vec![FieldError::new(
            "",
            "a single event is a JSON object with event_type and payload; send an array of events to /v1/events/batch",
        )]));
    }
    let event = envelope::parse_event(
        &body,
        &body,
        who.tenant,
        header_key,
        max_payload_bytes,
        ItemPath::Body,
    )?;
    let outcome = app.store.append(vec![event]).await.map_err(store_problem)?;
    match outcome.first() {
        Some(AppendOutcome::Created { id, received_at }) => {
            app.metrics.events(1, 0);
            Ok(reply::json(StatusCode::CREATED, receipt(*id, *received_at)))
        }
        Some(AppendOutcome::Replayed { id, received_at }) => {
            app.metrics.events(0, 1);
            let mut reply = reply::json(StatusCode::OK, receipt(*id, *received_at));
            reply.headers_mut().insert(
                IDEMPOTENT_REPLAYED.clone(),
                HeaderValue::from_static("true"),
            );
            Ok(reply)
        }
        Some(AppendOutcome::KeyReused { id }) => Err(key_reused(*id)),
        None => Err(Problem::new(
            Code::Internal,
            "the store returned no outcome",
        )),
    }
}

/// `POST /v1/events/batch`
pub(crate) async fn batch<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let (who, tenant) = cx.key()?;
    let max_payload_bytes = tenant.max_payload_bytes;
    let head = cx.known;
    let ndjson = body::require_json(head, true)?;
    let limit = app.config.limits.max_batch_bytes;
    let body = body::read(head, cx.body, limit, app.config.body_read_timeout).await?;
    let parsed = envelope::parse_batch(&body, ndjson, who.tenant, max_payload_bytes)?;
    let items = parsed.len();
    let mut results: Vec<Result<AppendOutcome, Problem>> = Vec::with_capacity(items);
    let mut valid = Vec::with_capacity(items);
    for item in parsed {
        match item {
            Ok(event) => {
                valid.push(event);
                // Placeholder until the store answers; replaced below in order.
                results.push(Ok(AppendOutcome::KeyReused {
                    id: EventId::new(0, Sequence(0), 0),
                }));
            }
            Err(p) => results.push(Err(p)),
        }
    }
    app.metrics.batch(items as u64);
    if valid.is_empty() {
        let errors = results
            .into_iter()
            .filter_map(Result::err)
            .flat_map(|p| {
                if p.errors.is_empty() {
                    vec![FieldError::new("", p.detail)]
                } else {
                    p.errors
                }
            })
            .collect();
        return Err(Problem::validation(errors));
    }
    let stored = valid.len();
    let outcomes = app.store.append(valid).await.map_err(store_problem)?;
    if outcomes.len() != stored {
        return Err(Problem::new(
            Code::Internal,
            format!(
                "the store returned {} outcomes for {stored} events",
                outcomes.len()
            ),
        ));
    }
    let mut outcomes = outcomes.into_iter();
    for slot in results.iter_mut().filter(|r| r.is_ok()) {
        if let Some(o) = outcomes.next() {
            *slot = Ok(o);
        }
    }
    let (mut created, mut replayed, mut failed) = (0u64, 0u64, 0u64);
    // ~100 bytes an item: {"index":…,"status":201,"event_id":"evt_…","received_at":"…"}.
    let mut w = JsonWriter::with_capacity(128 * results.len() + 64);
    w.begin_object();
    w.key("results");
    w.begin_array();
    for (i, r) in results.iter().enumerate() {
        w.begin_object();
        w.field_u64("index", i as u64);
        match r {
            Ok(AppendOutcome::Created { id, received_at }) => {
                created += 1;
                write_item(&mut w, 201, *id, *received_at);
            }
            Ok(AppendOutcome::Replayed { id, received_at }) => {
                replayed += 1;
                write_item(&mut w, 200, *id, *received_at);
                w.field_bool("replayed", true);
            }
            Ok(AppendOutcome::KeyReused { id }) => {
                failed += 1;
                key_reused(*id).write_members(&mut w, None);
            }
            Err(p) => {
                failed += 1;
                p.write_members(&mut w, None);
            }
        }
        w.end_object();
    }
    w.end_array();
    w.field_u64("created", created);
    w.field_u64("replayed", replayed);
    w.field_u64("failed", failed);
    w.end_object();
    app.metrics.events(created, replayed);
    let status = if failed == 0 {
        StatusCode::CREATED
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok(reply::json(status, w.finish()))
}

fn key_reused(id: EventId) -> Problem {
    Problem::new(
        Code::IdempotencyKeyReused,
        format!("this idempotency key was already used with a different body (event {id}); use a new key for a new event"),
    )
}

/// The length of a receipt whose timestamp has a four-digit year. Sized exactly, the
/// writer's buffer becomes the response body without the extra allocation that
/// `Bytes` makes for a buffer with spare capacity; any other length still works.
const RECEIPT_LEN: usize = 106;

fn receipt(id: EventId, received_at: i64) -> bytes::Bytes {
    let mut w = JsonWriter::with_capacity(RECEIPT_LEN);
    w.begin_object();
    let mut buf = [0u8; 30];
    w.field_token("event_id", id.encode(&mut buf));
    w.field_str("status", "received");
    w.field_timestamp("received_at", received_at);
    w.end_object();
    w.finish()
}

/// One batch item's result: `status` is the HTTP status the item would have had alone.
fn write_item(w: &mut JsonWriter, status: u64, id: EventId, received_at: i64) {
    let mut buf = [0u8; 30];
    w.field_u64("status", status);
    w.field_token("event_id", id.encode(&mut buf));
    w.field_timestamp("received_at", received_at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_exactly_the_length_their_buffer_is_sized_for() {
        for ms in [0, 1_700_000_000_123, 253_402_300_799_999] {
            let body = receipt(EventId::new(ms, Sequence(u64::MAX), u16::MAX), ms);
            assert_eq!(
                body.len(),
                RECEIPT_LEN,
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
