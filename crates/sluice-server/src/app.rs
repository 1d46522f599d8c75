//! The request path: dispatch, authentication, rate limiting and the handlers.
//!
//! Routing is a `match` on method and path segments. The ingest routes are the hot path
//! and must not pay for a framework's extraction layers (measured: axum's POST path cost
//! ~25 % against plain hyper on this machine class), so every route is served on hyper
//! directly, with one shared shape: handlers return `Result<Response, Problem>`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE,
    RETRY_AFTER,
};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use sluice_store::{
    AppendOutcome, EventId, EventState, InboxQuery, Scope, Sequence, Settle, SettleOutcome, Store,
    StoreError, StoredEvent,
};

use crate::auth::{KeyCache, Principal};
use crate::config::ServerConfig;
use crate::cursor::{CursorKey, Listing};
use crate::ingest;
use crate::json::{rfc3339_ms, JsonWriter};
use crate::metrics::{Metrics, Route};
use crate::problem::{Code, FieldError, Problem};
use crate::tenants::{RateDecision, TenantEntry, TenantTable};

/// The response type of every route.
pub type Reply = Response<Full<Bytes>>;

/// A request's body until a handler takes it. Whatever is still here when the answer
/// is ready was refused unread, and is drained before the answer goes out (see
/// [`drain_unread`]).
type BodySlot = Option<Incoming>;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");
/// Room for the envelope around a payload of the tenant's maximum size.
const ENVELOPE_BYTES_MAX: usize = 64 << 10;
/// The deepest route has 5 path segments; a longer path matches nothing.
const PATH_SEGMENTS_MAX: usize = 8;
/// A body that no handler read (a refusal before reading it, such as a 401 or a 413)
/// is read and discarded up to this size before the answer goes out, so the connection
/// can carry the next request and the client gets the answer instead of a reset; past
/// it, the answer says `Connection: close`.
const REFUSED_BODY_DRAIN_MAX: usize = 16 << 20;
/// Lease length bounds, in seconds.
const LEASE_SECONDS_MAX: u64 = 12 * 3600;

/// Everything the request path shares: read-mostly, behind cheap clones.
pub struct App<S> {
    store: Arc<S>,
    config: ServerConfig,
    keys: ArcSwap<KeyCache>,
    tenants: ArcSwap<TenantTable>,
    metrics: Metrics,
    request_seq: AtomicU64,
    request_prefix: String,
    /// `/openapi.json`, rendered once at start.
    openapi: Bytes,
    /// Signs and checks page cursors.
    cursors: CursorKey,
}

impl<S: Store> App<S> {
    /// Builds the app over a store.
    pub fn new(store: Arc<S>, config: ServerConfig) -> Arc<Self> {
        let catalog = store.catalog();
        let app = App {
            keys: ArcSwap::from_pointee(KeyCache::build(&catalog)),
            tenants: ArcSwap::from_pointee(TenantTable::build(&catalog, &config.limits, None)),
            store,
            config,
            metrics: Metrics::default(),
            request_seq: AtomicU64::new(0),
            request_prefix: format!("req_{:06x}", rand::random::<u32>() & 0xFF_FFFF),
            openapi: crate::openapi::document(),
            cursors: CursorKey::new(catalog.token_secret.as_bytes()),
        };
        Arc::new(app)
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The metrics, for the connection layer.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Rebuilds the key cache and tenant table after a catalog change.
    pub fn refresh_catalog(&self) {
        let catalog = self.store.catalog();
        self.keys.store(Arc::new(KeyCache::build(&catalog)));
        let previous = self.tenants.load();
        self.tenants.store(Arc::new(TenantTable::build(
            &catalog,
            &self.config.limits,
            Some(&previous),
        )));
    }

    /// Serves one request. Never fails: every error becomes a problem response.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Reply, Infallible> {
        let started = Instant::now();
        let (head, body) = req.into_parts();
        let mut body = Some(body);
        let request_id = match head
            .headers
            .get(&X_REQUEST_ID)
            .filter(|v| valid_request_id(v))
        {
            Some(v) => v.clone(),
            None => {
                let n = self.request_seq.fetch_add(1, Ordering::Relaxed);
                request_id(&self.request_prefix, n)
            }
        };
        let sample = self.config.access_log_sample;
        let logged = (sample > 0
            && self
                .request_seq
                .load(Ordering::Relaxed)
                .is_multiple_of(sample))
        .then(|| (head.method.clone(), head.uri.path().to_owned()));
        let (route, mut reply, rate) = self.dispatch(&head, &mut body, &request_id).await;
        // A stalled body (408) is abandoned, not drained; one that no handler read is
        // drained if it can be.
        let mut close = reply.status() == StatusCode::REQUEST_TIMEOUT;
        if let Some(unread) = body.take() {
            close |= !drain_unread(unread, &head, self.config.body_read_timeout).await;
        }
        if close {
            reply
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let headers = reply.headers_mut();
        headers.insert(X_REQUEST_ID.clone(), request_id);
        if let Some(rate) = rate {
            headers.insert(RATELIMIT_LIMIT.clone(), rate.limit);
            headers.insert(
                RATELIMIT_REMAINING.clone(),
                decimal_header(u64::from(rate.remaining)),
            );
            headers.insert(RATELIMIT_RESET.clone(), decimal_header(rate.reset_s));
        }
        let status = reply.status().as_u16();
        let elapsed_us = started.elapsed().as_micros() as u64;
        self.metrics.observe(route, status, elapsed_us);
        if let Some((method, path)) = logged {
            tracing::info!(%method, %path, status, elapsed_us, "request (sampled)");
        }
        Ok(reply)
    }

    async fn dispatch(
        &self,
        head: &Parts,
        body: &mut BodySlot,
        request_id: &HeaderValue,
    ) -> (Route, Reply, Option<RateDecision>) {
        let rid = request_id.to_str().unwrap_or("");
        let path = head.uri.path();
        let mut segments = [""; PATH_SEGMENTS_MAX];
        let mut count = 0;
        for part in path.trim_matches('/').split('/') {
            if count == PATH_SEGMENTS_MAX {
                count = 0; // too deep for any route: matches nothing, answers 404
                break;
            }
            segments[count] = part;
            count += 1;
        }
        let segments = &segments[..count];
        let method = &head.method;
        let open = match (method, segments) {
            (&Method::GET, ["v1", "health"]) => Some((
                Route::Health,
                Ok(json_reply(
                    StatusCode::OK,
                    Bytes::from_static(b"{\"status\":\"ok\"}"),
                )),
            )),
            (&Method::GET, ["v1", "ready"]) => Some((Route::Ready, self.ready())),
            (&Method::GET, ["metrics"]) => Some((Route::Metrics, Ok(self.render_metrics()))),
            (&Method::GET, ["openapi.json"]) => Some((
                Route::OpenApi,
                Ok(json_reply(StatusCode::OK, self.openapi.clone())),
            )),
            (_, ["v1", "admin", rest @ ..]) => {
                let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                let reply = self
                    .admin(head, body, &rest)
                    .await
                    .unwrap_or_else(|p| problem_reply(&p, rid));
                return (Route::Admin, reply, None);
            }
            (_, ["v1", "health" | "ready"] | ["metrics"] | ["openapi.json"]) => {
                Some((Route::Unknown, Err(method_not_allowed("GET"))))
            }
            _ => None,
        };
        if let Some((route, result)) = open {
            return (
                route,
                result.unwrap_or_else(|p| problem_reply(&p, rid)),
                None,
            );
        }
        if segments.first() != Some(&"v1") {
            let p = Problem::new(
                Code::NotFound,
                format!(
                    "no route for {path}; the API lives under /v1 (see the README's API summary)"
                ),
            );
            return (Route::Unknown, problem_reply(&p, rid), None);
        }

        let principal = match self.authenticate(head) {
            Ok(p) => p,
            Err(p) => return (Route::Unknown, problem_reply(&p, rid), None),
        };
        let tenants = self.tenants.load();
        let Some(tenant) = tenants.get(principal.tenant).cloned() else {
            let p = Problem::new(Code::Unauthorized, "this key's tenant no longer exists");
            return (Route::Unknown, problem_reply(&p, rid), None);
        };
        let rate = tenant.check();
        if !rate.allowed {
            let p = Problem::new(
                Code::RateLimited,
                format!(
                    "this tenant is limited to {} requests/s (burst {}); retry after {} s",
                    tenant.rate_per_second, tenant.rate_burst, rate.reset_s
                ),
            )
            .retry_after(rate.reset_s.max(1));
            return (Route::Unknown, problem_reply(&p, rid), Some(rate));
        }

        let (route, result) = match (method, segments) {
            (&Method::POST, ["v1", "events"]) => (
                Route::Ingest,
                self.ingest(head, body, principal, &tenant).await,
            ),
            (&Method::POST, ["v1", "events", "batch"]) => (
                Route::IngestBatch,
                self.ingest_batch(head, body, principal, &tenant).await,
            ),
            (&Method::GET, ["v1", "inbox"]) => (Route::Inbox, self.inbox(head, principal).await),
            (&Method::POST, ["v1", "inbox", "ack"]) => {
                (Route::InboxAck, self.inbox_ack(head, body, principal).await)
            }
            (&Method::GET, ["v1", "events", id]) => {
                (Route::EventGet, self.get_event(id, principal).await)
            }
            (&Method::POST, ["v1", "events", id, "ack"]) => (
                Route::EventAck,
                self.settle_one(id, principal, Settle::Ack).await,
            ),
            (&Method::DELETE, ["v1", "events", id]) => (
                Route::EventDelete,
                self.settle_one(id, principal, Settle::Delete).await,
            ),
            (_, ["v1", "events"] | ["v1", "events", "batch"] | ["v1", "inbox", "ack"]) => {
                (Route::Unknown, Err(method_not_allowed("POST")))
            }
            (_, ["v1", "inbox"]) => (Route::Unknown, Err(method_not_allowed("GET"))),
            (_, ["v1", "events", _]) => (Route::Unknown, Err(method_not_allowed("GET, DELETE"))),
            (_, ["v1", "events", _, "ack"]) => (Route::Unknown, Err(method_not_allowed("POST"))),
            _ => (
                Route::Unknown,
                Err(Problem::new(
                    Code::NotFound,
                    format!("no route for {method} {path}; see /openapi.json"),
                )),
            ),
        };
        (
            route,
            result.unwrap_or_else(|p| problem_reply(&p, rid)),
            Some(rate),
        )
    }

    fn authenticate(&self, head: &Parts) -> Result<Principal, Problem> {
        let headers = &head.headers;
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .or_else(|| headers.get(&X_API_KEY).map(HeaderValue::as_bytes))
            .ok_or_else(|| {
                Problem::new(
                    Code::Unauthorized,
                    "send your API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                )
            })?;
        self.keys
            .load()
            .authenticate(presented)
            .ok_or_else(|| Problem::new(Code::Unauthorized, "this API key is unknown or revoked"))
    }

    async fn ingest(
        &self,
        head: &Parts,
        body: &mut BodySlot,
        who: Principal,
        tenant: &TenantEntry,
    ) -> Result<Reply, Problem> {
        require(who, Scope::Ingest)?;
        require_json(head, false)?;
        let header_key = head
            .headers
            .get(&IDEMPOTENCY_KEY)
            .map(|v| v.to_str().map(str::to_owned));
        let header_key = match header_key {
            Some(Ok(k)) => Some(k),
            Some(Err(_)) => {
                return Err(Problem::validation(vec![FieldError::new(
                    "Idempotency-Key",
                    "must be visible ASCII",
                )]))
            }
            None => None,
        };
        let limit = tenant.max_payload_bytes + ENVELOPE_BYTES_MAX;
        let body = self.read_body(head, body, limit).await?;
        let event = ingest::parse_event(
            &body,
            &body,
            who.tenant,
            header_key.as_deref(),
            tenant.max_payload_bytes,
            ingest::ItemPath::Body,
        )?;
        let outcome = self
            .store
            .append(vec![event])
            .await
            .map_err(store_problem)?;
        match outcome.first() {
            Some(AppendOutcome::Created { id, received_at }) => {
                self.metrics.events(1, 0);
                Ok(json_reply(StatusCode::CREATED, receipt(*id, *received_at)))
            }
            Some(AppendOutcome::Replayed { id, received_at }) => {
                self.metrics.events(0, 1);
                let mut reply = json_reply(StatusCode::OK, receipt(*id, *received_at));
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

    async fn ingest_batch(
        &self,
        head: &Parts,
        body: &mut BodySlot,
        who: Principal,
        tenant: &TenantEntry,
    ) -> Result<Reply, Problem> {
        require(who, Scope::Ingest)?;
        let ndjson = require_json(head, true)?;
        let body = self
            .read_body(head, body, self.config.limits.max_batch_bytes)
            .await?;
        let parsed = ingest::parse_batch(&body, ndjson, who.tenant, tenant.max_payload_bytes)?;
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
        self.metrics.batch(items as u64);
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
        let mut outcomes = self
            .store
            .append(valid)
            .await
            .map_err(store_problem)?
            .into_iter();
        for slot in results.iter_mut().filter(|r| r.is_ok()) {
            match outcomes.next() {
                Some(o) => *slot = Ok(o),
                None => {
                    *slot = Err(Problem::new(
                        Code::Internal,
                        "the store returned too few outcomes",
                    ))
                }
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
        self.metrics.events(created, replayed);
        let status = if failed == 0 {
            StatusCode::CREATED
        } else {
            StatusCode::MULTI_STATUS
        };
        Ok(json_reply(status, w.finish()))
    }

    async fn inbox(&self, head: &Parts, who: Principal) -> Result<Reply, Problem> {
        require(who, Scope::Consume)?;
        let mut query = InboxQuery {
            tenant: who.tenant,
            limit: 100,
            after: None,
            event_type: None,
            lease_ms: None,
        };
        let mut errors = Vec::new();
        for (k, v) in form_urlencoded::parse(head.uri.query().unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "limit" => match v.parse::<usize>() {
                    Ok(n) if (1..=1000).contains(&n) => query.limit = n,
                    _ => errors.push(FieldError::new(
                        "limit",
                        "must be an integer from 1 to 1000",
                    )),
                },
                "cursor" if v.is_empty() => {}
                "cursor" => {
                    query.after = Some(self.cursors.decode(Listing::Inbox, who.tenant, &v)?)
                }
                "event_type" if v.is_empty() => {}
                "event_type" if ingest::valid_event_type(&v) => {
                    query.event_type = Some(v.into_owned())
                }
                "event_type" => errors.push(FieldError::new(
                    "event_type",
                    "must be 1 to 256 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'",
                )),
                "lease_seconds" => match v.parse::<u64>() {
                    Ok(s) if (1..=LEASE_SECONDS_MAX).contains(&s) => {
                        query.lease_ms = Some(s * 1000)
                    }
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
        let page = self.store.list(query).await.map_err(store_problem)?;
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
                &self.cursors.encode(Listing::Inbox, who.tenant, c),
            ),
            None => w.field_null("next_cursor"),
        }
        w.field_bool("has_more", page.has_more);
        w.end_object();
        Ok(json_reply(StatusCode::OK, w.finish()))
    }

    async fn inbox_ack(
        &self,
        head: &Parts,
        body: &mut BodySlot,
        who: Principal,
    ) -> Result<Reply, Problem> {
        require(who, Scope::Consume)?;
        require_json(head, false)?;
        let body = self.read_body(head, body, 1 << 20).await?;
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
        if parsed.event_ids.is_empty() || parsed.event_ids.len() > 1000 {
            return Err(Problem::validation(vec![FieldError::new(
                "event_ids",
                "must hold 1 to 1000 ids",
            )]));
        }
        let ids: Vec<Option<EventId>> =
            parsed.event_ids.iter().map(|s| EventId::parse(s)).collect();
        let valid: Vec<EventId> = ids.iter().flatten().copied().collect();
        let mut outcomes = if valid.is_empty() {
            Vec::new().into_iter()
        } else {
            self.store
                .settle(who.tenant, valid, Settle::Ack)
                .await
                .map_err(store_problem)?
                .into_iter()
        };
        let mut acked = 0;
        let mut w = JsonWriter::with_capacity(64 * ids.len() + 32);
        w.begin_object();
        w.key("results");
        w.begin_array();
        for (text, id) in parsed.event_ids.iter().zip(&ids) {
            let outcome = if id.is_some() {
                outcomes.next().unwrap_or(SettleOutcome::NotFound)
            } else {
                SettleOutcome::NotFound
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
        Ok(json_reply(StatusCode::OK, w.finish()))
    }

    async fn get_event(&self, id: &str, who: Principal) -> Result<Reply, Problem> {
        if !who.scopes.has(Scope::Consume) && !who.scopes.has(Scope::Manage) {
            return Err(Problem::new(
                Code::Forbidden,
                "reading events needs the consume or manage scope",
            ));
        }
        let event = match EventId::parse(id) {
            Some(id) => self
                .store
                .get(who.tenant, id)
                .await
                .map_err(store_problem)?,
            None => None,
        };
        let event = event.ok_or_else(|| not_found_event(id))?;
        let mut w = JsonWriter::with_capacity(event.payload.len() + 320);
        write_event(&mut w, &event);
        Ok(json_reply(StatusCode::OK, w.finish()))
    }

    async fn settle_one(&self, id: &str, who: Principal, how: Settle) -> Result<Reply, Problem> {
        require(who, Scope::Consume)?;
        let parsed = EventId::parse(id).ok_or_else(|| not_found_event(id))?;
        let outcome = self
            .store
            .settle(who.tenant, vec![parsed], how)
            .await
            .map_err(store_problem)?;
        match (how, outcome.first()) {
            (_, None | Some(SettleOutcome::NotFound)) => Err(not_found_event(id)),
            (Settle::Delete, Some(_)) => Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Full::new(Bytes::new()))
                .unwrap_or_default()),
            (Settle::Ack, Some(_)) => {
                let mut w = JsonWriter::with_capacity(96);
                w.begin_object();
                w.field_str("event_id", id);
                w.field_str("status", "acked");
                w.end_object();
                Ok(json_reply(StatusCode::OK, w.finish()))
            }
        }
    }

    fn ready(&self) -> Result<Reply, Problem> {
        let corrupt = self.store.stats().corrupt_segments;
        if corrupt > 0 {
            return Err(Problem::new(
                Code::StorageUnavailable,
                format!("{corrupt} log segment(s) failed verification; see the server log, then run `sluice check`"),
            ));
        }
        if self.store.is_writable() {
            Ok(json_reply(
                StatusCode::OK,
                Bytes::from_static(b"{\"status\":\"ready\"}"),
            ))
        } else {
            Err(Problem::new(
                Code::StorageUnavailable,
                "storage is not writable; see the server log",
            )
            .retry_after(5))
        }
    }

    fn render_metrics(&self) -> Reply {
        let catalog = self.store.catalog();
        let pending: Vec<(String, u64)> = catalog
            .tenants
            .iter()
            .map(|t| (t.name.clone(), self.store.pending_count(t.id)))
            .collect();
        let text = self.metrics.render(&self.store.stats(), &pending);
        let mut reply = Response::new(Full::new(Bytes::from(text)));
        reply.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        reply
    }

    async fn admin(
        &self,
        head: &Parts,
        body: &mut BodySlot,
        rest: &[String],
    ) -> Result<Reply, Problem> {
        let Some(token) = &self.config.admin_token else {
            return Err(Problem::new(
                Code::Unauthorized,
                "the admin API is disabled; start the server with --admin-token",
            ));
        };
        let presented = head
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        let ok = presented
            .is_some_and(|p| bool::from(subtle::ConstantTimeEq::ct_eq(p, token.as_bytes())));
        if !ok {
            return Err(Problem::new(
                Code::Unauthorized,
                "send the admin token as `Authorization: Bearer <token>`",
            ));
        }
        let method = &head.method;
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        let result = match (method, rest.as_slice()) {
            (&Method::GET, ["tenants"]) => Ok(crate::admin::list_tenants(&self.store.catalog())),
            (&Method::POST, ["tenants"]) => {
                let body = self.read_admin_body(head, body).await?;
                crate::admin::create_tenant(&*self.store, &body).await
            }
            (&Method::PATCH, ["tenants", name]) => {
                let body = self.read_admin_body(head, body).await?;
                crate::admin::set_limits(&*self.store, name, &body).await
            }
            (&Method::GET, ["tenants", name, "keys"]) => {
                crate::admin::list_keys(&self.store.catalog(), name)
            }
            (&Method::POST, ["tenants", name, "keys"]) => {
                let body = self.read_admin_body(head, body).await?;
                crate::admin::create_key(&*self.store, name, &body).await
            }
            (&Method::DELETE, ["keys", key_id]) => {
                crate::admin::revoke_key(&*self.store, key_id).await
            }
            _ => Err(Problem::new(
                Code::NotFound,
                "no such admin route: tenants, tenants/{name}, tenants/{name}/keys, keys/{key_id}",
            )),
        };
        if method != Method::GET && result.is_ok() {
            self.refresh_catalog();
        }
        result
    }

    async fn read_admin_body(&self, head: &Parts, body: &mut BodySlot) -> Result<Bytes, Problem> {
        if head.headers.get(CONTENT_LENGTH).is_some_and(|v| v != "0")
            || head.headers.contains_key(CONTENT_TYPE)
        {
            require_json(head, false)?;
        }
        self.read_body(head, body, 64 << 10).await
    }

    /// Takes the body out of `slot` and reads it whole, up to `limit` bytes. An over-limit
    /// body is refused with its unread part left in `slot`, for [`drain_unread`]; one that
    /// sends nothing for `body_read_timeout` is refused with a 408 (and its connection
    /// closed).
    async fn read_body(
        &self,
        head: &Parts,
        slot: &mut BodySlot,
        limit: usize,
    ) -> Result<Bytes, Problem> {
        let too_large = || {
            Problem::new(
                Code::PayloadTooLarge,
                format!("the request body exceeds this tenant's limit of {limit} bytes"),
            )
        };
        let declared = declared_length(head);
        if declared.is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        let Some(mut body) = slot.take() else {
            return Ok(Bytes::new());
        };
        // A body that arrives as one frame (most do: hyper hands over what one read
        // brought) is returned as that frame, without a copy; only a body in several frames
        // is joined, into a buffer sized from Content-Length.
        let mut first: Option<Bytes> = None;
        let mut joined: Option<BytesMut> = None;
        let mut total = 0usize;
        let stall = self.config.body_read_timeout;
        while let Some(frame) = next_frame(&mut body, stall).await? {
            let frame = frame.map_err(|e| {
                Problem::new(
                    Code::MalformedJson,
                    format!("could not read the request body: {e}"),
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers: nothing of the event
            };
            total += data.len();
            if total > limit {
                *slot = Some(body);
                return Err(too_large());
            }
            if let Some(buf) = joined.as_mut() {
                buf.extend_from_slice(&data);
            } else if let Some(earlier) = first.take() {
                let mut buf = BytesMut::with_capacity(declared.unwrap_or(total).max(total));
                buf.extend_from_slice(&earlier);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            } else {
                first = Some(data);
            }
        }
        Ok(joined.map_or_else(|| first.unwrap_or_default(), BytesMut::freeze))
    }
}

fn require(who: Principal, scope: Scope) -> Result<(), Problem> {
    if who.scopes.has(scope) {
        Ok(())
    } else {
        Err(Problem::new(
            Code::Forbidden,
            format!("this API key lacks the `{}` scope", scope.as_str()),
        ))
    }
}

/// Checks the content type; returns whether the body is NDJSON.
fn require_json(head: &Parts, allow_ndjson: bool) -> Result<bool, Problem> {
    let ct = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    // Media types are case-insensitive; compared in place, not lowercased into a copy.
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(false)
    } else if allow_ndjson && mime.eq_ignore_ascii_case("application/x-ndjson") {
        Ok(true)
    } else {
        let accepted = if allow_ndjson {
            "application/json or application/x-ndjson"
        } else {
            "application/json"
        };
        Err(Problem::new(
            Code::UnsupportedMediaType,
            format!("send Content-Type: {accepted} (got {ct:?})"),
        ))
    }
}

fn declared_length(head: &Parts) -> Option<usize> {
    head.headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads and discards a body that was refused unread, so that the answer is not lost to
/// a reset and the connection can carry the next request.
///
/// Closing a socket with unread data in it makes the kernel send a reset, which can
/// destroy the answer before the client reads it; and over HTTP/1.1 hyper closes a
/// connection whose request body was not read to the end, without saying so, so a
/// client that reuses it gets a broken pipe on its next request (`tests/random_requests.rs`
/// found this: a 404 to a `GET` with a body, then the next request failed). nginx's
/// lingering close does the same. Returns false when the body is larger than
/// [`REFUSED_BODY_DRAIN_MAX`], breaks off or stalls: the answer must then close the
/// connection.
async fn drain_unread(mut body: Incoming, head: &Parts, stall: Duration) -> bool {
    if body.is_end_stream() {
        return true;
    }
    if declared_length(head).is_some_and(|len| len > REFUSED_BODY_DRAIN_MAX) {
        return false;
    }
    let mut drained = 0usize;
    loop {
        match next_frame(&mut body, stall).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                drained += frame.data_ref().map_or(0, Bytes::len);
                if drained > REFUSED_BODY_DRAIN_MAX {
                    return false;
                }
            }
            // Broken off, or stalled: not worth waiting for.
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// The body's next frame, or a 408 when nothing arrives for `stall`. The timer costs
/// nothing when the frame is already there (most single-event bodies): `timeout` polls
/// the body first and registers its deadline only if it has to wait.
async fn next_frame(
    body: &mut Incoming,
    stall: Duration,
) -> Result<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>, Problem> {
    tokio::time::timeout(stall, body.frame())
        .await
        .map_err(|_| {
            Problem::new(
                Code::RequestTimeout,
                format!(
                    "the request body stalled: nothing arrived for {} ms",
                    stall.as_millis()
                ),
            )
        })
}

fn method_not_allowed(allow: &'static str) -> Problem {
    Problem {
        allow: Some(allow),
        ..Problem::new(
            Code::MethodNotAllowed,
            format!("this route accepts {allow}"),
        )
    }
}

fn not_found_event(id: &str) -> Problem {
    Problem::new(Code::NotFound, format!("no event {id} for this tenant"))
}

fn key_reused(id: EventId) -> Problem {
    Problem::new(
        Code::IdempotencyKeyReused,
        format!("this idempotency key was already used with a different body (event {id}); use a new key for a new event"),
    )
}

/// Maps storage failures to what a client can act on.
fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::Overloaded => {
            Problem::new(Code::Overloaded, "the server is at capacity; retry shortly")
                .retry_after(1)
        }
        StoreError::DiskFull { .. } => Problem::new(
            Code::StorageFull,
            "the server's disk is full; nothing was stored",
        )
        .retry_after(30),
        StoreError::Halted | StoreError::SyncFailed { .. } | StoreError::Closed => {
            tracing::error!(error = %e, "storage unavailable");
            Problem::new(
                Code::StorageUnavailable,
                "storage is unavailable; nothing was stored",
            )
            .retry_after(5)
        }
        other => {
            tracing::error!(error = %other, "storage error");
            Problem::new(
                Code::Internal,
                "an internal storage error occurred; nothing was stored",
            )
        }
    }
}

/// A JSON response with a status.
pub(crate) fn json_reply(status: StatusCode, body: Bytes) -> Reply {
    let mut reply = Response::new(Full::new(body));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, JSON);
    reply
}

/// Renders a problem as a response.
pub fn problem_reply(p: &Problem, request_id: &str) -> Reply {
    let mut reply = Response::new(Full::new(p.body(request_id)));
    *reply.status_mut() = p.code.status();
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, PROBLEM_JSON);
    if let Some(s) = p.retry_after_s {
        headers.insert(RETRY_AFTER, HeaderValue::from(s));
    }
    if let Some(allow) = p.allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    reply
}

/// The length of a receipt whose timestamp has a four-digit year. Sized exactly, the
/// writer's buffer becomes the response body without the extra allocation that
/// `Bytes` makes for a buffer with spare capacity; any other length still works.
const RECEIPT_LEN: usize = 106;

fn receipt(id: EventId, received_at: i64) -> Bytes {
    let mut w = JsonWriter::with_capacity(RECEIPT_LEN);
    w.begin_object();
    write_receipt(&mut w, id, received_at);
    w.end_object();
    w.finish()
}

fn write_receipt(w: &mut JsonWriter, id: EventId, received_at: i64) {
    let mut buf = [0u8; 30];
    w.field_token("event_id", id.encode(&mut buf));
    w.field_str("status", "received");
    w.field_timestamp("received_at", received_at);
}

/// One batch item's result: `status` is the HTTP status the item would have had alone.
fn write_item(w: &mut JsonWriter, status: u64, id: EventId, received_at: i64) {
    let mut buf = [0u8; 30];
    w.field_u64("status", status);
    w.field_token("event_id", id.encode(&mut buf));
    w.field_timestamp("received_at", received_at);
}

fn write_event(w: &mut JsonWriter, e: &StoredEvent) {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let mut buf = [0u8; 30];
    w.begin_object();
    w.field_token("event_id", e.id.encode(&mut buf));
    w.field_str("event_type", &text(&e.event_type));
    w.field_opt_str("source", e.source.as_ref().map(text).as_deref());
    w.key("payload");
    w.raw(&e.payload);
    w.field_timestamp("received_at", e.received_at);
    w.field_opt_str("occurred_at", e.occurred_at.as_ref().map(text).as_deref());
    w.field_u64("delivery_count", e.delivery_count as u64);
    let (state, lease) = match e.state {
        EventState::Pending => ("pending", None),
        EventState::Leased { until } => ("leased", Some(until)),
        EventState::Acked => ("acked", None),
    };
    w.field_str("state", state);
    w.field_opt_str("lease_expires_at", lease.map(rfc3339_ms).as_deref());
    w.end_object();
}

/// A header value holding a decimal number. `HeaderValue::from(u64)` allocates twice
/// (a growable buffer, then shared bytes for it); this allocates once, exactly sized.
fn decimal_header(n: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    // Decimal digits are visible ASCII, so this cannot fail.
    HeaderValue::from_str(digits.format(n)).unwrap_or(HeaderValue::from_static("0"))
}

/// `req_<6 hex>` + a 10-hex-digit counter, formatted on the stack (one allocation: the
/// header value itself).
fn request_id(prefix: &str, n: u64) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    let p = prefix.len().min(buf.len() - 10);
    buf[..p].copy_from_slice(&prefix.as_bytes()[..p]);
    for i in 0..10 {
        buf[p + i] = HEX[((n >> (4 * (9 - i))) & 15) as usize];
    }
    // Prefix and digits are visible ASCII, so this cannot fail.
    HeaderValue::from_bytes(&buf[..p + 10]).unwrap_or(HeaderValue::from_static("req_invalid"))
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_store::Sequence;

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

    #[test]
    fn decimal_headers_match_the_http_crate() {
        for n in [0, 7, 42, 1_000, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(decimal_header(n), HeaderValue::from(n));
        }
    }
}
