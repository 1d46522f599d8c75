//! The embedded storage engine: a segmented, append-only log with group commit.
//!
//! - [`codec`]: the on-disk format;
//! - [`segment`]: segment files;
//! - [`writer`]: the group-commit thread, the only writer;
//! - [`syncer`]: the thread that runs the writer's syncs, one at a time;
//! - [`index`]: in-memory indexes shared with readers;
//! - [`idempotency`]: the dedup index, owned by the writer;
//! - [`recovery`]: opening a directory, torn tails and corruption;
//! - [`verify`]: `sluice check` and `sluice inspect`.

pub mod codec;
mod config;
pub mod fsutil;
pub mod idempotency;
pub mod index;
pub mod pending;
pub mod recovery;
pub mod scan;
pub mod scrub;
pub mod segment;
pub mod sidecar;
mod spare;
mod syncer;
mod type_names;
pub mod verify;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{broadcast, oneshot};

pub use config::{Clock, Durability, EmbeddedConfig};

use self::codec::Record;
use self::index::{Index, Location, STATE_ACKED, STATE_PENDING};
use self::writer::{Command, Writer};
use crate::catalog::{ApiKeyRecord, Catalog, CatalogFile, Tenant, TenantLimits};
use crate::error::StoreError;
use crate::event_id::EventId;
use crate::store::{Store, StoreStats, SYNC_LATENCY_BOUNDS_US};
use crate::types::{
    AppendOutcome, Committed, EventState, InboxPage, InboxQuery, NewEvent, Sequence, Settle,
    SettleOutcome, StoredEvent, TenantId,
};

/// Lock-free counters for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    events_appended: AtomicU64,
    commits: AtomicU64,
    sync_micros_total: AtomicU64,
    sync_latency: [AtomicU64; SYNC_LATENCY_BOUNDS_US.len()],
    overloaded_total: AtomicU64,
    segments_purged: AtomicU64,
    pending_expired: AtomicU64,
}

/// State shared by the handle, the readers and the writer thread.
struct Shared {
    config: EmbeddedConfig,
    clock: Clock,
    salt: u16,
    index: Mutex<Index>,
    catalog: Mutex<Arc<Catalog>>,
    catalog_file: CatalogFile,
    notify: broadcast::Sender<Arc<[Committed]>>,
    stats: Counters,
    queued_bytes: AtomicUsize,
    queue_depth: AtomicUsize,
    halted: AtomicBool,
    scrub: Arc<scrub::Scrub>,
}

/// The embedded [`Store`]: see the module docs. Dropping it drains the commit queue,
/// syncs and stops the writer thread.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    tx: Option<SyncSender<Command>>,
    writer: Option<std::thread::JoinHandle<()>>,
    notes: Vec<String>,
    /// Held for the store's lifetime; see [`fsutil::lock_dir`].
    _lock: std::fs::File,
}

/// Commit notifications buffered for slow subscribers before they lag.
const NOTIFY_CAPACITY: usize = 1024;

impl EmbeddedStore {
    /// Opens or creates the store in `config.dir`, running recovery.
    pub fn open(config: EmbeddedConfig) -> Result<EmbeddedStore, StoreError> {
        let lock = fsutil::lock_dir(&config.dir)?;
        let recovered = recovery::recover(&config)?;
        let catalog_file = CatalogFile::new(&config.dir);
        let mut catalog = catalog_file.load()?;
        if catalog.token_secret.is_empty() {
            catalog.token_secret = Catalog::new_token_secret();
            catalog_file.save(&catalog)?;
        }
        let (notify, _) = broadcast::channel(NOTIFY_CAPACITY);
        let notes = recovered.notes.clone();
        let unverified = recovered.unverified.clone();
        let shared = Arc::new(Shared {
            clock: config.clock.clone(),
            salt: recovered.salt,
            index: Mutex::new(Index::default()),
            catalog: Mutex::new(Arc::new(catalog)),
            catalog_file,
            notify,
            stats: Counters::default(),
            queued_bytes: AtomicUsize::new(0),
            queue_depth: AtomicUsize::new(0),
            halted: AtomicBool::new(false),
            scrub: Arc::default(),
            config,
        });
        shared
            .scrub
            .start(unverified)
            .map_err(|e| StoreError::io(&shared.config.dir, e))?;
        let (tx, rx) = sync_channel(shared.config.commit_queue_depth);
        let syncer = syncer::Syncer::start(shared.config.commit_delay)
            .map_err(|e| StoreError::io(&shared.config.dir, e))?;
        let writer = Writer::new(shared.clone(), rx, recovered, syncer);
        let handle = std::thread::Builder::new()
            .name("sluice-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::io(&shared.config.dir, e))?;
        Ok(EmbeddedStore {
            shared,
            tx: Some(tx),
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
        self.shared.scrub.wait()
    }

    /// Stops the writer after it has drained and synced everything queued.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.scrub.stop();
        self.tx.take();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }

    fn send(&self, cmd: Command, charged: usize) -> Result<(), StoreError> {
        let shared = &self.shared;
        if shared.halted.load(Ordering::Relaxed) {
            return Err(StoreError::Halted);
        }
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        let queued = shared.queued_bytes.fetch_add(charged, Ordering::Relaxed) + charged;
        if queued > shared.config.commit_queue_bytes_max {
            shared.queued_bytes.fetch_sub(charged, Ordering::Relaxed);
            shared
                .stats
                .overloaded_total
                .fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Overloaded);
        }
        shared.queue_depth.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(e) => {
                shared.queued_bytes.fetch_sub(charged, Ordering::Relaxed);
                shared.queue_depth.fetch_sub(1, Ordering::Relaxed);
                match e {
                    TrySendError::Full(_) => {
                        shared
                            .stats
                            .overloaded_total
                            .fetch_add(1, Ordering::Relaxed);
                        Err(StoreError::Overloaded)
                    }
                    TrySendError::Disconnected(_) => Err(StoreError::Closed),
                }
            }
        }
    }

    /// Reads the records of `locations` (outside any lock) into events.
    fn read_events(
        &self,
        tenant: TenantId,
        found: Vec<(Sequence, Location, u32, EventState)>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = Vec::with_capacity(found.len());
        for (seq, loc, delivery_count, state) in found {
            if let Some(event) = self.read_event(tenant, seq, &loc, delivery_count, state)? {
                out.push(event);
            }
        }
        Ok(out)
    }

    fn read_event(
        &self,
        tenant: TenantId,
        seq: Sequence,
        loc: &Location,
        delivery_count: u32,
        state: EventState,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let bytes = segment::read_record_at(&loc.file, &loc.path, loc.offset)?;
        let Ok(Record::Event(e)) = codec::read_record(&bytes) else {
            return Err(StoreError::Corrupt {
                path: loc.path.clone(),
                offset: loc.offset,
                reason: "index points at a record that is not an event".into(),
            });
        };
        if e.seq != seq {
            return Err(StoreError::Corrupt {
                path: loc.path.clone(),
                offset: loc.offset,
                reason: format!("index points at sequence {} instead of {}", e.seq.0, seq.0),
            });
        }
        if e.tenant != tenant {
            return Ok(None);
        }
        let slice = |field: &[u8]| bytes.slice_ref(field);
        Ok(Some(StoredEvent {
            id: EventId::new(e.received_at, e.seq, self.shared.salt),
            tenant: e.tenant,
            event_type: slice(e.event_type),
            source: e.source.map(slice),
            occurred_at: e.occurred_at.map(slice),
            received_at: e.received_at,
            payload: slice(e.payload),
            delivery_count,
            state,
        }))
    }

    fn update_catalog(
        &self,
        change: impl FnOnce(&Catalog) -> Result<Catalog, StoreError>,
    ) -> Result<(), StoreError> {
        // The lock serialises catalog writers; the control plane is rare and tiny, so
        // holding it across the small atomic file write is the simple, correct choice.
        let mut current = self.shared.catalog.lock();
        let next = change(&current)?;
        self.shared.catalog_file.save(&next)?;
        *current = Arc::new(next);
        Ok(())
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait<T>(rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
    rx.await.map_err(|_| StoreError::Closed)?
}

impl Store for EmbeddedStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError> {
        let charged = events.iter().map(NewEvent::queued_bytes).sum();
        let (done, rx) = oneshot::channel();
        self.send(
            Command::Append {
                events,
                charged,
                done,
            },
            charged,
        )?;
        wait(rx).await
    }

    async fn list(&self, query: InboxQuery) -> Result<InboxPage, StoreError> {
        let now = self.shared.clock.now_ms();
        let limit = query.limit.clamp(1, 1000);
        let start = query.after.map_or(0, |s| s.0.saturating_add(1));
        let mut found = Vec::with_capacity(limit.min(128));
        let mut has_more = false;
        {
            let mut guard = self.shared.index.lock();
            let index = &mut *guard;
            let type_filter = match &query.event_type {
                Some(t) => match index.types.get(t.as_bytes()) {
                    Some(id) => Some(id),
                    None => {
                        return Ok(InboxPage {
                            events: Vec::new(),
                            next_cursor: None,
                            has_more: false,
                        })
                    }
                },
                None => None,
            };
            let Some(inbox) = index.inboxes.get_mut(&query.tenant) else {
                return Ok(InboxPage {
                    events: Vec::new(),
                    next_cursor: None,
                    has_more: false,
                });
            };
            let segments = &index.segments;
            for (seq, pending) in inbox.iter_from_mut(start) {
                if type_filter.is_some_and(|t| t != pending.type_id) {
                    continue;
                }
                if query.lease_ms.is_some() && pending.lease_until > now {
                    continue;
                }
                if found.len() == limit {
                    has_more = true;
                    break;
                }
                let state = match query.lease_ms {
                    Some(ms) => {
                        pending.lease_until = now + ms as i64;
                        pending.delivery_count += 1;
                        EventState::Leased {
                            until: pending.lease_until,
                        }
                    }
                    None if pending.lease_until > now => EventState::Leased {
                        until: pending.lease_until,
                    },
                    None => EventState::Pending,
                };
                // A pending event is always in a stored segment; if the index ever
                // disagreed, skipping it beats reading a wrong offset.
                let Some(loc) = index::locate_in(segments, Sequence(seq)) else {
                    continue;
                };
                found.push((Sequence(seq), loc, pending.delivery_count, state));
            }
        }
        let next_cursor = found.last().map(|(seq, ..)| *seq);
        let events = self.read_events(query.tenant, found)?;
        Ok(InboxPage {
            events,
            next_cursor,
            has_more,
        })
    }

    async fn get(&self, tenant: TenantId, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        if id.salt() != self.shared.salt {
            return Ok(None);
        }
        let seq = id.sequence();
        let now = self.shared.clock.now_ms();
        let (loc, delivery_count, state) = {
            let index = self.shared.index.lock();
            let Some(loc) = index.locate(seq) else {
                return Ok(None);
            };
            let pending = index.pending(tenant, id).copied();
            let (count, state) = match (loc.state, pending) {
                (STATE_PENDING, Some(p)) if p.lease_until > now => (
                    p.delivery_count,
                    EventState::Leased {
                        until: p.lease_until,
                    },
                ),
                (STATE_PENDING, Some(p)) => (p.delivery_count, EventState::Pending),
                (STATE_ACKED, _) => (0, EventState::Acked),
                // Another tenant's pending event, or deleted, or expired.
                _ => return Ok(None),
            };
            (loc, count, state)
        };
        let event = self.read_event(tenant, seq, &loc, delivery_count, state)?;
        // An id whose time part does not match the record was never issued.
        Ok(event.filter(|e| e.id == id))
    }

    async fn settle(
        &self,
        tenant: TenantId,
        ids: Vec<EventId>,
        how: Settle,
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        let (done, rx) = oneshot::channel();
        self.send(
            Command::Settle {
                tenant,
                ids,
                how,
                done,
            },
            0,
        )?;
        wait(rx).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<[Committed]>> {
        self.shared.notify.subscribe()
    }

    fn pending_count(&self, tenant: TenantId) -> u64 {
        self.shared
            .index
            .lock()
            .inboxes
            .get(&tenant)
            .map_or(0, |inbox| inbox.len() as u64)
    }

    fn stats(&self) -> StoreStats {
        let c = &self.shared.stats;
        let (segments, log_bytes, pinned_bytes) = {
            let index = self.shared.index.lock();
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
        StoreStats {
            events_appended: c.events_appended.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            sync_micros_total: c.sync_micros_total.load(Ordering::Relaxed),
            sync_latency_counts: std::array::from_fn(|i| c.sync_latency[i].load(Ordering::Relaxed)),
            queue_depth: self.shared.queue_depth.load(Ordering::Relaxed) as u64,
            overloaded_total: c.overloaded_total.load(Ordering::Relaxed),
            segments,
            log_bytes,
            pinned_bytes,
            segments_purged: c.segments_purged.load(Ordering::Relaxed),
            pending_expired: c.pending_expired.load(Ordering::Relaxed),
            corrupt_segments: self.shared.scrub.damaged(),
        }
    }

    fn is_writable(&self) -> bool {
        !self.shared.halted.load(Ordering::Relaxed) && self.tx.is_some()
    }

    async fn sync(&self) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.send(Command::Sync { done }, 0)?;
        wait(rx).await
    }

    fn catalog(&self) -> Arc<Catalog> {
        self.shared.catalog.lock().clone()
    }

    async fn create_tenant(&self, name: &str, limits: TenantLimits) -> Result<Tenant, StoreError> {
        let now = self.shared.clock.now_ms();
        let mut created = None;
        self.update_catalog(|c| {
            let (next, tenant) = c.with_tenant(name, limits, now)?;
            created = Some(tenant);
            Ok(next)
        })?;
        created.ok_or(StoreError::Closed)
    }

    async fn set_tenant_limits(
        &self,
        name: &str,
        limits: TenantLimits,
    ) -> Result<Tenant, StoreError> {
        let mut updated = None;
        self.update_catalog(|c| {
            let (next, tenant) = c.with_limits(name, limits)?;
            updated = Some(tenant);
            Ok(next)
        })?;
        updated.ok_or(StoreError::Closed)
    }

    async fn add_key(&self, key: ApiKeyRecord) -> Result<(), StoreError> {
        self.update_catalog(|c| c.with_key(key))
    }

    async fn revoke_key(&self, key_id: &str) -> Result<(), StoreError> {
        let now = self.shared.clock.now_ms();
        self.update_catalog(|c| c.with_revoked(key_id, now))
    }
}
