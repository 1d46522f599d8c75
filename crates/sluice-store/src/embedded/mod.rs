//! The embedded storage engine: a segmented, append-only log with group commit.
//!
//! - [`codec`]: the on-disk format;
//! - [`segment`]: segment files;
//! - `writer`: the group-commit thread, the only writer (staging, commit, publication,
//!   roll-over, each in its own module);
//! - `commit_queue`: the bounded queue from requests to the writer, and its gauges;
//! - `syncer`: the thread that runs the writer's syncs, one at a time;
//! - `retention`: expiring pending events and removing old segments;
//! - [`index`]: in-memory indexes shared with readers;
//! - `reader`: reading records back, on the blocking pool;
//! - [`idempotency`]: the dedup index, owned by the writer;
//! - [`recovery`]: opening a directory, torn tails and corruption;
//! - [`catalog_file`]: the catalog's file;
//! - [`verify`]: `sluice check` and `sluice inspect`.

pub mod catalog_file;
pub mod codec;
mod commit_queue;
mod config;
pub(crate) mod control;
mod counters;
pub(crate) mod deliveries;
mod error;
pub mod fsutil;
pub(crate) mod idempotency;
pub(crate) mod index;
pub(crate) mod pending;
mod push;
mod reader;
pub(crate) mod recovery;
mod retention;
pub(crate) mod scan;
pub mod scrub;
pub(crate) mod segment;
pub mod sidecar;
pub(crate) mod signals;
mod spare;
mod syncer;
mod type_names;
pub mod verify;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

pub use config::{Clock, Durability, EmbeddedConfig};
pub use counters::{EngineGauges, SYNC_LATENCY_BOUNDS_US};
pub use error::EngineError;

use self::catalog_file::CatalogFile;
use self::commit_queue::{QueueGauges, QueueSender};
use self::counters::Counters;
use self::index::{Index, STATE_ACKED, STATE_DELETED, STATE_EXPIRED};
use self::reader::{blocking, Span, Wanted, SPAN_BYTES_MAX};
use self::writer::{Command, Links, Start, Writer};
use crate::catalog::{Catalog, CatalogChange, Changed, SubKey};
use crate::delivery::{
    AttemptPage, AttemptQuery, DeadLetterPage, DeliveryState, Fetched, Replay, Settled,
};
use crate::error::StoreError;
use crate::event_id::EventId;
use crate::exposition::Exposition;
use crate::feed::{CommitFeed, FeedSender};
use crate::store::{CatalogWatch, Store, StoreStats};
use crate::types::{
    AppendOutcome, ConsumerId, EventState, Health, InboxKey, InboxPage, InboxQuery, InboxSummary,
    LeaseAction, LeaseOutcome, LogPage, LogQuery, NewEvent, Sequence, Settle, SettleOutcome,
    StoredEvent, TenantId, UnixMs,
};

/// Events one log read looks at, at most, before it answers with how far it got: the
/// bound on the work (and the index lock's hold: ~1 ns an event, from the stream keys
/// in memory) of one read, whatever the filter.
const LOG_SCAN_EVENTS_MAX: usize = 64 << 10;

/// How long an event a poll is moving to the dead letters stays hidden while its record
/// commits; if the commit fails, it is visible again after this.
const DEAD_LETTERING_HOLD_MS: i64 = 30_000;

/// The catalog: its file, its current value for every reader, and the lock that makes
/// changes one at a time.
struct CatalogStore {
    file: CatalogFile,
    current: watch::Sender<Arc<Catalog>>,
    /// Held across a change's file save: changes are rare and tiny, and one at a time
    /// is what makes each a pure function of the one before. An async lock, so a
    /// waiting change parks its task, not a worker thread.
    writers: tokio::sync::Mutex<()>,
}

impl CatalogStore {
    /// Applies `change` to the current catalog, saves the result (on the blocking pool)
    /// and publishes it; returns what `change` returned beside the new catalog.
    async fn update<T>(
        &self,
        change: impl FnOnce(&Catalog) -> Result<(Catalog, T), StoreError>,
    ) -> Result<T, StoreError> {
        let _one_at_a_time = self.writers.lock().await;
        let current = self.current.borrow().clone();
        let (next, out) = change(&current)?;
        let next = Arc::new(next);
        let (file, saved) = (self.file.clone(), next.clone());
        blocking(move || file.save(&saved)).await?;
        self.current.send_replace(next);
        Ok(out)
    }
}

/// What the store's readers share: read-mostly, behind cheap clones.
struct Inner {
    salt: u16,
    clock: Clock,
    index: Arc<Mutex<Index>>,
    catalog: CatalogStore,
    feed: FeedSender,
    counters: Arc<Counters>,
    queue: Arc<QueueGauges>,
    halted: Arc<AtomicBool>,
    scrub: Arc<scrub::Scrub>,
    signals: Arc<signals::InboxSignals>,
}

/// The embedded [`Store`]: see the module docs. Dropping it drains the commit queue,
/// syncs and stops the writer thread.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    queue: Option<QueueSender>,
    writer: Option<std::thread::JoinHandle<()>>,
    notes: Vec<String>,
    /// Held for the store's lifetime; see [`fsutil::lock_dir`].
    _lock: std::fs::File,
}

impl EmbeddedStore {
    /// Opens or creates the store in `config.dir`, running recovery. Blocking: call it
    /// at start-up, before serving.
    pub fn open(config: EmbeddedConfig) -> Result<EmbeddedStore, EngineError> {
        let lock = fsutil::lock_dir(&config.dir)?;
        let catalog_file = CatalogFile::new(&config.dir);
        let mut catalog = catalog_file.load()?;
        let recovered = recovery::recover(&config, &catalog.consumers)?;
        if catalog.token_secret.is_empty() {
            catalog.token_secret = Catalog::new_token_secret();
            catalog_file.save(&catalog)?;
        }
        let notes = recovered.notes.clone();
        let mut recovered = recovered;
        // Delivery state for every subscription the catalog has (a new one has no record
        // yet, and still pins the log from where it starts), none for deleted ones.
        let subs = &mut recovered.index.deliveries.subs;
        subs.retain(|key, _| catalog.subscriptions.iter().any(|s| s.key == *key));
        for sub in &catalog.subscriptions {
            subs.entry(sub.key)
                .or_insert_with(|| deliveries::SubState::new(sub.start_after.0));
        }
        let scrub: Arc<scrub::Scrub> = Arc::default();
        scrub
            .start(recovered.unverified.clone())
            .map_err(|e| EngineError::io(&config.dir, e))?;
        let (queue, queue_rx, queue_gauges) =
            commit_queue::bounded(config.commit_queue_depth, config.commit_queue_bytes_max);
        let syncer = syncer::Syncer::start(config.commit_delay)
            .map_err(|e| EngineError::io(&config.dir, e))?;
        let active_base = recovered
            .index
            .segments
            .last()
            .map_or(recovered.next_seq.0, |s| s.base_seq);
        let inner = Arc::new(Inner {
            salt: recovered.salt,
            clock: config.clock.clone(),
            index: Arc::new(Mutex::new(recovered.index)),
            catalog: CatalogStore {
                file: catalog_file,
                current: watch::Sender::new(Arc::new(catalog)),
                writers: tokio::sync::Mutex::new(()),
            },
            feed: FeedSender::default(),
            counters: Arc::default(),
            queue: queue_gauges,
            halted: Arc::default(),
            scrub,
            signals: Arc::default(),
        });
        let links = Links {
            index: inner.index.clone(),
            feed: inner.feed.clone(),
            counters: inner.counters.clone(),
            halted: inner.halted.clone(),
            signals: inner.signals.clone(),
        };
        let start = Start {
            active: recovered.active,
            active_base,
            next_seq: recovered.next_seq.0,
            last_ms: recovered.last_ms,
            idempotency: recovered.idempotency,
            salt: recovered.salt,
        };
        let dir = config.dir.clone();
        let writer = Writer::new(config, links, queue_rx, start, syncer);
        let handle = std::thread::Builder::new()
            .name("sluice-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| EngineError::io(&dir, e))?;
        Ok(EmbeddedStore {
            inner,
            queue: Some(queue),
            writer: Some(handle),
            notes,
            _lock: lock,
        })
    }

    /// What recovery had to do (torn tails cut, repairs), for the start-up log.
    pub fn recovery_notes(&self) -> &[String] {
        &self.notes
    }

    /// Blocks until the background scrub of checkpointed segments has finished.
    pub fn wait_for_scrub(&self) -> scrub::ScrubReport {
        self.inner.scrub.wait()
    }

    /// The engine's gauges now (segments, bytes, pinned bytes, damage).
    pub fn gauges(&self) -> EngineGauges {
        let (segments, log_bytes, pinned_bytes) = {
            let index = self.inner.index.lock();
            let log: u64 = index.segments.iter().map(|s| s.bytes).sum();
            // The prefix up to the last sealed segment holding a pending event cannot be
            // removed (segments go oldest first): that is the space pending events pin.
            let sealed = index.segments.len().saturating_sub(1);
            let pinned = index.segments[..sealed]
                .iter()
                .rposition(|s| s.pending > 0)
                .map_or(0, |last| {
                    index.segments[..=last].iter().map(|s| s.bytes).sum()
                });
            (index.segments.len() as u64, log, pinned)
        };
        EngineGauges {
            segments,
            log_bytes,
            pinned_bytes,
            corrupt_segments: self.inner.scrub.damaged(),
        }
    }

    /// What the store holds, for the start-up log: segments, stored events (any state)
    /// and pending events.
    pub fn summary(&self) -> (u64, u64, u64) {
        let index = self.inner.index.lock();
        let events = index.segments.iter().map(|s| s.offsets.len() as u64).sum();
        let pending = index.inboxes.values().map(|q| q.len() as u64).sum();
        (index.segments.len() as u64, events, pending)
    }

    /// Stops the writer after it has drained and synced everything queued.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.inner.scrub.stop();
        self.queue.take();
        if let Some(handle) = self.writer.take() {
            if handle.join().is_err() {
                tracing::error!("the writer thread panicked; the log is as it was last synced");
            }
        }
    }

    /// Queues a command for the writer and waits for its answer.
    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<T, StoreError> {
        if self.inner.halted.load(Ordering::Relaxed) {
            return Err(EngineError::Halted.into());
        }
        let queue = self.queue.as_ref().ok_or(EngineError::Closed)?;
        let (done, rx) = oneshot::channel();
        queue.send(command(done))?;
        match rx.await {
            Ok(result) => result.map_err(StoreError::from),
            // The writer dropped the waiter without answering: it stopped.
            Err(_) => Err(EngineError::Closed.into()),
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An index entry that should exist and does not: the index contradicts itself.
/// Where a pending entry stands at `now`.
fn pending_state(p: &index::Pending, now: UnixMs) -> EventState {
    if p.is_dead() {
        EventState::Dead
    } else if p.lease_until > now {
        EventState::Leased {
            until: p.lease_until,
        }
    } else {
        EventState::Pending
    }
}

impl EmbeddedStore {
    /// Starts a consumer the catalog just created: from now on the writer's
    /// publication puts its events in its queue; then the events between its start and
    /// now are read from the log and put in (its backfill: nothing for `start: "new"`
    /// beyond what was committed during the catalog change, the retained log for
    /// `"all"`). Under the index lock only in pages, so commits go on meanwhile; an
    /// event deleted or expired meanwhile is left out. A crash part-way loses nothing:
    /// recovery rebuilds the queue from the catalog and the log.
    async fn start_consumer(&self, c: &crate::catalog::Consumer) -> Result<(), StoreError> {
        let key = InboxKey {
            tenant: c.tenant,
            consumer: c.id,
        };
        let live_from = {
            let mut index = self.inner.index.lock();
            let live_from = index.segments.last().map_or(1, |s| s.end_seq());
            let filter = crate::feed::TypeFilter::of_patterns(&c.event_types);
            let slot = index::ConsumerSlot::new(c.id, c.start_after.0, live_from, filter);
            index.add_consumer(c.tenant, slot);
            live_from
        };
        let mut after = Some(c.start_after);
        while after.is_none_or(|a| a.0 + 1 < live_from) {
            let page = self
                .read_log(LogQuery {
                    tenant: c.tenant,
                    after,
                    limit: 1000,
                    event_type: None,
                })
                .await?;
            {
                let mut index = self.inner.index.lock();
                let Some(slot) = index
                    .consumers
                    .get(&c.tenant)
                    .and_then(|s| s.iter().find(|s| s.id == c.id))
                else {
                    // Deleted while it was being filled: nothing more to do.
                    return Ok(());
                };
                let wanted: Vec<_> = page
                    .events
                    .iter()
                    .filter(|e| e.id.sequence().0 < live_from && slot.takes_name(&e.event_type))
                    .map(|e| (e.id, e.event_type.clone()))
                    .collect();
                for (id, event_type) in wanted {
                    index.backfill(key, id, &event_type);
                }
            }
            if page.position.is_none() || page.position == after || !page.has_more {
                break;
            }
            after = page.position;
        }
        Ok(())
    }
}

/// Where `id` stands in `inbox`, with its delivery count: pending there (leased, dead),
/// or acked by it. `None` when the event is gone from the log, is not the inbox
/// tenant's, or is not one a named consumer takes (the caller checked the salt; the
/// record read checks the tenant and the time part for an acked event).
fn inbox_state(
    index: &Index,
    inbox: InboxKey,
    id: EventId,
    now: UnixMs,
) -> Option<(EventState, u32)> {
    if let Some(p) = index.pending(inbox, id) {
        return Some((pending_state(p, now), p.delivery_count));
    }
    let seq = id.sequence();
    if inbox.consumer == ConsumerId::DEFAULT {
        let loc = index.locate(seq)?;
        return (loc.state == STATE_ACKED)
            .then_some((EventState::Acked, u32::from(loc.acked_count)));
    }
    let seg = &index.segments[index::segment_of(&index.segments, seq)?];
    let at = (seq.0 - seg.base_seq) as usize;
    let gone = matches!(seg.states[at], STATE_DELETED | STATE_EXPIRED);
    (!gone && index.consumer_takes(inbox, seq)).then(|| {
        (
            EventState::Acked,
            u32::from(seg.consumer_count(inbox.consumer, at)),
        )
    })
}

fn index_corrupt(what: String) -> StoreError {
    StoreError::Corrupt(format!("the in-memory index is inconsistent: {what}"))
}

impl Store for EmbeddedStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.call(|done| Command::Append { events, done }).await
    }

    async fn read_log(&self, query: LogQuery) -> Result<LogPage, StoreError> {
        let limit = query.limit.clamp(1, 1000);
        let start = query.after.map_or(0, |s| s.0.saturating_add(1));
        let (spans, position, has_more) = {
            let index = self.inner.index.lock();
            let type_filter = match &query.event_type {
                Some(t) => match index.types.get(t.as_bytes()) {
                    Some(id) => Some(id),
                    // A type never seen: nothing to read, and nothing to wait for in
                    // what is stored now.
                    None => {
                        let end = index.segments.last().map_or(0, |s| s.end_seq());
                        return Ok(LogPage {
                            events: Vec::new(),
                            position: end.checked_sub(1).filter(|&s| s > 0).map(Sequence),
                            has_more: false,
                        });
                    }
                },
                None => None,
            };
            let wanted_key = |key: u32| {
                let (tenant, type_id) = index.streams.get(key);
                tenant == query.tenant && type_filter.is_none_or(|t| t == type_id)
            };
            let mut spans: Vec<Span> = Vec::new();
            let mut scanned = 0usize;
            let mut candidates = 0usize;
            let mut position = query.after;
            let first = index.segments.partition_point(|s| s.end_seq() <= start);
            'segments: for seg in &index.segments[first..] {
                let from = start.max(seg.base_seq);
                let mut span: Option<Span> = None;
                for seq in from..seg.end_seq() {
                    if scanned == LOG_SCAN_EVENTS_MAX || candidates == limit {
                        // Bounded work per read; the caller continues from `position`.
                        spans.extend(span.take());
                        break 'segments;
                    }
                    scanned += 1;
                    position = Some(Sequence(seq));
                    let i = (seq - seg.base_seq) as usize;
                    if matches!(seg.states[i], STATE_DELETED | STATE_EXPIRED)
                        || !wanted_key(seg.keys[i])
                    {
                        continue;
                    }
                    candidates += 1;
                    let offset = u64::from(seg.offsets[i]);
                    let end = seg.offsets.get(i + 1).map_or(seg.bytes, |&o| u64::from(o));
                    // Consecutive wanted records share one read while it stays short.
                    match &mut span {
                        Some(s) if s.end == offset && end - s.start <= SPAN_BYTES_MAX => {
                            s.end = end;
                            s.records.push((Sequence(seq), offset));
                        }
                        _ => {
                            if let Some(s) = span.take() {
                                spans.push(s);
                            }
                            span = Some(Span {
                                file: seg.file.clone(),
                                path: seg.path.clone(),
                                start: offset,
                                end,
                                records: vec![(Sequence(seq), offset)],
                            });
                        }
                    }
                }
                if let Some(s) = span.take() {
                    spans.push(s);
                }
            }
            let last = index.segments.last().map_or(0, |s| s.end_seq());
            let has_more = position.map_or(0, |p| p.0 + 1) < last;
            (spans, position, has_more)
        };
        let (salt, tenant) = (self.inner.salt, query.tenant);
        let wanted = (spans, query.event_type.map(String::into_bytes));
        let events = reader::read(
            &self.inner.counters,
            wanted,
            move |(spans, event_type), mode| {
                reader::read_spans(salt, tenant, event_type.as_deref(), spans, mode)
            },
        )
        .await?;
        // At most `limit` live records were read, so at most `limit` events came back.
        debug_assert!(events.len() <= limit);
        Ok(LogPage {
            events,
            position,
            has_more,
        })
    }

    async fn log_position(&self, _tenant: TenantId) -> Result<Option<Sequence>, StoreError> {
        // One sequence for every tenant: the global latest is at least as recent as the
        // tenant's own, which is all a reader starting "from now" needs.
        let index = self.inner.index.lock();
        let end = index.segments.last().map_or(0, |s| s.end_seq());
        Ok(end.checked_sub(1).filter(|&s| s > 0).map(Sequence))
    }

    async fn feed(&self) -> Result<CommitFeed, StoreError> {
        Ok(self.inner.feed.subscribe())
    }

    async fn list(&self, query: InboxQuery) -> Result<InboxPage, StoreError> {
        let now = self.inner.clock.now_ms();
        let limit = query.limit.clamp(1, 1000);
        let start = query.after.map_or(0, |s| s.0.saturating_add(1));
        let mut found = Vec::with_capacity(limit.min(128));
        let mut has_more = false;
        let mut next_visible: Option<UnixMs> = None;
        let mut dying = Vec::new();
        {
            let mut guard = self.inner.index.lock();
            let index = &mut *guard;
            let type_filter = match &query.event_type {
                Some(t) => match index.types.get(t.as_bytes()) {
                    Some(id) => Some(id),
                    None => return Ok(InboxPage::default()),
                },
                None => None,
            };
            let key = InboxKey {
                tenant: query.tenant,
                consumer: query.consumer,
            };
            let Some(inbox) = index.inboxes.get_mut(&key) else {
                return Ok(InboxPage::default());
            };
            let segments = &index.segments;
            for (seq, received_ms, pending) in inbox.iter_stamped_mut(start) {
                // Dead letters are listed by `inbox_dead_letters`, never here.
                if pending.is_dead() || type_filter.is_some_and(|t| t != pending.type_id) {
                    continue;
                }
                if query.lease_ms.is_some()
                    && pending.lease_until <= now
                    && query
                        .max_deliveries
                        .is_some_and(|m| pending.delivery_count >= m)
                {
                    // Leased `max_deliveries` times already: it goes to the dead letters
                    // instead, hidden meanwhile so that no other poll takes it. If the
                    // record fails to commit, it is back when the hold runs out.
                    pending.lease_until = now + DEAD_LETTERING_HOLD_MS;
                    dying.push(EventId::new(received_ms, Sequence(seq), self.inner.salt));
                    continue;
                }
                if query.lease_ms.is_some() && pending.lease_until > now {
                    next_visible = Some(
                        next_visible.map_or(pending.lease_until, |t| t.min(pending.lease_until)),
                    );
                    continue;
                }
                if found.len() == limit {
                    has_more = true;
                    break;
                }
                // A pending event is always in a stored segment: retention removes only
                // segments with nothing pending, and expires pending events first.
                let Some(location) = index::locate_in(segments, Sequence(seq)) else {
                    return Err(index_corrupt(format!(
                        "pending event {seq} is in no segment"
                    )));
                };
                let state = match query.lease_ms {
                    Some(ms) => {
                        pending.lease_until = now + ms as i64;
                        pending.delivery_count += 1;
                        EventState::Leased {
                            until: pending.lease_until,
                        }
                    }
                    None => pending_state(pending, now),
                };
                found.push(Wanted {
                    seq: Sequence(seq),
                    location,
                    delivery_count: pending.delivery_count,
                    state,
                });
            }
        }
        if !dying.is_empty() {
            let key = InboxKey {
                tenant: query.tenant,
                consumer: query.consumer,
            };
            self.settle(key, dying, Settle::Dead).await?;
        }
        let next_cursor = found.last().map(|w| w.seq);
        let (salt, tenant) = (self.inner.salt, query.tenant);
        let events = reader::read(&self.inner.counters, found, move |found, mode| {
            reader::read_events(salt, tenant, found, mode)
        })
        .await?;
        Ok(InboxPage {
            events,
            next_cursor,
            has_more,
            next_visible,
        })
    }

    async fn get(
        &self,
        inbox: impl Into<InboxKey> + Send,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let inbox = inbox.into();
        let tenant = inbox.tenant;
        if id.salt() != self.inner.salt {
            return Ok(None);
        }
        let seq = id.sequence();
        let now = self.inner.clock.now_ms();
        let wanted = {
            let index = self.inner.index.lock();
            let Some(location) = index.locate(seq) else {
                return Ok(None);
            };
            let Some((state, delivery_count)) = inbox_state(&index, inbox, id, now) else {
                return Ok(None);
            };
            Wanted {
                seq,
                location,
                delivery_count,
                state,
            }
        };
        let salt = self.inner.salt;
        let mut events = reader::read(&self.inner.counters, [wanted], move |wanted, mode| {
            reader::read_events(salt, tenant, wanted, mode)
        })
        .await?;
        // An id whose time part does not match the record was never issued.
        Ok(events.pop().filter(|e| e.id == id))
    }

    async fn settle(
        &self,
        inbox: impl Into<InboxKey> + Send,
        ids: Vec<EventId>,
        how: Settle,
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        let inbox = inbox.into();
        self.call(|done| Command::Settle {
            inbox,
            ids,
            how,
            leases: None,
            done,
        })
        .await
    }

    async fn ack_leased(
        &self,
        inbox: impl Into<InboxKey> + Send,
        acks: Vec<(EventId, u32)>,
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        let inbox = inbox.into();
        let (ids, leases): (Vec<EventId>, Vec<u32>) = acks.into_iter().unzip();
        self.call(|done| Command::Settle {
            inbox,
            ids,
            how: Settle::Ack,
            leases: Some(leases),
            done,
        })
        .await
    }

    async fn lease_action(
        &self,
        inbox: impl Into<InboxKey> + Send,
        id: EventId,
        action: LeaseAction,
    ) -> Result<LeaseOutcome, StoreError> {
        let inbox = inbox.into();
        if id.salt() != self.inner.salt {
            return Ok(LeaseOutcome::NotFound);
        }
        let now = self.inner.clock.now_ms();
        let (lease, until) = match action {
            LeaseAction::Nack { lease, delay_ms } => (lease, now.saturating_add(delay_ms as i64)),
            LeaseAction::Extend { lease, lease_ms } => {
                (Some(lease), now.saturating_add(lease_ms as i64))
            }
        };
        let outcome = {
            let mut index = self.inner.index.lock();
            match index.pending_mut(inbox, id) {
                // A dead letter has no lease to give back or extend: requeue it.
                None => LeaseOutcome::NotFound,
                Some(p) if p.is_dead() => LeaseOutcome::NotFound,
                Some(p) if lease.is_some_and(|l| l != p.delivery_count) => LeaseOutcome::Stale,
                Some(p) => {
                    // Visible at once is "not hidden": 0, as for a fresh event.
                    p.lease_until = if until > now { until } else { 0 };
                    LeaseOutcome::Done { visible_at: until }
                }
            }
        };
        if matches!(outcome, LeaseOutcome::Done { visible_at } if visible_at <= now) {
            self.inner.signals.notify(std::iter::once(inbox.tenant));
        }
        Ok(outcome)
    }

    async fn inbox_states(
        &self,
        inbox: impl Into<InboxKey> + Send,
        ids: Vec<EventId>,
    ) -> Result<Vec<Option<(EventState, u32)>>, StoreError> {
        let inbox = inbox.into();
        let now = self.inner.clock.now_ms();
        let salt = self.inner.salt;
        let index = self.inner.index.lock();
        // The caller read these ids from this tenant's log, so an acked one is this
        // tenant's event: no record read is needed to tell.
        Ok(ids
            .iter()
            .map(|&id| {
                (id.salt() == salt)
                    .then(|| inbox_state(&index, inbox, id, now))
                    .flatten()
            })
            .collect())
    }

    async fn inbox_dead_letters(
        &self,
        inbox: impl Into<InboxKey> + Send,
        after: Option<Sequence>,
        limit: usize,
    ) -> Result<InboxPage, StoreError> {
        let key = inbox.into();
        let tenant = key.tenant;
        let limit = limit.clamp(1, 1000);
        let start = after.map_or(0, |s| s.0.saturating_add(1));
        let mut found = Vec::with_capacity(limit.min(128));
        let mut has_more = false;
        let mut position = after;
        {
            let mut guard = self.inner.index.lock();
            let index = &mut *guard;
            let Some(inbox) = index.inboxes.get_mut(&key) else {
                return Ok(InboxPage::default());
            };
            let segments = &index.segments;
            for (scanned, (seq, pending)) in inbox.iter_from_mut(start).enumerate() {
                if scanned == LOG_SCAN_EVENTS_MAX {
                    // Bounded work per page; the cursor continues from here.
                    has_more = true;
                    break;
                }
                if !pending.is_dead() {
                    position = Some(Sequence(seq));
                    continue;
                }
                if found.len() == limit {
                    has_more = true;
                    break;
                }
                position = Some(Sequence(seq));
                let Some(location) = index::locate_in(segments, Sequence(seq)) else {
                    return Err(index_corrupt(format!("dead letter {seq} is in no segment")));
                };
                found.push(Wanted {
                    seq: Sequence(seq),
                    location,
                    delivery_count: pending.delivery_count,
                    state: EventState::Dead,
                });
            }
        }
        let salt = self.inner.salt;
        let events = reader::read(&self.inner.counters, found, move |found, mode| {
            reader::read_events(salt, tenant, found, mode)
        })
        .await?;
        Ok(InboxPage {
            events,
            next_cursor: position,
            has_more,
            next_visible: None,
        })
    }

    fn inbox_signal(
        &self,
        inbox: impl Into<InboxKey>,
        interchangeable: bool,
    ) -> Arc<tokio::sync::Notify> {
        self.inner.signals.get(inbox.into(), interchangeable)
    }

    async fn inbox_summaries(&self) -> Result<Vec<InboxSummary>, StoreError> {
        let index = self.inner.index.lock();
        Ok(index
            .inboxes
            .iter()
            .map(|(key, inbox)| InboxSummary {
                tenant: key.tenant,
                consumer: key.consumer,
                pending: inbox.len() as u64,
                oldest_pending_ms: inbox.oldest_ms(),
            })
            .collect())
    }

    async fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            events_appended: c.events_appended.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            queue_depth: self.inner.queue.depth() as u64,
            overloaded_total: self.inner.queue.overloaded_total(),
            pending_expired: c.pending_expired.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
        }
    }

    async fn write_metrics(&self, out: &mut Exposition) {
        self.inner.counters.write(&self.gauges(), out);
    }

    async fn health(&self) -> Health {
        let corrupt = self.inner.scrub.damaged();
        if corrupt > 0 {
            return Health {
                ready: false,
                detail: Some(format!("{corrupt} log segment(s) failed verification; see the server log, then run `sluice check`")),
            };
        }
        if self.inner.halted.load(Ordering::Relaxed) || self.queue.is_none() {
            return Health {
                ready: false,
                detail: Some("storage is not writable; see the server log".into()),
            };
        }
        Health {
            ready: true,
            detail: None,
        }
    }

    async fn sync(&self) -> Result<(), StoreError> {
        self.call(|done| Command::Sync { done }).await
    }

    fn catalog(&self) -> CatalogWatch {
        self.inner.catalog.current.subscribe()
    }

    async fn fetch_deliveries(&self, sub: SubKey, max: usize) -> Result<Fetched, StoreError> {
        self.fetch_deliveries_impl(sub, max).await
    }

    async fn settle_deliveries(
        &self,
        sub: SubKey,
        settled: Vec<Settled>,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        self.settle_deliveries_impl(sub, settled).await
    }

    async fn delivery_state(&self, sub: SubKey) -> Result<DeliveryState, StoreError> {
        self.delivery_state_impl(sub).await
    }

    async fn attempts(&self, sub: SubKey, query: AttemptQuery) -> Result<AttemptPage, StoreError> {
        self.attempts_impl(sub, query).await
    }

    async fn dead_letters(
        &self,
        sub: SubKey,
        after: Option<Sequence>,
        limit: usize,
    ) -> Result<DeadLetterPage, StoreError> {
        self.dead_letters_impl(sub, after, limit).await
    }

    async fn replay(&self, sub: SubKey, what: Replay) -> Result<u64, StoreError> {
        self.replay_impl(sub, what).await
    }

    async fn change_catalog(&self, change: CatalogChange) -> Result<Changed, StoreError> {
        let deleted = match &change {
            CatalogChange::DeleteSubscription { tenant, id } => self
                .inner
                .catalog
                .current
                .borrow()
                .subscription(*tenant, id)
                .map(|s| s.key),
            _ => None,
        };
        let deleted_consumer = match &change {
            CatalogChange::DeleteConsumer { tenant, name } => self
                .inner
                .catalog
                .current
                .borrow()
                .consumer(*tenant, name)
                .map(|c| InboxKey {
                    tenant: c.tenant,
                    consumer: c.id,
                }),
            _ => None,
        };
        let creates_consumer = matches!(change, CatalogChange::CreateConsumer(_));
        let now = self.inner.clock.now_ms();
        let log_end = {
            let index = self.inner.index.lock();
            let end = index.segments.last().map_or(1, |s| s.end_seq());
            Sequence(end.saturating_sub(1))
        };
        let changed = self
            .inner
            .catalog
            .update(|c| c.apply(change, now, log_end))
            .await?;
        if let Some(key) = deleted {
            self.forget_subscription(key);
        }
        if let Some(key) = deleted_consumer {
            self.inner.index.lock().remove_consumer(key);
        }
        match &changed {
            // A new consumer's queue starts now; a changed one's `max_deliveries` is
            // read from the catalog by each poll.
            Changed::Consumer(c) if creates_consumer => self.start_consumer(c).await?,
            _ => {}
        }
        if let Changed::Subscription(sub) = &changed {
            let mut index = self.inner.index.lock();
            index
                .deliveries
                .subs
                .entry(sub.key)
                .or_insert_with(|| deliveries::SubState::new(sub.start_after.0));
        }
        Ok(changed)
    }
}
