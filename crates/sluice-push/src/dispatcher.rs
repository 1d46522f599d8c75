//! The dispatcher: one worker task per subscription, woken by commits, that takes what
//! is due from the store, sends it, and records how each attempt ended.
//!
//! A worker's loop:
//! 1. while it has room (one delivery with FIFO ordering, `max_in_flight` without) and
//!    its endpoint's breaker lets it, it fetches what is due (`fetch_deliveries`) and
//!    starts one task per delivery;
//! 2. as attempts finish, it decides what becomes of each (delivered, retry at a time,
//!    dead) and records them, in one `settle_deliveries` at a time, so several
//!    finished attempts share one durable write;
//! 3. it sleeps until a commit of its tenant wakes it, the next retry falls due, its
//!    subscription changes, or the breaker reopens.
//!
//! No fetch runs while a settle is out: what the settle frees (a FIFO slot above all)
//! must be seen by the next fetch, and with FIFO the next event must not go out before
//! the previous one's outcome is durable (after a crash, order would break). A slow or
//! hanging endpoint only ever occupies its own worker's slots, each bounded by the
//! webhook timeout, and one global bound on requests in flight; ingest never waits for
//! the dispatcher.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng;
use sluice_store::delivery::{Attempt, AttemptOutcome, Delivery, Next, Settled};
use sluice_store::exposition::Exposition;
use sluice_store::feed::FeedItem;
use sluice_store::{
    CatalogChange, EventId, LogEvent, Ordering, Sequence, Store, StoreError, SubKey, Subscription,
    SubscriptionPatch, SubscriptionStatus, TenantId, UnixMs,
};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use crate::breaker::{BreakerConfig, Breakers, Permit};
use crate::client::{Answer, WebhookClient};
use crate::metrics::{PushMetrics, SubscriptionFigures};
use crate::request;
use crate::schedule::{retry_after, Schedule};
use crate::target::check_url;

/// Webhook requests in flight across every subscription, at most: the dispatcher's
/// memory and socket bound, whatever the number of subscriptions.
pub const DELIVERIES_IN_FLIGHT_MAX: usize = 10_000;

/// How long a worker waits before fetching again after the store refused a fetch.
const FETCH_RETRY: Duration = Duration::from_secs(1);

/// The dispatcher's settings (`webhook_*` in the configuration).
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Lift the SSRF protection (tests, private networks).
    pub allow_private_targets: bool,
    /// The waits before each retry.
    pub retry_schedule: Schedule,
    /// How long an attempt may take, connect to answer. Default 15 s.
    pub timeout: Duration,
    /// A subscription that has had nothing but failures for this long is disabled
    /// (`failing`). Default 5 days.
    pub disable_after: Duration,
    /// The circuit breaker's settings.
    pub breaker: BreakerConfig,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            allow_private_targets: false,
            retry_schedule: Schedule::parse(crate::schedule::DEFAULT_SCHEDULE)
                .unwrap_or_else(|e| unreachable!("the default schedule parses: {e}")),
            timeout: Duration::from_secs(15),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            breaker: BreakerConfig::default(),
        }
    }
}

/// A running worker, as the supervisor holds it.
struct WorkerHandle {
    tenant: TenantId,
    config: watch::Sender<Arc<Subscription>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// The webhook dispatcher over a store; see the module docs.
pub struct Dispatcher<S> {
    store: Arc<S>,
    config: PushConfig,
    client: WebhookClient,
    breakers: Breakers,
    metrics: PushMetrics,
    permits: Arc<Semaphore>,
    workers: Mutex<HashMap<SubKey, WorkerHandle>>,
    /// Each tenant's workers' wake-ups, for the feed reader (read per commit).
    wakes: RwLock<HashMap<TenantId, Vec<Arc<Notify>>>>,
    shutdown: watch::Sender<bool>,
}

fn now_ms() -> UnixMs {
    sluice_store::now_ms()
}

impl<S: Store> Dispatcher<S> {
    /// A dispatcher over `store`; [`Dispatcher::run`] starts it.
    pub fn new(store: Arc<S>, config: PushConfig) -> Arc<Dispatcher<S>> {
        Arc::new(Dispatcher {
            client: WebhookClient::new(config.allow_private_targets, config.timeout),
            breakers: Breakers::new(config.breaker),
            metrics: PushMetrics::default(),
            permits: Arc::new(Semaphore::new(DELIVERIES_IN_FLIGHT_MAX)),
            workers: Mutex::new(HashMap::new()),
            wakes: RwLock::new(HashMap::new()),
            shutdown: watch::Sender::new(false),
            store,
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &PushConfig {
        &self.config
    }

    /// The counters.
    pub fn metrics(&self) -> &PushMetrics {
        &self.metrics
    }

    fn lock_workers(&self) -> std::sync::MutexGuard<'_, HashMap<SubKey, WorkerHandle>> {
        // The map is changed by whole inserts and removes; a panic elsewhere cannot
        // leave it half changed.
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs until [`Dispatcher::stop`]: starts, changes and stops the workers as the
    /// catalog's subscriptions change, and wakes them on commits.
    pub async fn run(self: Arc<Self>) {
        let mut catalog = self.store.catalog();
        let mut shutdown = self.shutdown.subscribe();
        let mut waker: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let current = catalog.borrow_and_update().clone();
            // The feed is read only while a subscription is active: with a reader, every
            // commit builds its announcement, a cost ingest should not pay for nothing.
            // It is subscribed before the workers start, and each worker's first fetch
            // reads the log, so no commit between the two is missed.
            let any = current
                .subscriptions
                .iter()
                .any(|s| s.status == SubscriptionStatus::Active);
            match (&waker, any) {
                (None, true) => match self.store.feed().await {
                    Ok(feed) => waker = Some(tokio::spawn(self.clone().wake_on_commits(feed))),
                    Err(e) => {
                        tracing::error!(error = %e, "webhook dispatcher: no commit feed; deliveries wait for their retry timers")
                    }
                },
                (Some(w), false) => {
                    w.abort();
                    waker = None;
                }
                _ => {}
            }
            self.reconcile(&current.subscriptions);
            tokio::select! {
                changed = catalog.changed() => if changed.is_err() { break },
                () = stopped(&mut shutdown) => break,
            }
        }
        if let Some(w) = waker {
            w.abort();
        }
    }

    /// Makes the workers match the catalog's subscriptions.
    fn reconcile(self: &Arc<Self>, subs: &[Subscription]) {
        let mut workers = self.lock_workers();
        workers.retain(|key, w| {
            let keep = subs.iter().any(|s| s.key == *key);
            if !keep {
                // Dropping the sender tells the worker to finish and stop.
                w.task.abort();
            }
            keep
        });
        for sub in subs {
            match workers.get(&sub.key) {
                Some(w) => {
                    if **w.config.borrow() != *sub {
                        w.config.send_replace(Arc::new(sub.clone()));
                    }
                }
                None => {
                    let (config, rx) = watch::channel(Arc::new(sub.clone()));
                    let wake = Arc::new(Notify::new());
                    let task = tokio::spawn(work(
                        self.clone(),
                        sub.key,
                        rx,
                        wake.clone(),
                        self.shutdown.subscribe(),
                    ));
                    workers.insert(
                        sub.key,
                        WorkerHandle {
                            tenant: sub.tenant,
                            config,
                            wake,
                            task,
                        },
                    );
                }
            }
        }
        let mut by_tenant: HashMap<TenantId, Vec<Arc<Notify>>> = HashMap::new();
        for w in workers.values() {
            by_tenant.entry(w.tenant).or_default().push(w.wake.clone());
        }
        *self.wakes.write().unwrap_or_else(|e| e.into_inner()) = by_tenant;
        drop(workers);
        let origins: Vec<String> = subs
            .iter()
            .filter_map(|s| check_url(&s.target_url, true).ok().map(|t| t.origin()))
            .collect();
        self.breakers.retain(|o| origins.iter().any(|x| x == o));
    }

    /// Wakes the workers of every tenant a commit holds events of; all of them when the
    /// feed lagged (a commit may have been missed).
    async fn wake_on_commits(self: Arc<Self>, mut feed: sluice_store::feed::CommitFeed) {
        loop {
            match feed.next().await {
                FeedItem::Commit(commit) => {
                    let wakes = self.wakes.read().unwrap_or_else(|e| e.into_inner());
                    let mut last = None;
                    for c in commit.iter() {
                        if last == Some(c.tenant) {
                            continue;
                        }
                        last = Some(c.tenant);
                        for w in wakes.get(&c.tenant).into_iter().flatten() {
                            w.notify_one();
                        }
                    }
                }
                FeedItem::Lagged => {
                    let wakes = self.wakes.read().unwrap_or_else(|e| e.into_inner());
                    for w in wakes.values().flatten() {
                        w.notify_one();
                    }
                }
                FeedItem::Closed => return,
            }
        }
    }

    /// Stops fetching, lets the attempts in flight end (each within the timeout) and
    /// records them, then stops every worker.
    pub async fn stop(&self) {
        self.shutdown.send_replace(true);
        let tasks: Vec<_> = self.lock_workers().drain().map(|(_, w)| w.task).collect();
        let grace = self.config.timeout + Duration::from_secs(5);
        for task in tasks {
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!("a webhook worker did not stop in time");
            }
        }
    }

    /// Wakes a subscription's worker (after a replay queued deliveries for it: nothing
    /// was committed that would).
    pub fn wake(&self, key: SubKey) {
        if let Some(w) = self.lock_workers().get(&key) {
            w.wake.notify_one();
        }
    }

    /// Sends one `sluice.test` event to the subscription's endpoint now, outside its
    /// queue, records the attempt in its attempts log, and answers it.
    pub async fn test(&self, sub: &Subscription) -> Result<Attempt, StoreError> {
        let now = now_ms();
        let mut payload = sluice_wire::json::JsonWriter::with_capacity(96);
        payload.begin_object();
        payload.field_bool("test", true);
        payload.field_str("subscription", &sub.id);
        payload.end_object();
        // A test event has no place in the log: sequence 0, which no event has.
        let event = LogEvent {
            id: EventId::new(now, Sequence(0), rand::random()),
            tenant: sub.tenant,
            event_type: Bytes::from_static(b"sluice.test"),
            source: None,
            occurred_at: None,
            received_at: now,
            payload: payload.finish(),
        };
        let answer = self.send(sub, &event, now).await;
        let delivered = answer.delivered();
        self.metrics.attempt(answer.latency.as_micros() as u64);
        let counter = if delivered {
            &self.metrics.delivered
        } else {
            &self.metrics.failed
        };
        counter.fetch_add(1, Relaxed);
        let mut attempt = self.attempt_of(
            &event,
            1,
            now,
            &answer,
            if delivered {
                AttemptOutcome::Delivered
            } else {
                AttemptOutcome::Failed
            },
        );
        let serials = self
            .store
            .settle_deliveries(
                sub.key,
                vec![Settled {
                    seq: None,
                    replay: false,
                    next: Next::Delivered,
                    attempt: attempt.clone(),
                }],
            )
            .await?;
        attempt.serial = serials.first().copied().flatten().unwrap_or(0);
        Ok(attempt)
    }

    /// One request for `event`, signed at `now`.
    async fn send(&self, sub: &Subscription, event: &LogEvent, now: UnixMs) -> Answer {
        match request::Prepared::new(sub, now) {
            Ok(prepared) => self.client.send(prepared.request(event, now)).await,
            Err(e) => unbuildable(&e),
        }
    }

    /// The attempts log's entry for an answer.
    fn attempt_of(
        &self,
        event: &LogEvent,
        attempt: u32,
        started_at: UnixMs,
        answer: &Answer,
        outcome: AttemptOutcome,
    ) -> Attempt {
        let error = match (&answer.error, answer.status) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(s)) if (300..400).contains(&s) => {
                Some(format!("HTTP {s}: redirects are not followed"))
            }
            (None, Some(s)) if !(200..300).contains(&s) => Some(format!("HTTP {s}")),
            _ => None,
        };
        Attempt {
            serial: 0,
            event_id: event.id,
            attempt,
            started_at,
            latency_ms: answer.latency.as_millis().min(u128::from(u32::MAX)) as u32,
            status: answer.status,
            error,
            outcome,
        }
    }

    /// Disables a subscription, for `reason`.
    async fn disable(&self, sub: &Subscription, reason: &str) {
        let change = CatalogChange::UpdateSubscription {
            tenant: sub.tenant,
            id: sub.id.clone(),
            patch: SubscriptionPatch {
                status: Some(SubscriptionStatus::Disabled),
                disabled_reason: Some(reason.to_owned()),
                ..SubscriptionPatch::default()
            },
        };
        match self.store.change_catalog(change).await {
            Ok(_) => {
                let counter = if reason == "gone" {
                    &self.metrics.disabled_gone
                } else {
                    &self.metrics.disabled_failing
                };
                counter.fetch_add(1, Relaxed);
                tracing::warn!(subscription = %sub.id, target = %sub.target_url, reason, "webhook subscription disabled");
            }
            Err(e) => {
                tracing::error!(subscription = %sub.id, error = %e, "could not disable a webhook subscription")
            }
        }
    }

    /// Writes the dispatcher's series (with each subscription's backlog and dead
    /// letters from the store).
    pub async fn write_metrics(&self, out: &mut Exposition) {
        let catalog = self.store.catalog().borrow().clone();
        let mut figures = Vec::with_capacity(catalog.subscriptions.len());
        let mut statuses = [("active", 0), ("paused", 0), ("disabled", 0)];
        for sub in &catalog.subscriptions {
            let slot = match sub.status {
                SubscriptionStatus::Active => 0,
                SubscriptionStatus::Paused => 1,
                SubscriptionStatus::Disabled => 2,
            };
            statuses[slot].1 += 1;
            if let Ok(state) = self.store.delivery_state(sub.key).await {
                figures.push(SubscriptionFigures {
                    id: sub.id.clone(),
                    backlog: state.backlog,
                    dead_letters: state.dead_letters,
                });
            }
        }
        let breakers: Vec<(String, u64)> = self
            .breakers
            .states()
            .into_iter()
            .map(|(o, s)| (o, s.gauge()))
            .collect();
        self.metrics.write(&figures, statuses, &breakers, out);
    }
}

/// Resolves once the dispatcher is told to stop (the guard `wait_for` returns is
/// dropped here, so the waiting future stays `Send`).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The answer for a request that could not be built (a subscription whose URL or
/// headers stopped parsing: creation checks both, so only a bug gets here).
fn unbuildable(e: &dyn std::fmt::Display) -> Answer {
    Answer {
        status: None,
        retry_after: None,
        error: Some(format!("could not build the request: {e}")),
        latency: Duration::ZERO,
    }
}

/// One finished attempt, as its task hands it back.
struct Finished {
    delivery: Delivery,
    answer: Answer,
    started_at: UnixMs,
}

type SettleFuture = Pin<Box<dyn Future<Output = Result<Vec<Option<u64>>, StoreError>> + Send>>;

/// A subscription's worker; see the module docs.
async fn work<S: Store>(
    d: Arc<Dispatcher<S>>,
    key: SubKey,
    mut config: watch::Receiver<Arc<Subscription>>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut attempts: JoinSet<Finished> = JoinSet::new();
    let mut results: Vec<Settled> = Vec::new();
    let mut settling: Option<(SettleFuture, usize)> = None;
    let mut want_fetch = true;
    let mut next_due: Option<Instant> = None;
    let mut stopping = *shutdown.borrow();
    let mut failing_since = match d.store.delivery_state(key).await {
        Ok(state) => state.failing_since,
        Err(_) => None,
    };
    // What a subscription's settings make of every request, and the breaker's key:
    // worked out once per change of the subscription, not once per wake-up.
    let prepare = |sub: &Arc<Subscription>| {
        let p = request::Prepared::new(sub, now_ms()).map_err(|e| e.to_string());
        let origin = check_url(&sub.target_url, true)
            .map(|t| t.origin())
            .unwrap_or_else(|_| sub.target_url.clone());
        (sub.clone(), Arc::new(p), origin)
    };
    let mut prepared = prepare(&config.borrow());
    loop {
        let sub = config.borrow().clone();
        let active = sub.status == SubscriptionStatus::Active && !stopping;
        // Prepared again when the subscription changes or a rotated-out secret expires.
        let fresh = Arc::ptr_eq(&prepared.0, &sub)
            && prepared
                .1
                .as_ref()
                .as_ref()
                .map_or(true, |p| !p.stale(now_ms()));
        if !fresh {
            prepared = prepare(&sub);
        }
        let requests = prepared.1.clone();
        let origin: &str = &prepared.2;
        let cap = match sub.ordering {
            Ordering::Fifo => 1,
            Ordering::None => sub.max_in_flight.max(1) as usize,
        };
        if settling.is_none() && !results.is_empty() {
            let batch = std::mem::take(&mut results);
            let n = batch.len();
            let store = d.store.clone();
            let mut fut: SettleFuture =
                Box::pin(async move { store.settle_deliveries(key, batch).await });
            // Polled once at once: the store applies a settle to its state on the first
            // poll (the rest is waiting for it to be durable), so the fetch below sees
            // the slots it freed. The select below polls it again with a real waker.
            let mut noop = std::task::Context::from_waker(std::task::Waker::noop());
            match fut.as_mut().poll(&mut noop) {
                std::task::Poll::Ready(done) => {
                    if let Err(e) = done {
                        tracing::error!(subscription = %sub.id, error = %e, deliveries = n, "could not record webhook deliveries; they will be sent again after a restart");
                    }
                    want_fetch = true;
                }
                std::task::Poll::Pending => settling = Some((fut, n)),
            }
        }
        // FIFO fetches only once the previous outcome is durable: after a crash, order
        // must not break. Without ordering, the slots a settle freed are used at once.
        let may_fetch = settling.is_none() || sub.ordering == Ordering::None;
        if active && want_fetch && may_fetch {
            want_fetch = false;
            let mut free = cap.saturating_sub(attempts.len() + results.len());
            match d.breakers.permit(origin, Instant::now()) {
                Permit::Flow => {}
                Permit::Probe => free = free.min(usize::from(attempts.is_empty())),
                Permit::HeldUntil(until) => {
                    free = 0;
                    next_due = Some(next_due.map_or(until, |n| n.min(until)));
                }
            }
            if free > 0 {
                match d.store.fetch_deliveries(key, free).await {
                    Ok(fetched) => {
                        if let Some(due) = fetched.next_due_at {
                            let wait = Duration::from_millis((due - now_ms()).max(0) as u64);
                            let at = Instant::now() + wait;
                            next_due = Some(next_due.map_or(at, |n| n.min(at)));
                        }
                        if fetched.deliveries.len() == free {
                            want_fetch = true; // there may be more
                        }
                        for delivery in fetched.deliveries {
                            // Bounded across all subscriptions; a delivery handed out
                            // waits here for a slot rather than be dropped.
                            let Ok(permit) = d.permits.clone().acquire_owned().await else {
                                return; // the semaphore is never closed
                            };
                            let d2 = d.clone();
                            let requests = requests.clone();
                            d.metrics.in_flight.fetch_add(1, Relaxed);
                            attempts.spawn(async move {
                                let started_at = now_ms();
                                let answer = match requests.as_ref() {
                                    Ok(p) => {
                                        d2.client.send(p.request(&delivery.event, started_at)).await
                                    }
                                    Err(e) => unbuildable(e),
                                };
                                drop(permit);
                                Finished {
                                    delivery,
                                    answer,
                                    started_at,
                                }
                            });
                        }
                    }
                    Err(StoreError::NotFound(_)) => return, // deleted
                    Err(e) => {
                        tracing::warn!(subscription = %sub.id, error = %e, "webhook fetch failed; retrying");
                        let at = Instant::now() + FETCH_RETRY;
                        next_due = Some(next_due.map_or(at, |n| n.min(at)));
                    }
                }
            }
        }
        if attempts.is_empty() && settling.is_none() && results.is_empty() {
            if stopping {
                return;
            }
            if !active {
                // Paused or disabled: nothing to do until the subscription changes.
                tokio::select! {
                    changed = config.changed() => if changed.is_err() { return },
                    () = stopped(&mut shutdown) => stopping = true,
                }
                want_fetch = true;
                continue;
            }
        }
        let sleep = next_due.map(|at| tokio::time::sleep_until(tokio::time::Instant::from_std(at)));
        // With every slot taken a commit changes nothing here: its wake-up is left
        // stored in `wake` (a `Notify` keeps one) until a settle frees a slot, so a
        // hanging endpoint's worker does not run once per commit.
        let room = active && attempts.len() + results.len() < cap;
        tokio::select! {
            Some(joined) = attempts.join_next(), if !attempts.is_empty() => {
                let mut finished = vec![joined];
                while let Some(more) = attempts.try_join_next() {
                    finished.push(more);
                }
                for joined in finished {
                    d.metrics.in_flight.fetch_sub(1, Relaxed);
                    let Ok(f) = joined else { continue }; // a panicked attempt: handed out again after a restart
                    let settled = decide(&d, &sub, origin, &f, &mut rng);
                    match settled.attempt.outcome {
                        AttemptOutcome::Delivered => failing_since = None,
                        _ => {
                            failing_since.get_or_insert(f.started_at);
                        }
                    }
                    let gone = f.answer.status == Some(410);
                    results.push(settled);
                    if gone && sub.status == SubscriptionStatus::Active {
                        d.disable(&sub, "gone").await;
                    } else if failing_since.is_some_and(|since| {
                        now_ms() - since >= d.config.disable_after.as_millis() as i64
                    }) && sub.status == SubscriptionStatus::Active
                    {
                        d.disable(&sub, "failing").await;
                        failing_since = None;
                    }
                }
            }
            done = async {
                match settling.as_mut() {
                    Some((f, _)) => f.await,
                    None => std::future::pending().await,
                }
            }, if settling.is_some() => {
                let n = settling.take().map_or(0, |(_, n)| n);
                if let Err(e) = done {
                    tracing::error!(subscription = %sub.id, error = %e, deliveries = n, "could not record webhook deliveries; they will be sent again after a restart");
                }
                want_fetch = true;
            }
            _ = wake.notified(), if room => want_fetch = true,
            _ = async {
                match sleep {
                    Some(s) => s.await,
                    None => std::future::pending().await,
                }
            }, if next_due.is_some() => {
                next_due = None;
                want_fetch = true;
            }
            changed = config.changed() => {
                if changed.is_err() {
                    stopping = true;
                }
                want_fetch = true;
            }
            () = stopped(&mut shutdown), if !stopping => stopping = true,
        }
    }
}

/// What becomes of a finished attempt.
fn decide<S: Store>(
    d: &Dispatcher<S>,
    sub: &Subscription,
    origin: &str,
    f: &Finished,
    rng: &mut impl rand::Rng,
) -> Settled {
    let answer = &f.answer;
    let delivered = answer.delivered();
    d.breakers.record(origin, delivered, Instant::now());
    d.metrics.attempt(answer.latency.as_micros() as u64);
    let attempt = f.delivery.attempt;
    let (next, outcome) = if delivered {
        d.metrics.delivered.fetch_add(1, Relaxed);
        (Next::Delivered, AttemptOutcome::Delivered)
    } else {
        // Retry-After counts on the statuses that mean "later" (RFC 9110 and RFC 6585).
        let asked = match answer.status {
            Some(429 | 502 | 503 | 504) => answer
                .retry_after
                .as_deref()
                .and_then(|v| retry_after(v, std::time::SystemTime::now())),
            _ => None,
        };
        match d.config.retry_schedule.wait_after(attempt, asked, rng) {
            Some(wait) => {
                d.metrics.failed.fetch_add(1, Relaxed);
                let at = if answer.status == Some(410) {
                    // Disabled at once: the event waits for the subscription to be set
                    // active again, and goes first then.
                    now_ms()
                } else {
                    now_ms() + wait.as_millis() as i64
                };
                (Next::RetryAt(at), AttemptOutcome::Failed)
            }
            None => {
                d.metrics.dead.fetch_add(1, Relaxed);
                (Next::Dead, AttemptOutcome::Dead)
            }
        }
    };
    let _ = sub;
    Settled {
        seq: Some(f.delivery.event.id.sequence()),
        replay: f.delivery.replay,
        next,
        attempt: d.attempt_of(&f.delivery.event, attempt, f.started_at, answer, outcome),
    }
}
