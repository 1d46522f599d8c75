//! Consumers: `GET` and `POST /v1/consumers`, `GET`, `PATCH` and `DELETE
//! /v1/consumers/{name}`.
//!
//! Every tenant has its inbox, the consumer `default`, which takes every event. A named
//! consumer is another inbox over the same log, with its own pending set, leases, acks
//! and dead letters (Kafka's consumer groups, JetStream's durable consumers): the
//! inbox routes act on it with `?consumer=<name>`. These routes show where each stands
//! (pending events, the age of the oldest: its lag), create and delete named ones, and
//! set `max_deliveries`.

use http::StatusCode;
use sluice_store::catalog::DEFAULT_CONSUMER;
use sluice_store::{
    Catalog, CatalogChange, Changed, ConsumerId, ConsumerStart, InboxSettings, InboxSummary,
    NewConsumer, Store, TenantId,
};

use super::{consumer_inbox, parse_json, read_json_body, store_problem};
use crate::app::{App, Cx};
use crate::json::JsonWriter;
use crate::problem::{Code, FieldError, Problem};
use crate::reply::{self, Reply};
use crate::validate;

/// A settings body's size bound.
const SETTINGS_BODY_MAX: usize = 4 << 10;

/// A creation body's size bound: a name and up to 100 type patterns.
const CREATE_BODY_MAX: usize = 64 << 10;

/// The most `max_deliveries` may be: far above any useful retry budget, and inside the
/// delivery count a restart resets anyway.
const MAX_DELIVERIES_MAX: u32 = 1000;

/// The longest consumer name, in characters.
const NAME_CHARS_MAX: usize = 64;

/// What a consumer's name may be: it goes in query strings and metric labels as is.
const NAME_RULE: &str = "must be 1 to 64 characters of a-z, 0-9, '_' or '-' (and not \"default\", which every tenant has)";

/// One consumer as the routes show it.
struct View {
    name: String,
    id: ConsumerId,
    event_types: Vec<String>,
    max_deliveries: Option<u32>,
    start_after: Option<u64>,
}

/// Every consumer of the tenant, `default` first, then named ones by creation.
fn views(catalog: &Catalog, tenant: TenantId) -> Vec<View> {
    let mut all = vec![View {
        name: DEFAULT_CONSUMER.to_owned(),
        id: ConsumerId::DEFAULT,
        event_types: Vec::new(),
        max_deliveries: catalog.tenant(tenant).and_then(|t| t.inbox.max_deliveries),
        start_after: None,
    }];
    all.extend(
        catalog
            .consumers
            .iter()
            .filter(|c| c.tenant == tenant)
            .map(|c| View {
                name: c.name.clone(),
                id: c.id,
                event_types: c.event_types.clone(),
                max_deliveries: c.max_deliveries,
                start_after: Some(c.start_after.0),
            }),
    );
    all
}

async fn view_named<S: Store>(app: &App<S>, tenant: TenantId, name: &str) -> Result<View, Problem> {
    app.find_in_catalog(|catalog| views(catalog, tenant).into_iter().find(|v| v.name == name))
        .await?
        .ok_or_else(|| super::not_found_consumer(name))
}

/// `GET /v1/consumers`
pub(crate) async fn list<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let summaries = summaries(app, who.tenant).await?;
    let mut w = JsonWriter::with_capacity(256);
    w.begin_object();
    w.key("consumers");
    w.begin_array();
    for v in views(&*app.catalog_synced().await?, who.tenant) {
        write_consumer(&mut w, &v, &summaries);
    }
    w.end_array();
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `GET /v1/consumers/{name}`
pub(crate) async fn get<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let view = view_named(app, who.tenant, cx.param("name")).await?;
    one(app, who.tenant, &view, StatusCode::OK).await
}

/// `POST /v1/consumers {"name", "event_types"?, "max_deliveries"?, "start"?: "new"|"all"}`
pub(crate) async fn create<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let body = read_json_body(app, cx, CREATE_BODY_MAX).await?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Create {
        name: String,
        event_types: Option<Vec<String>>,
        max_deliveries: Option<u32>,
        start: Option<String>,
    }
    let req: Create = parse_json(&body)?;
    let mut errors = Vec::new();
    if !valid_name(&req.name) {
        errors.push(FieldError::new("name", NAME_RULE));
    }
    let event_types =
        validate::event_type_patterns(req.event_types.unwrap_or_default(), &mut errors);
    if let Some(e) = max_deliveries_error(req.max_deliveries) {
        errors.push(e);
    }
    let start = match req.start.as_deref() {
        None | Some("new") => ConsumerStart::New,
        Some("all") => ConsumerStart::All,
        Some(_) => {
            errors.push(FieldError::new(
                "start",
                "must be \"new\" (only events committed from now on) or \"all\" (every retained event)",
            ));
            ConsumerStart::New
        }
    };
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let change = CatalogChange::CreateConsumer(NewConsumer {
        tenant: who.tenant,
        name: req.name,
        event_types,
        max_deliveries: req.max_deliveries,
        start,
    });
    let created = app
        .store
        .change_catalog(change)
        .await
        .map_err(store_problem)?;
    let Changed::Consumer(c) = created else {
        return Err(Problem::new(
            Code::Internal,
            "the store answered a consumer's creation with something else",
        ));
    };
    app.refresh_catalog();
    let view = View {
        name: c.name,
        id: c.id,
        event_types: c.event_types,
        max_deliveries: c.max_deliveries,
        start_after: Some(c.start_after.0),
    };
    one(app, who.tenant, &view, StatusCode::CREATED).await
}

/// `DELETE /v1/consumers/{name}`: the consumer goes, with its pending set and dead
/// letters; the events stay in the log for every other consumer.
pub(crate) async fn delete<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let name = cx.param("name");
    if name == DEFAULT_CONSUMER {
        return Err(Problem::new(
            Code::Conflict,
            "the default consumer is the tenant's own inbox and cannot be deleted",
        ));
    }
    app.store
        .change_catalog(CatalogChange::DeleteConsumer {
            tenant: who.tenant,
            name: name.to_owned(),
        })
        .await
        .map_err(|e| match e {
            sluice_store::StoreError::NotFound(_) => super::not_found_consumer(name),
            other => store_problem(other),
        })?;
    app.refresh_catalog();
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

/// `PATCH /v1/consumers/{name} {"max_deliveries": n | null}` (JSON merge patch: a
/// field left out stays as it is; `null` clears it).
pub(crate) async fn patch<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let (who, tenant_entry) = cx.key()?;
    let default_max = tenant_entry.max_deliveries;
    let body = read_json_body(app, cx, SETTINGS_BODY_MAX).await?;
    let name = cx.param("name");
    let inbox = consumer_inbox(app, who.tenant, default_max, Some(name)).await?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Patch {
        #[serde(default, deserialize_with = "super::present")]
        max_deliveries: Option<Option<u32>>,
    }
    let parsed: Patch = parse_json(&body)?;
    if let Some(m) = parsed.max_deliveries {
        if let Some(e) = max_deliveries_error(m) {
            return Err(Problem::validation(vec![e]));
        }
        let change = if inbox.key.consumer == ConsumerId::DEFAULT {
            CatalogChange::SetInboxSettings {
                tenant: who.tenant,
                settings: InboxSettings { max_deliveries: m },
            }
        } else {
            CatalogChange::SetConsumerMaxDeliveries {
                tenant: who.tenant,
                name: name.to_owned(),
                max_deliveries: m,
            }
        };
        app.store
            .change_catalog(change)
            .await
            .map_err(store_problem)?;
        app.refresh_catalog();
    }
    let view = view_named(app, who.tenant, name).await?;
    one(app, who.tenant, &view, StatusCode::OK).await
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_CHARS_MAX
        && name != DEFAULT_CONSUMER
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

fn max_deliveries_error(m: Option<u32>) -> Option<FieldError> {
    m.is_some_and(|m| !(1..=MAX_DELIVERIES_MAX).contains(&m))
        .then(|| {
            FieldError::new(
                "max_deliveries",
                "must be an integer from 1 to 1000, or null for unlimited",
            )
        })
}

async fn summaries<S: Store>(app: &App<S>, tenant: TenantId) -> Result<Vec<InboxSummary>, Problem> {
    let mut all = app.store.inbox_summaries().await.map_err(store_problem)?;
    all.retain(|s| s.tenant == tenant);
    Ok(all)
}

async fn one<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    view: &View,
    status: StatusCode,
) -> Result<Reply, Problem> {
    let summaries = summaries(app, tenant).await?;
    let mut w = JsonWriter::with_capacity(256);
    write_consumer(&mut w, view, &summaries);
    Ok(reply::json(status, w.finish()))
}

fn write_consumer(w: &mut JsonWriter, v: &View, summaries: &[InboxSummary]) {
    let summary = summaries.iter().find(|s| s.consumer == v.id);
    let now = sluice_store::now_ms();
    w.begin_object();
    w.field_str("name", &v.name);
    w.key("event_types");
    w.begin_array();
    for t in &v.event_types {
        w.str(t);
    }
    w.end_array();
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
    match v.max_deliveries {
        Some(m) => w.field_u64("max_deliveries", u64::from(m)),
        None => w.field_null("max_deliveries"),
    }
    // Where it started in the log: the default inbox has every event of the tenant.
    match v.start_after {
        Some(s) => w.field_u64("start_after_sequence", s),
        None => w.field_null("start_after_sequence"),
    }
    w.end_object();
}
