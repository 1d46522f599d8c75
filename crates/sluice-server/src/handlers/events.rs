//! Single events: `GET /v1/events/{id}` and `DELETE /v1/events/{id}`.

use http::StatusCode;
use sluice_store::{Settle, SettleOutcome, Store};

use super::{event_id, not_found_event, store_problem, write_event};
use crate::app::{App, Cx};
use crate::json::JsonWriter;
use crate::problem::Problem;
use crate::reply::{self, Reply};

/// `GET /v1/events/{id}`
pub(crate) async fn get<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let text = cx.param("id");
    let id = event_id(text)?;
    let event = app
        .store
        .get(who.tenant, id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| not_found_event(text))?;
    let mut w = JsonWriter::with_capacity(event.payload.len() + 320);
    write_event(&mut w, &event);
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `DELETE /v1/events/{id}`
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
        Some(SettleOutcome::NotFound) | None => Err(not_found_event(text)),
    }
}
