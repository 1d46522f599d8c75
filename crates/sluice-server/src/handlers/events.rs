//! Events by id (`GET` and `DELETE /v1/events/{id}`) and the history (`GET /v1/events`).

use http::StatusCode;
use sluice_store::{EventState, LogQuery, Settle, SettleOutcome, Store, StoredEvent, UnixMs};

use super::{
    event_id, inbox_of, limit_param, not_found_event, query_pairs, store_problem, write_event,
    write_event_page,
};
use crate::app::{App, Cx};
use crate::cursor::Listing;
use crate::json::JsonWriter;
use crate::problem::{FieldError, Problem};
use crate::reply::{self, Reply};
use crate::validate;

/// `GET /v1/events/{id}`
pub(crate) async fn get<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let inbox = inbox_of(app, cx).await?.key;
    let text = cx.param("id");
    let id = event_id(text)?;
    let event = app
        .store
        .get(inbox, id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| not_found_event(text))?;
    let mut w = JsonWriter::with_capacity(event.payload.len() + 320);
    write_event(&mut w, &event);
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `DELETE /v1/events/{id}`: from the log, so from every consumer's inbox.
pub(crate) async fn delete<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let text = cx.param("id");
    let id = event_id(text)?;
    let outcome = app
        .store
        .settle(who.tenant, vec![id], Settle::Delete)
        .await
        .map_err(store_problem)?;
    match outcome.first() {
        Some(SettleOutcome::Done | SettleOutcome::AlreadyDone) => {
            Ok(reply::empty(StatusCode::NO_CONTENT))
        }
        // A delete carries no lease, so the store never answers `LeaseExpired` to it.
        Some(SettleOutcome::NotFound | SettleOutcome::LeaseExpired) | None => {
            Err(not_found_event(text))
        }
    }
}

/// Log reads one history page makes at most before it answers with how far it got
/// (`has_more` and a cursor): the bound on one request's work when filters match little.
const HISTORY_READS_MAX: usize = 16;

/// `GET /v1/events?since=&until=&event_type=&state=&limit=&cursor=`: the tenant's events
/// in ingest order, acked ones included, while retained; the replay `retention.acked`
/// exists for. Read from the log, with each event's inbox state beside it; with
/// `consumer=`, the events that consumer takes, with its state.
pub(crate) async fn history<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let inbox = inbox_of(app, cx).await?.key;
    let mut limit = 100usize;
    let mut after = None;
    let mut event_type = None;
    let mut state: Option<&'static str> = None;
    let (mut since, mut until) = (None::<UnixMs>, None::<UnixMs>);
    let mut errors = Vec::new();
    let time = |v: &str| {
        humantime::parse_rfc3339_weak(v)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as UnixMs)
    };
    for (k, v) in query_pairs(cx) {
        match k.as_ref() {
            "limit" => limit = limit_param(&v, &mut errors),
            "cursor" if v.is_empty() => {}
            "cursor" => after = Some(app.cursors.decode(Listing::History, who.tenant, &v)?),
            "event_type" if v.is_empty() => {}
            "event_type" if validate::event_type(&v) => event_type = Some(v.into_owned()),
            "event_type" => errors.push(FieldError::new("event_type", validate::EVENT_TYPE_RULE)),
            "state" => match v.as_ref() {
                "pending" => state = Some("pending"),
                "leased" => state = Some("leased"),
                "acked" => state = Some("acked"),
                "dead" => state = Some("dead"),
                _ => errors.push(FieldError::new(
                    "state",
                    "must be pending, leased, acked or dead",
                )),
            },
            "since" | "until" => match time(&v) {
                Some(ms) if k == "since" => since = Some(ms),
                Some(ms) => until = Some(ms),
                None => errors.push(FieldError::new(
                    if k == "since" { "since" } else { "until" },
                    "must be an RFC 3339 UTC timestamp, such as 2026-12-01T10:00:00Z",
                )),
            },
            "consumer" => {}
            other => errors.push(FieldError::new(
                other,
                "is not a known parameter (since, until, event_type, state, limit, cursor, consumer)",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let mut found: Vec<StoredEvent> = Vec::new();
    let mut position = after;
    let mut has_more = true;
    for _ in 0..HISTORY_READS_MAX {
        let page = app
            .store
            .read_log(LogQuery {
                tenant: who.tenant,
                after: position,
                limit: limit - found.len(),
                event_type: event_type.clone(),
            })
            .await
            .map_err(store_problem)?;
        position = page.position.or(position);
        has_more = page.has_more;
        let ids = page.events.iter().map(|e| e.id).collect();
        let states = app
            .store
            .inbox_states(inbox, ids)
            .await
            .map_err(store_problem)?;
        for (e, st) in page.events.into_iter().zip(states) {
            // Settled (deleted, expired) between the read and the lookup: gone; or not
            // one the consumer takes.
            let Some((st, delivery_count)) = st else {
                continue;
            };
            // Receive times rise with the log (ids are time-ordered), so nothing after
            // one past `until` can match.
            if until.is_some_and(|u| e.received_at > u) {
                has_more = false;
                break;
            }
            if since.is_some_and(|s| e.received_at < s)
                || state.is_some_and(|s| s != state_name(st))
            {
                continue;
            }
            found.push(StoredEvent {
                id: e.id,
                tenant: e.tenant,
                event_type: e.event_type,
                source: e.source,
                occurred_at: e.occurred_at,
                received_at: e.received_at,
                payload: e.payload,
                delivery_count,
                state: st,
            });
        }
        if !has_more || found.len() >= limit {
            break;
        }
    }
    let cursor = position.map(|p| app.cursors.encode(Listing::History, who.tenant, p));
    let body = write_event_page(&found, |_| None, cursor, has_more);
    Ok(reply::json(StatusCode::OK, body))
}

fn state_name(state: EventState) -> &'static str {
    match state {
        EventState::Pending => "pending",
        EventState::Leased { .. } => "leased",
        EventState::Acked => "acked",
        EventState::Dead => "dead",
    }
}
