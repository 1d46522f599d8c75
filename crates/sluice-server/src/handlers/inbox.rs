//! The inbox: `GET /v1/inbox` (list, and lease), and acks, one or many.

use http::StatusCode;
use sluice_store::{EventId, InboxQuery, Settle, SettleOutcome, Store};

use super::{event_id, not_found_event, store_problem, write_event, LEASE_SECONDS_MAX};
use crate::app::{App, Cx};
use crate::body;
use crate::cursor::Listing;
use crate::json::JsonWriter;
use crate::problem::{Code, FieldError, Problem};
use crate::reply::{self, Reply};
use crate::validate;

/// Ids one bulk ack may carry.
const ACK_IDS_MAX: usize = 1000;

/// `GET /v1/inbox`
pub(crate) async fn list<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let mut query = InboxQuery {
        tenant: who.tenant,
        limit: 100,
        after: None,
        event_type: None,
        lease_ms: None,
    };
    let mut errors = Vec::new();
    for (k, v) in form_urlencoded::parse(cx.head.uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => query.limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    "must be an integer from 1 to 1000",
                )),
            },
            "cursor" if v.is_empty() => {}
            "cursor" => query.after = Some(app.cursors.decode(Listing::Inbox, who.tenant, &v)?),
            "event_type" if v.is_empty() => {}
            "event_type" if validate::event_type(&v) => query.event_type = Some(v.into_owned()),
            "event_type" => errors.push(FieldError::new("event_type", validate::EVENT_TYPE_RULE)),
            "lease_seconds" => match v.parse::<u64>() {
                Ok(s) if (1..=LEASE_SECONDS_MAX).contains(&s) => query.lease_ms = Some(s * 1000),
                _ => errors.push(FieldError::new(
                    "lease_seconds",
                    "must be an integer from 1 to 43200",
                )),
            },
            other => errors.push(FieldError::new(
                other,
                "is not a known parameter (limit, cursor, event_type, lease_seconds)",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let page = app.store.list(query).await.map_err(store_problem)?;
    let mut w = JsonWriter::with_capacity(
        page.events
            .iter()
            .map(|e| e.payload.len() + 256)
            .sum::<usize>()
            + 64,
    );
    w.begin_object();
    w.key("events");
    w.begin_array();
    for e in &page.events {
        write_event(&mut w, e);
    }
    w.end_array();
    match page.next_cursor {
        Some(c) => w.field_str(
            "next_cursor",
            &app.cursors.encode(Listing::Inbox, who.tenant, c),
        ),
        None => w.field_null("next_cursor"),
    }
    w.field_bool("has_more", page.has_more);
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `POST /v1/inbox/ack {"event_ids": [...]}`
pub(crate) async fn ack_many<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    body::require_json(cx.head, false)?;
    let body = body::read(cx.head, cx.body, 1 << 20, app.config.body_read_timeout).await?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AckBody {
        event_ids: Vec<String>,
    }
    let parsed: AckBody = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            Problem::validation(vec![FieldError::new(
                "event_ids",
                "must be an array of event id strings",
            )])
        } else {
            Problem::new(Code::MalformedJson, format!("body is not valid JSON: {e}"))
        }
    })?;
    if parsed.event_ids.is_empty() || parsed.event_ids.len() > ACK_IDS_MAX {
        return Err(Problem::validation(vec![FieldError::new(
            "event_ids",
            "must hold 1 to 1000 ids",
        )]));
    }
    let ids: Vec<Option<EventId>> = parsed.event_ids.iter().map(|s| EventId::parse(s)).collect();
    let valid: Vec<EventId> = ids.iter().flatten().copied().collect();
    let asked = valid.len();
    let outcomes = if valid.is_empty() {
        Vec::new()
    } else {
        app.store
            .settle(who.tenant, valid, Settle::Ack)
            .await
            .map_err(store_problem)?
    };
    if outcomes.len() != asked {
        return Err(Problem::new(
            Code::Internal,
            format!("the store answered {} of {asked} acks", outcomes.len()),
        ));
    }
    let mut outcomes = outcomes.into_iter();
    let mut acked = 0;
    let mut w = JsonWriter::with_capacity(64 * ids.len() + 32);
    w.begin_object();
    w.key("results");
    w.begin_array();
    for (text, id) in parsed.event_ids.iter().zip(&ids) {
        // A malformed id names no event; a well-formed one takes the store's answer,
        // which comes in order (their count was checked above).
        let outcome = match id {
            Some(_) => outcomes.next().unwrap_or(SettleOutcome::NotFound),
            None => SettleOutcome::NotFound,
        };
        w.begin_object();
        w.field_str("event_id", text);
        w.field_str(
            "status",
            match outcome {
                SettleOutcome::Done => {
                    acked += 1;
                    "acked"
                }
                SettleOutcome::AlreadyDone => "already_acked",
                SettleOutcome::NotFound => "not_found",
            },
        );
        w.end_object();
    }
    w.end_array();
    w.field_u64("acked", acked);
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `POST /v1/events/{id}/ack`
pub(crate) async fn ack_one<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let text = cx.param("id");
    let id = event_id(text)?;
    let outcome = app
        .store
        .settle(who.tenant, vec![id], Settle::Ack)
        .await
        .map_err(store_problem)?;
    match outcome.first() {
        Some(SettleOutcome::Done | SettleOutcome::AlreadyDone) => {
            let mut w = JsonWriter::with_capacity(96);
            w.begin_object();
            w.field_str("event_id", text);
            w.field_str("status", "acked");
            w.end_object();
            Ok(reply::json(StatusCode::OK, w.finish()))
        }
        Some(SettleOutcome::NotFound) | None => Err(not_found_event(text)),
    }
}
