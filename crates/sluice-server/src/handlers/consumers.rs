//! Consumers: `GET /v1/consumers`, `GET` and `PATCH /v1/consumers/{name}`.
//!
//! Every tenant has one consumer today, its inbox, named `default`: these routes show
//! where it stands (pending events, the age of the oldest: its lag) and set its
//! `max_deliveries`. Named consumers (independent inboxes over the same log) will be
//! more entries of the same listing; until they exist, any other name is `404`.

use http::StatusCode;
use sluice_store::{CatalogChange, InboxSettings, Store, TenantId};

use super::{parse_json, read_json_body, store_problem};
use crate::app::{App, Cx};
use crate::json::JsonWriter;
use crate::problem::{Code, FieldError, Problem};
use crate::reply::{self, Reply};

/// The one consumer every tenant has.
const DEFAULT: &str = "default";

/// A settings body's size bound.
const SETTINGS_BODY_MAX: usize = 4 << 10;

/// The most `max_deliveries` may be: far above any useful retry budget, and inside the
/// delivery count a restart resets anyway.
const MAX_DELIVERIES_MAX: u32 = 1000;

/// `GET /v1/consumers`
pub(crate) async fn list<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let mut w = JsonWriter::with_capacity(256);
    w.begin_object();
    w.key("consumers");
    w.begin_array();
    write_consumer(app, &mut w, who.tenant).await?;
    w.end_array();
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `GET /v1/consumers/{name}`
pub(crate) async fn get<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    known(cx.param("name"))?;
    let mut w = JsonWriter::with_capacity(256);
    write_consumer(app, &mut w, who.tenant).await?;
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `PATCH /v1/consumers/{name} {"max_deliveries": n | null}` (JSON merge patch: a
/// field left out stays as it is; `null` clears it).
pub(crate) async fn patch<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let body = read_json_body(app, cx, SETTINGS_BODY_MAX).await?;
    known(cx.param("name"))?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Patch {
        #[serde(default, deserialize_with = "super::present")]
        max_deliveries: Option<Option<u32>>,
    }
    let parsed: Patch = parse_json(&body)?;
    let catalog = app.store.catalog().borrow().clone();
    let mut settings = catalog
        .tenant(who.tenant)
        .map(|t| t.inbox)
        .unwrap_or_default();
    if let Some(m) = parsed.max_deliveries {
        if m.is_some_and(|m| !(1..=MAX_DELIVERIES_MAX).contains(&m)) {
            return Err(Problem::validation(vec![FieldError::new(
                "max_deliveries",
                "must be an integer from 1 to 1000, or null for unlimited",
            )]));
        }
        settings.max_deliveries = m;
    }
    set(app, who.tenant, settings).await?;
    let mut w = JsonWriter::with_capacity(256);
    write_consumer(app, &mut w, who.tenant).await?;
    Ok(reply::json(StatusCode::OK, w.finish()))
}

async fn set<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    settings: InboxSettings,
) -> Result<(), Problem> {
    app.store
        .change_catalog(CatalogChange::SetInboxSettings { tenant, settings })
        .await
        .map_err(store_problem)?;
    app.refresh_catalog();
    Ok(())
}

fn known(name: &str) -> Result<(), Problem> {
    if name == DEFAULT {
        Ok(())
    } else {
        Err(Problem::new(
            Code::NotFound,
            format!("no consumer {name:?} for this tenant (its inbox is the consumer \"default\")"),
        ))
    }
}

async fn write_consumer<S: Store>(
    app: &App<S>,
    w: &mut JsonWriter,
    tenant: TenantId,
) -> Result<(), Problem> {
    let summary = app
        .store
        .inbox_summaries()
        .await
        .map_err(store_problem)?
        .into_iter()
        .find(|s| s.tenant == tenant);
    let max_deliveries = app
        .store
        .catalog()
        .borrow()
        .tenant(tenant)
        .and_then(|t| t.inbox.max_deliveries);
    let now = sluice_store::now_ms();
    w.begin_object();
    w.field_str("name", DEFAULT);
    w.field_u64("pending", summary.map_or(0, |s| s.pending));
    let age = summary
        .and_then(|s| s.oldest_pending_ms)
        .map(|t| (now.saturating_sub(t).max(0) as f64) / 1000.0);
    match age {
        Some(a) => {
            w.key("oldest_pending_age_seconds");
            w.raw(format!("{a:.3}").as_bytes());
        }
        None => w.field_null("oldest_pending_age_seconds"),
    }
    match max_deliveries {
        Some(m) => w.field_u64("max_deliveries", u64::from(m)),
        None => w.field_null("max_deliveries"),
    }
    w.end_object();
    Ok(())
}
