//! The request path: one entry ([`App::handle`]) that names the request, routes it,
//! establishes its caller, runs its handler and finishes its answer.
//!
//! The ingest routes are the hot path and must not pay for a framework's extraction
//! layers (measured: axum's POST path cost ~25 % against plain hyper on this machine
//! class), so every route is served on hyper directly, from the route table
//! ([`crate::routes`]), with one shape: handlers take the [`App`] and a [`Cx`] and
//! return `Result<Reply, Problem>`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION};
use http::request::Parts;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use sluice_push::Dispatcher;
use sluice_store::{Catalog, Store, TenantId};

use crate::access::{self, Access};
use crate::auth::{KeyCache, Principal};
use crate::body::{self, BodySlot};
use crate::config::ServerConfig;
use crate::cursor::CursorKey;
use crate::known::{KnownHeaders, X_REQUEST_ID};
use crate::metrics::Metrics;
use crate::problem::{Code, Problem};
use crate::reply::{self, decimal_header, Reply};
use crate::router::Router;
use crate::routes::{self, RouteId, ROUTES};
use crate::tenants::{RateDecision, TenantEntry, TenantTable};

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Everything the request path shares: read-mostly, behind cheap clones.
pub struct App<S> {
    pub(crate) store: Arc<S>,
    pub(crate) config: ServerConfig,
    keys: ArcSwap<KeyCache>,
    tenants: ArcSwap<TenantTable>,
    /// The catalog `keys` and `tenants` were built from.
    built_from: ArcSwap<Catalog>,
    /// Held while `keys`, `tenants` and `built_from` are rebuilt (rare: on catalog
    /// changes), so that they always come from one catalog, the newest of the rebuilds.
    rebuilding: parking_lot::Mutex<()>,
    pub(crate) metrics: Metrics,
    router: Router,
    request_seq: AtomicU64,
    request_prefix: String,
    /// `/openapi.json`, rendered once at start.
    pub(crate) openapi: Bytes,
    /// Signs and checks page cursors.
    pub(crate) cursors: CursorKey,
    /// The webhook dispatcher (started by whoever serves, with [`App::push`]).
    pub(crate) push: Arc<Dispatcher<S>>,
}

/// Who is calling, once the route's access checked out.
pub(crate) enum Caller {
    /// An open route: nobody in particular.
    Anonymous,
    /// An API key, with its tenant's limits.
    Key {
        who: Principal,
        tenant: Arc<TenantEntry>,
    },
    /// The admin token.
    Admin,
}

/// One request as its handler sees it.
pub(crate) struct Cx<'r> {
    pub(crate) head: &'r Parts,
    /// The request headers the server reads, found once (see [`crate::known`]).
    pub(crate) known: &'r KnownHeaders<'r>,
    /// The body, until a handler takes it (see [`body::read`]).
    pub(crate) body: &'r mut BodySlot,
    params: &'r matchit::Params<'r, 'r>,
    caller: Caller,
}

impl Cx<'_> {
    /// A `{name}` segment of the route's path. Every name a handler asks for is in its
    /// route's pattern, so the empty fallback is never seen by a client.
    pub(crate) fn param(&self, name: &str) -> &str {
        self.params.get(name).unwrap_or("")
    }

    /// The key's principal and tenant. Only handlers of [`Access::Key`] routes ask, and
    /// the route table sees to it that those always have one.
    pub(crate) fn key(&self) -> Result<(Principal, &TenantEntry), Problem> {
        match &self.caller {
            Caller::Key { who, tenant } => Ok((*who, tenant)),
            _ => Err(Problem::new(
                Code::Internal,
                "a keyed handler ran without a key; this is a bug",
            )),
        }
    }

    /// The key's principal (see [`Cx::key`]).
    pub(crate) fn who(&self) -> Result<Principal, Problem> {
        self.key().map(|(who, _)| who)
    }
}

impl<S: Store> App<S> {
    /// A problem's reply, counted by its code (`sluice_http_problems_total`).
    fn refusal(&self, p: &Problem, rid: &str) -> Reply {
        self.metrics.problem(p.code);
        reply::problem(p, rid)
    }

    /// Builds the app over a store.
    pub fn new(store: Arc<S>, config: ServerConfig) -> Arc<Self> {
        let catalog = store.catalog().borrow().clone();
        let app = App {
            keys: ArcSwap::from_pointee(KeyCache::build(&catalog)),
            tenants: ArcSwap::from_pointee(TenantTable::build(&catalog, &config.limits, None)),
            built_from: ArcSwap::new(catalog.clone()),
            rebuilding: parking_lot::Mutex::new(()),
            cursors: CursorKey::new(catalog.token_secret.as_bytes()),
            push: Dispatcher::new(store.clone(), config.push.clone()),
            store,
            config,
            metrics: Metrics::default(),
            router: Router::new(),
            request_seq: AtomicU64::new(0),
            request_prefix: format!("req_{:06x}", rand::random::<u32>() & 0xFF_FFFF),
            openapi: crate::openapi::document(),
        };
        Arc::new(app)
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The webhook dispatcher: run it beside the server (`Dispatcher::run`), and stop
    /// it at shutdown before the store's final sync (`Dispatcher::stop`).
    pub fn push(&self) -> &Arc<Dispatcher<S>> {
        &self.push
    }

    /// The metrics, for the connection layer.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Rebuilds the key cache and tenant table from the store's current catalog: after
    /// this node changed it (so the change is in effect before the answer goes out),
    /// and whenever the catalog watch reports a change made elsewhere.
    pub fn refresh_catalog(&self) {
        // One rebuild at a time, each from the catalog current when it holds the lock:
        // two unordered rebuilds could leave the keys from an older catalog under a
        // newer `built_from`, and [`App::authenticate_synced`] would then trust them.
        let _rebuilding = self.rebuilding.lock();
        let catalog = self.store.catalog().borrow().clone();
        // Requests that queued here for one change find it built by the first.
        if Arc::ptr_eq(&catalog, &self.built_from.load()) {
            return;
        }
        // Tenants before keys, keys before `built_from`: a request that finds a key
        // finds its tenant, and one that finds `built_from` current finds current keys.
        let previous = self.tenants.load();
        self.tenants.store(Arc::new(TenantTable::build(
            &catalog,
            &self.config.limits,
            Some(&previous),
        )));
        self.keys.store(Arc::new(KeyCache::build(&catalog)));
        self.built_from.store(catalog);
    }

    /// Authenticates again after bringing the catalog up to the cluster's newest: a
    /// key refused by this node's cache may have been created through another node a
    /// moment ago. `Ok(None)` when it is still unknown; `Err` (503) when the cluster
    /// could not be asked, since the key may exist.
    async fn authenticate_synced(
        &self,
        head: &KnownHeaders<'_>,
    ) -> Result<Option<Principal>, Problem> {
        // Only a key of the shape Sluice issues can have been made elsewhere: other
        // strings are refused without asking the cluster.
        if !access::presented_key(head).is_some_and(crate::auth::is_key_shaped) {
            return Ok(None);
        }
        let current = self.catalog_synced().await?;
        // The caches follow the store's catalog from a task of their own, which may
        // have rebuilt them since the caller's check failed: the key is judged again
        // on the caches as they are now. They are rebuilt here only when they are
        // behind the store, so a flood of unknown keys rebuilds nothing.
        if !Arc::ptr_eq(&current, &self.built_from.load()) {
            self.refresh_catalog();
        }
        Ok(access::authenticate(head, &self.keys.load()).ok())
    }

    /// The catalog, first brought up to the newest the cluster holds: for the
    /// management reads (lists), which through a load balancer must show what was made
    /// through another node a moment ago. One bucket read on JetStream, shared by
    /// concurrent callers; nothing on the embedded store.
    pub(crate) async fn catalog_synced(&self) -> Result<Arc<Catalog>, Problem> {
        self.store
            .catalog_sync()
            .await
            .map_err(crate::handlers::store_problem)?;
        Ok(self.store.catalog().borrow().clone())
    }

    /// Finds something in this node's catalog; a miss is looked for once more in the
    /// cluster's newest before it is believed (a consumer, subscription or tenant made
    /// through another node a moment ago). Found things cost no round trip. When the
    /// cluster cannot be asked, the miss is a 503: the thing may exist.
    pub(crate) async fn find_in_catalog<T>(
        &self,
        find: impl Fn(&Catalog) -> Option<T>,
    ) -> Result<Option<T>, Problem> {
        if let Some(found) = find(&self.store.catalog().borrow()) {
            return Ok(Some(found));
        }
        Ok(find(&*self.catalog_synced().await?))
    }

    /// Follows the catalog watch until the store closes it, refreshing the caches on
    /// every change (a key created on another node works here at once).
    pub async fn follow_catalog(self: Arc<Self>) {
        let mut watch = self.store.catalog();
        while watch.changed().await.is_ok() {
            self.refresh_catalog();
        }
    }

    /// Serves one request. Never fails: every error becomes a problem response.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Reply, Infallible> {
        let started = Instant::now();
        let (head, body) = req.into_parts();
        let known = KnownHeaders::scan(&head.headers);
        let mut body = Some(body);
        let request_id = match known.x_request_id.filter(|v| valid_request_id(v)) {
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
        let (route, mut reply, rate, tenant) =
            self.respond(&head, &known, &mut body, &request_id).await;
        // A stalled body (408) is abandoned, not drained; one that no handler read is
        // drained if it can be.
        let mut close = reply.status() == StatusCode::REQUEST_TIMEOUT;
        if let Some(unread) = body.take() {
            // Boxed: only refusals that left their body unread come here.
            let drained = Box::pin(body::drain_unread(
                unread,
                &known,
                self.config.body_read_timeout,
            ));
            close |= !drained.await;
        }
        if close {
            reply
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let headers = reply.headers_mut();
        self.config.cors.decorate(known.origin, headers);
        headers.insert(X_REQUEST_ID.clone(), request_id);
        if let Some(rate) = rate {
            headers.insert(RATELIMIT_LIMIT.clone(), rate.limit);
            headers.insert(RATELIMIT_POLICY.clone(), rate.policy);
            headers.insert(RATELIMIT_REMAINING.clone(), rate.remaining_header);
            headers.insert(RATELIMIT_RESET.clone(), decimal_header(rate.reset_s));
        }
        let status = reply.status().as_u16();
        let elapsed_us = started.elapsed().as_micros() as u64;
        self.metrics.observe(route, status, elapsed_us);
        if let Some((method, path)) = logged {
            let route = route.map_or("unmatched", |r| ROUTES[r as usize].path);
            tracing::info!(
                request_id = request_id_text(&reply),
                tenant = tenant.map_or(0, |t| t.0),
                %method,
                route,
                %path,
                status,
                elapsed_us,
                "request (sampled)"
            );
        }
        Ok(reply)
    }

    /// Routes the request, checks its caller and runs its handler. Returns the route
    /// (for metrics), the answer and the rate decision (for the `RateLimit` headers).
    async fn respond(
        &self,
        head: &Parts,
        known: &KnownHeaders<'_>,
        body: &mut BodySlot,
        request_id: &HeaderValue,
    ) -> (
        Option<RouteId>,
        Reply,
        Option<RateDecision>,
        Option<TenantId>,
    ) {
        let rid = request_id.to_str().unwrap_or("");
        // A CORS preflight carries no credentials: answered before authentication.
        if let Some(r) = self
            .config
            .cors
            .preflight(head, known.origin, || self.router.allow(head.uri.path()))
        {
            return (None, r, None, None);
        }
        let matched = match self.router.route(&head.method, head.uri.path()) {
            Ok(m) => m,
            Err(p) => return (None, self.refusal(&p, rid), None, None),
        };
        let route = matched.route;
        let refuse = |p: Problem, rate| (Some(route.id), self.refusal(&p, rid), rate, None);
        let mut rate = None;
        let caller = match route.access {
            Access::Open => Caller::Anonymous,
            Access::Admin => match access::admin(known, self.config.admin_token.as_deref()) {
                Ok(()) => Caller::Admin,
                Err(p) => return refuse(p, None),
            },
            Access::Key(scopes) => {
                let who = match access::authenticate(known, &self.keys.load()) {
                    Ok(who) => who,
                    // Boxed: this future (a catalog read from the cluster) is far larger
                    // than the rest of the request's, and only unknown keys need it.
                    Err(p) => match Box::pin(self.authenticate_synced(known)).await {
                        Ok(Some(who)) => who,
                        Ok(None) => return refuse(p, None),
                        Err(unsure) => return refuse(unsure, None),
                    },
                };
                let tenants = self.tenants.load();
                let Some(tenant) = tenants.get(who.tenant).cloned() else {
                    let p = Problem::unauthorized("this key's tenant no longer exists");
                    return refuse(p, None);
                };
                let decision = tenant.check();
                if !decision.allowed {
                    let p = Problem::new(
                        Code::RateLimited,
                        format!(
                            "this tenant is limited to {} requests/s (burst {}); retry after {} s",
                            tenant.rate_per_second, tenant.rate_burst, decision.reset_s
                        ),
                    )
                    .retry_after(decision.reset_s.max(1));
                    return refuse(p, Some(decision));
                }
                rate = Some(decision);
                if let Err(p) = access::require(who, scopes) {
                    return refuse(p, rate);
                }
                Caller::Key { who, tenant }
            }
        };
        let tenant = match &caller {
            Caller::Key { who, .. } => Some(who.tenant),
            _ => None,
        };
        let mut cx = Cx {
            head,
            known,
            body,
            params: &matched.params,
            caller,
        };
        let reply = match routes::dispatch(route.id, self, &mut cx).await {
            Ok(reply) => reply,
            Err(p) => self.refusal(&p, rid),
        };
        (Some(route.id), reply, rate, tenant)
    }
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
    match HeaderValue::from_bytes(&buf[..p + 10]) {
        Ok(v) => v,
        // The prefix is `req_` and hex digits, the counter hex digits: visible ASCII.
        Err(_) => unreachable!("a request id is visible ASCII"),
    }
}

/// The `X-Request-Id` a reply carries, for the access log.
fn request_id_text(reply: &Reply) -> &str {
    reply
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use http::header::AUTHORIZATION;
    use http::HeaderMap;
    use sluice_store::embedded::{EmbeddedConfig, EmbeddedStore};
    use sluice_store::{now_ms, CatalogOps, Scope, TenantLimits};

    use super::*;
    use crate::auth::generate_key;

    /// The race CI met on two JetStream nodes: a request is refused by the caches it
    /// loaded, and before it asks again the catalog task has already rebuilt them
    /// with its key. The second look must use the caches as they are now, not give up
    /// because they are no longer behind the store.
    #[tokio::test]
    async fn a_key_the_caches_learned_after_the_first_look_is_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("open"));
        let app = App::new(store.clone(), ServerConfig::new(([127, 0, 0, 1], 0).into()));
        let tenant = store
            .create_tenant("acme", TenantLimits::default())
            .await
            .expect("tenant");
        let key = generate_key(tenant.id, vec![Scope::Ingest], now_ms());
        store.add_key(key.record).await.expect("key");

        let mut headers = HeaderMap::new();
        let bearer = format!("Bearer {}", key.secret);
        headers.insert(AUTHORIZATION, bearer.parse().expect("header"));
        let known = KnownHeaders::scan(&headers);
        // The request's first look: the caches predate the key.
        assert!(access::authenticate(&known, &app.keys.load()).is_err());
        // Meanwhile the catalog task catches up.
        app.refresh_catalog();

        let who = app
            .authenticate_synced(&known)
            .await
            .expect("asked")
            .expect("accepted");
        assert_eq!(who.tenant, tenant.id);

        // A key nobody stored is still refused, and refusing it rebuilds nothing.
        let built = app.built_from.load_full();
        let never = generate_key(tenant.id, vec![Scope::Ingest], now_ms()).secret;
        for presented in [never.as_str(), "sk_unknown"] {
            let bearer = format!("Bearer {presented}");
            headers.insert(AUTHORIZATION, bearer.parse().expect("header"));
            let unknown = app.authenticate_synced(&KnownHeaders::scan(&headers)).await;
            assert!(matches!(unknown, Ok(None)), "{presented}");
        }
        assert!(Arc::ptr_eq(&built, &app.built_from.load_full()));
    }
}
