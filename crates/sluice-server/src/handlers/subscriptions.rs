//! Webhook subscriptions (`/v1/subscriptions…`, scope `manage`): create, list, read
//! with delivery state, change, delete, rotate the secret, the attempts log, dead
//! letters, replays and the test event.
//!
//! Another tenant's subscription id answers 404, exactly like an unknown one: every
//! lookup goes through the catalog's `subscription(tenant, id)`, which matches the
//! whole id within the caller's tenant.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Deserialize;
use sluice_push::request::RESERVED_HEADERS;
use sluice_push::signer::Secret;
use sluice_push::target::{check_url, TargetError};
use sluice_store::delivery::{Attempt, AttemptQuery, DeliveryState, Replay, REPLAY_EVENTS_MAX};
use sluice_store::{
    CatalogChange, Changed, EventId, EventState, NewSubscription, Ordering, Store, StoredEvent,
    Subscription, SubscriptionPatch, SubscriptionStatus, TenantId, UnixMs,
};

use super::{limit_param, parse_json, query_pairs, read_json_body, store_problem, write_event};
use crate::app::{App, Cx};
use crate::cursor::Listing;
use crate::json::JsonWriter;
use crate::problem::{Code, FieldError, Problem};
use crate::reply::{self, Reply};
use crate::validate;

/// The largest subscription request body.
const BODY_BYTES_MAX: usize = 256 << 10;
/// Extra headers one subscription may send.
const HEADERS_MAX: usize = 32;
/// Longest description.
const DESCRIPTION_BYTES_MAX: usize = 1024;
/// Longest target URL.
const TARGET_URL_BYTES_MAX: usize = 2048;
/// Deliveries in flight without ordering, by default and at most.
const MAX_IN_FLIGHT_DEFAULT: u32 = 16;
const MAX_IN_FLIGHT_MAX: u32 = 1000;
/// Ids one replay may name.
const REPLAY_IDS_MAX: usize = 1000;
/// How long a rotated-out secret keeps signing beside the new one.
const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    target_url: String,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    ordering: Option<String>,
    #[serde(default)]
    max_in_flight: Option<u32>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    target_url: Option<String>,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    event_ids: Option<Vec<String>>,
}

/// Checks a target URL against the SSRF rules the dispatcher dials by.
fn target<S: Store>(app: &App<S>, url: &str) -> Result<(), Problem> {
    if url.len() > TARGET_URL_BYTES_MAX {
        return Err(Problem::validation(vec![FieldError::new(
            "target_url",
            "must be at most 2048 bytes",
        )]));
    }
    match check_url(url, app.push.config().allow_private_targets) {
        Ok(_) => Ok(()),
        Err(e @ TargetError::Forbidden { .. }) => {
            Err(Problem::new(Code::TargetNotAllowed, e.to_string()))
        }
        Err(e) => Err(Problem::validation(vec![FieldError::new(
            "target_url",
            e.to_string(),
        )])),
    }
}

fn headers(h: BTreeMap<String, String>, errors: &mut Vec<FieldError>) -> BTreeMap<String, String> {
    if h.len() > HEADERS_MAX {
        errors.push(FieldError::new("headers", "must hold at most 32 headers"));
        return BTreeMap::new();
    }
    let mut out = BTreeMap::new();
    for (name, value) in h {
        let lower = name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            errors.push(FieldError::new(
                format!("headers.{name}"),
                "is not a valid header name",
            ));
        } else if RESERVED_HEADERS.contains(&lower.as_str()) {
            errors.push(FieldError::new(
                format!("headers.{name}"),
                "is set by Sluice on every delivery and cannot be replaced",
            ));
        } else if http::HeaderValue::from_str(&value).is_err() {
            errors.push(FieldError::new(
                format!("headers.{name}"),
                "is not a valid header value",
            ));
        } else {
            out.insert(lower, value);
        }
    }
    out
}

/// The caller's subscription named in the path, or the 404 an unknown one gets.
async fn lookup<S: Store>(
    app: &App<S>,
    tenant: TenantId,
    id: &str,
) -> Result<Subscription, Problem> {
    app.find_in_catalog(|catalog| catalog.subscription(tenant, id).cloned())
        .await?
        .ok_or_else(|| {
            Problem::new(
                Code::NotFound,
                format!("no subscription {id} for this tenant"),
            )
        })
}

fn opt_time(w: &mut JsonWriter, key: &'static str, at: Option<UnixMs>) {
    match at {
        Some(ms) => w.field_timestamp(key, ms),
        None => w.field_null(key),
    }
}

/// Writes a subscription, with its delivery state when given. The secret is written
/// only when given: a creation's answer shows it once.
fn write_subscription(
    w: &mut JsonWriter,
    s: &Subscription,
    state: Option<&DeliveryState>,
    secret: Option<&str>,
) {
    w.begin_object();
    w.field_str("id", &s.id);
    w.field_str("target_url", &s.target_url);
    w.key("event_types");
    w.begin_array();
    for t in &s.event_types {
        w.str(t);
    }
    w.end_array();
    w.field_opt_str("description", s.description.as_deref());
    w.field_str("ordering", s.ordering.as_str());
    w.field_u64("max_in_flight", u64::from(s.max_in_flight));
    w.key("headers");
    w.begin_object();
    for (name, value) in &s.headers {
        w.escaped_key(name);
        w.str(value);
    }
    w.end_object();
    w.field_str("status", s.status.as_str());
    w.field_opt_str("disabled_reason", s.disabled_reason.as_deref());
    w.field_timestamp("created_at", s.created_at);
    if let Some(secret) = secret {
        w.field_str("secret", secret);
    }
    if let Some(d) = state {
        w.field_u64("backlog", d.backlog);
        w.field_u64("in_flight", u64::from(d.in_flight));
        w.field_u64("retrying", u64::from(d.retrying));
        w.field_u64("dead_letters", d.dead_letters);
        opt_time(w, "last_success_at", d.last_success_at);
        opt_time(w, "last_failure_at", d.last_failure_at);
    }
    w.end_object();
}

fn write_attempt(w: &mut JsonWriter, a: &Attempt) {
    let mut id = [0u8; 30];
    w.begin_object();
    w.field_str("attempt_id", &format!("att_{:016x}", a.serial));
    w.field_token("event_id", a.event_id.encode(&mut id));
    w.field_u64("attempt", u64::from(a.attempt));
    w.field_timestamp("started_at", a.started_at);
    w.field_u64("latency_ms", u64::from(a.latency_ms));
    match a.status {
        Some(s) => w.field_u64("response_status", u64::from(s)),
        None => w.field_null("response_status"),
    }
    w.field_opt_str("error", a.error.as_deref());
    w.field_str("outcome", a.outcome.as_str());
    w.end_object();
}

fn changed_subscription(changed: Changed) -> Result<Subscription, Problem> {
    match changed {
        Changed::Subscription(s) => Ok(*s),
        other => Err(Problem::new(
            Code::Internal,
            format!("a subscription change was answered with {other:?}"),
        )),
    }
}

/// `POST /v1/subscriptions`
pub(crate) async fn create<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let body = read_json_body(app, cx, BODY_BYTES_MAX).await?;
    let req: CreateBody = parse_json(&body)?;
    target(app, &req.target_url)?;
    let mut errors = Vec::new();
    let types = validate::event_type_patterns(req.event_types.unwrap_or_default(), &mut errors);
    let ordering = match req.ordering.as_deref() {
        None | Some("fifo") => Ordering::Fifo,
        Some("none") => Ordering::None,
        Some(_) => {
            errors.push(FieldError::new("ordering", "must be fifo or none"));
            Ordering::Fifo
        }
    };
    let max_in_flight = req.max_in_flight.unwrap_or(MAX_IN_FLIGHT_DEFAULT);
    if !(1..=MAX_IN_FLIGHT_MAX).contains(&max_in_flight) {
        errors.push(FieldError::new(
            "max_in_flight",
            "must be an integer from 1 to 1000",
        ));
    }
    if req
        .description
        .as_ref()
        .is_some_and(|d| d.len() > DESCRIPTION_BYTES_MAX)
    {
        errors.push(FieldError::new("description", "must be at most 1024 bytes"));
    }
    let headers = headers(req.headers.unwrap_or_default(), &mut errors);
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let secret = Secret::generate();
    let id_bits: [u8; 12] = rand::random();
    let id = format!(
        "sub_{}",
        id_bits
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let change = CatalogChange::CreateSubscription(NewSubscription {
        id,
        tenant: who.tenant,
        target_url: req.target_url,
        event_types: types,
        description: req.description,
        ordering,
        max_in_flight,
        headers,
        secret: secret.clone(),
    });
    let sub = changed_subscription(
        app.store
            .change_catalog(change)
            .await
            .map_err(store_problem)?,
    )?;
    let mut w = JsonWriter::with_capacity(512);
    write_subscription(&mut w, &sub, None, Some(&secret));
    Ok(reply::json(StatusCode::CREATED, w.finish()))
}

/// `GET /v1/subscriptions`
pub(crate) async fn list<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let catalog = app.catalog_synced().await?;
    let mut w = JsonWriter::with_capacity(4096);
    w.begin_object();
    w.key("subscriptions");
    w.begin_array();
    for s in catalog
        .subscriptions
        .iter()
        .filter(|s| s.tenant == who.tenant)
    {
        write_subscription(&mut w, s, None, None);
    }
    w.end_array();
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `GET /v1/subscriptions/{id}`
pub(crate) async fn get<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let sub = lookup(app, who.tenant, cx.param("id")).await?;
    let state = app
        .store
        .delivery_state(sub.key)
        .await
        .map_err(store_problem)?;
    let mut w = JsonWriter::with_capacity(768);
    write_subscription(&mut w, &sub, Some(&state), None);
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `PATCH /v1/subscriptions/{id}`
pub(crate) async fn patch<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let sub = lookup(app, who.tenant, cx.param("id")).await?;
    let body = read_json_body(app, cx, BODY_BYTES_MAX).await?;
    let req: PatchBody = parse_json(&body)?;
    if let Some(url) = &req.target_url {
        target(app, url)?;
    }
    let mut errors = Vec::new();
    let types = req
        .event_types
        .map(|t| validate::event_type_patterns(t, &mut errors));
    let status = match req.status.as_deref() {
        None => None,
        Some("active") => Some(SubscriptionStatus::Active),
        Some("paused") => Some(SubscriptionStatus::Paused),
        Some(_) => {
            errors.push(FieldError::new(
                "status",
                "must be active or paused (disabled is set by Sluice; active re-enables)",
            ));
            None
        }
    };
    if req
        .description
        .as_ref()
        .and_then(|d| d.as_ref())
        .is_some_and(|d| d.len() > DESCRIPTION_BYTES_MAX)
    {
        errors.push(FieldError::new("description", "must be at most 1024 bytes"));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let change = CatalogChange::UpdateSubscription {
        tenant: who.tenant,
        id: sub.id.clone(),
        patch: SubscriptionPatch {
            target_url: req.target_url,
            event_types: types,
            description: req.description,
            status,
            disabled_reason: None,
        },
    };
    let sub = changed_subscription(
        app.store
            .change_catalog(change)
            .await
            .map_err(store_problem)?,
    )?;
    let state = app
        .store
        .delivery_state(sub.key)
        .await
        .map_err(store_problem)?;
    let mut w = JsonWriter::with_capacity(768);
    write_subscription(&mut w, &sub, Some(&state), None);
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `DELETE /v1/subscriptions/{id}`
pub(crate) async fn delete<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let sub = lookup(app, who.tenant, cx.param("id")).await?;
    let change = CatalogChange::DeleteSubscription {
        tenant: who.tenant,
        id: sub.id,
    };
    app.store
        .change_catalog(change)
        .await
        .map_err(store_problem)?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

/// `POST /v1/subscriptions/{id}/rotate-secret`
pub(crate) async fn rotate_secret<S: Store>(
    app: &App<S>,
    cx: &mut Cx<'_>,
) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let sub = lookup(app, who.tenant, cx.param("id")).await?;
    let secret = Secret::generate();
    let change = CatalogChange::RotateSecret {
        tenant: who.tenant,
        id: sub.id,
        secret: secret.clone(),
        old_valid_until: sluice_store::now_ms() + ROTATION_OVERLAP_MS,
    };
    app.store
        .change_catalog(change)
        .await
        .map_err(store_problem)?;
    let mut w = JsonWriter::with_capacity(96);
    w.begin_object();
    w.field_str("secret", &secret);
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `GET /v1/subscriptions/{id}/attempts?limit=&cursor=&outcome=`
pub(crate) async fn attempts<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let sub = lookup(app, who.tenant, cx.param("id")).await?;
    let listing = Listing::Attempts(sub.key.0);
    let mut query = AttemptQuery {
        before: None,
        limit: 100,
        outcome: None,
    };
    let mut errors = Vec::new();
    for (k, v) in query_pairs(cx) {
        match k.as_ref() {
            "limit" => query.limit = limit_param(&v, &mut errors),
            "cursor" if v.is_empty() => {}
            "cursor" => query.before = Some(app.cursors.decode(listing, who.tenant, &v)?.0),
            "outcome" => match sluice_store::delivery::AttemptOutcome::parse(&v) {
                Some(o) => query.outcome = Some(o),
                None => errors.push(FieldError::new(
                    "outcome",
                    "must be delivered, failed or dead",
                )),
            },
            other => errors.push(FieldError::new(
                other,
                "is not a known parameter (limit, cursor, outcome)",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let page = app
        .store
        .attempts(sub.key, query)
        .await
        .map_err(store_problem)?;
    let mut w = JsonWriter::with_capacity(256 * page.attempts.len() + 64);
    w.begin_object();
    w.key("attempts");
    w.begin_array();
    for a in &page.attempts {
        write_attempt(&mut w, a);
    }
    w.end_array();
    match page.attempts.last().filter(|_| page.has_more) {
        Some(last) => w.field_str(
            "next_cursor",
            &app.cursors
                .encode(listing, who.tenant, sluice_store::Sequence(last.serial)),
        ),
        None => w.field_null("next_cursor"),
    }
    w.field_bool("has_more", page.has_more);
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `GET /v1/subscriptions/{id}/dead-letters?limit=&cursor=`
pub(crate) async fn dead_letters<S: Store>(
    app: &App<S>,
    cx: &mut Cx<'_>,
) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let sub = lookup(app, who.tenant, cx.param("id")).await?;
    let listing = Listing::DeadLetters(sub.key.0);
    let mut limit = 100;
    let mut after = None;
    let mut errors = Vec::new();
    for (k, v) in query_pairs(cx) {
        match k.as_ref() {
            "limit" => limit = limit_param(&v, &mut errors),
            "cursor" if v.is_empty() => {}
            "cursor" => after = Some(app.cursors.decode(listing, who.tenant, &v)?),
            other => errors.push(FieldError::new(
                other,
                "is not a known parameter (limit, cursor)",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let page = app
        .store
        .dead_letters(sub.key, after, limit)
        .await
        .map_err(store_problem)?;
    let mut w = JsonWriter::with_capacity(
        page.dead
            .iter()
            .map(|d| d.event.payload.len() + 400)
            .sum::<usize>()
            + 64,
    );
    w.begin_object();
    w.key("dead_letters");
    w.begin_array();
    for d in &page.dead {
        w.begin_object();
        w.key("event");
        let e = &d.event;
        write_event(
            &mut w,
            &StoredEvent {
                id: e.id,
                tenant: e.tenant,
                event_type: e.event_type.clone(),
                source: e.source.clone(),
                occurred_at: e.occurred_at.clone(),
                received_at: e.received_at,
                payload: e.payload.clone(),
                delivery_count: d.attempts,
                state: EventState::Pending,
            },
        );
        w.field_timestamp("dead_at", d.dead_at);
        w.field_u64("attempts", u64::from(d.attempts));
        w.end_object();
    }
    w.end_array();
    match page.next.filter(|_| page.has_more) {
        Some(next) => w.field_str(
            "next_cursor",
            &app.cursors.encode(listing, who.tenant, next),
        ),
        None => w.field_null("next_cursor"),
    }
    w.field_bool("has_more", page.has_more);
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

fn timestamp(field: &'static str, text: &str) -> Result<UnixMs, FieldError> {
    if !crate::envelope::valid_rfc3339(text) {
        return Err(FieldError::new(
            field,
            "must be an RFC 3339 timestamp, e.g. 2026-01-02T03:04:05Z",
        ));
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .or_else(|| humantime::parse_rfc3339(text).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .ok_or_else(|| FieldError::new(field, "must be an RFC 3339 timestamp in UTC (Z)"))
}

/// `POST /v1/subscriptions/{id}/replay {"since", "until"?} | {"event_ids"}`
pub(crate) async fn replay<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let sub = lookup(app, who.tenant, cx.param("id")).await?;
    let body = read_json_body(app, cx, BODY_BYTES_MAX).await?;
    let req: ReplayBody = parse_json(&body)?;
    let what = match (req.since, req.until, req.event_ids) {
        (Some(since), until, None) => {
            let since = timestamp("since", &since).map_err(|e| Problem::validation(vec![e]))?;
            let until = match until {
                Some(u) => Some(timestamp("until", &u).map_err(|e| Problem::validation(vec![e]))?),
                None => None,
            };
            if until.is_some_and(|u| u <= since) {
                return Err(Problem::validation(vec![FieldError::new(
                    "until",
                    "must be after since",
                )]));
            }
            Replay::Range { since, until }
        }
        (None, None, Some(ids)) => {
            if ids.is_empty() || ids.len() > REPLAY_IDS_MAX {
                return Err(Problem::validation(vec![FieldError::new(
                    "event_ids",
                    "must hold 1 to 1000 ids",
                )]));
            }
            // An id that is not exactly an event's names none: it queues nothing.
            Replay::Ids(ids.iter().filter_map(|s| EventId::parse(s)).collect())
        }
        _ => {
            return Err(Problem::validation(vec![FieldError::new(
                "",
                "send {\"since\": RFC 3339, \"until\"?: RFC 3339} or {\"event_ids\": [...]}",
            )]))
        }
    };
    let queued = app
        .store
        .replay(sub.key, what)
        .await
        .map_err(store_problem)?;
    app.push.wake(sub.key);
    let mut w = JsonWriter::with_capacity(64);
    w.begin_object();
    w.field_u64("queued", queued);
    w.field_bool("truncated", queued as usize >= REPLAY_EVENTS_MAX);
    w.end_object();
    Ok(reply::json(StatusCode::ACCEPTED, w.finish()))
}

/// `POST /v1/subscriptions/{id}/test`
pub(crate) async fn test<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let who = cx.who()?;
    let sub = lookup(app, who.tenant, cx.param("id")).await?;
    let attempt = app.push.test(&sub).await.map_err(store_problem)?;
    let mut w = JsonWriter::with_capacity(256);
    write_attempt(&mut w, &attempt);
    Ok(reply::json(StatusCode::OK, w.finish()))
}
