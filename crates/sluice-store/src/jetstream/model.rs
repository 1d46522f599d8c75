//! The state every node rebuilds from the shared log: a deterministic state machine.
//!
//! Each node applies the log's records in stream order, and [`Model::apply`] is a pure
//! function of the model and the record (time included: it is the proposing node's
//! clock, carried in the record). So every node holds the same model at the same
//! sequence, and a decision that needs exclusivity (which poller a lease goes to,
//! whether an idempotency key is new, which deliveries a fetch hands out) is made once,
//! by the record's place in the log, and the same way everywhere. A node proposes a
//! record and answers its caller with the outcome its own applier computed.
//!
//! What is kept: each tenant's live events (metadata only; payloads stay in the
//! stream and are read by sequence), each inbox's open entries and acks, the dedup
//! index for the idempotency window, and each subscription's delivery state
//! ([`SubState`], the embedded engine's, applied the same way).

use std::collections::{HashMap, HashSet, VecDeque};

use super::seqmap::{SeqMap, Tomb};
use std::sync::Arc;

use bytes::Bytes;

use super::record::{EventRecord, FetchRecord, How, Op, SettledRecord};
use crate::catalog::{Catalog, SubKey};
use crate::delivery::REPLAY_QUEUE_MAX;
use crate::embedded::control::Item;
use crate::embedded::deliveries::{FetchShape, SubState};
use crate::error::StoreError;
use crate::event_id::EventId;
use crate::feed::TypeFilter;
use crate::types::{
    AppendOutcome, Committed, ConsumerId, EventState, InboxKey, InboxSummary, LeaseOutcome,
    Sequence, SettleOutcome, TenantId, UnixMs,
};

/// Events a fetch looks at, at most, for new deliveries.
const FETCH_SCAN_EVENTS_MAX: usize = 64 << 10;

/// Largest window a subscription may have (the API's bound on `max_in_flight`).
const WINDOW_MAX: usize = 1000;

/// Delivery settles one record carries, at most (the dispatcher settles a window of at
/// most 1000); an attempt's serial keeps this many low bits for its place in the record.
pub(crate) const SETTLES_PER_RECORD_MAX: usize = 1 << SERIAL_SHIFT;
const SERIAL_SHIFT: u32 = 10;

/// Events one retention sweep removes, at most: the bound on one record's apply.
const SWEEP_EVENTS_MAX: usize = 4096;

/// What the model keeps of an event: what filters and ids need. Everything else (its
/// payload, source and time) stays in the stream, at its sequence, and is read from
/// there with the payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) received_at: UnixMs,
    /// Its type, as an index into the model's interned types.
    pub(crate) type_id: u32,
}

impl Tomb for Meta {
    const DEAD: Meta = Meta {
        received_at: UnixMs::MIN,
        type_id: 0,
    };
    fn is_dead(&self) -> bool {
        self.received_at == UnixMs::MIN
    }
}

impl Tomb for Slot {
    const DEAD: Slot = Slot {
        count: u32::MAX,
        until: UnixMs::MIN,
        dead: true,
    };
    fn is_dead(&self) -> bool {
        self.until == UnixMs::MIN
    }
}

/// An open entry of an inbox: pending (maybe leased) or dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    /// Leases so far; a lease's generation.
    count: u32,
    /// Hidden until then (leased, or nacked with a delay).
    until: UnixMs,
    dead: bool,
}

/// One inbox: a tenant's default one, or a named consumer.
#[derive(Debug)]
struct Inbox {
    open: SeqMap<Slot>,
    /// Acked events, with their delivery count.
    acked: HashMap<u64, u32>,
    /// Which of the tenant's events it takes.
    filter: TypeFilter,
}

impl Inbox {
    fn new(filter: TypeFilter) -> Inbox {
        Inbox {
            open: SeqMap::default(),
            acked: HashMap::new(),
            filter,
        }
    }
}

/// A key's first event, for the dedup window.
#[derive(Debug, Clone, Copy)]
struct Keyed {
    seq: u64,
    fingerprint: [u8; 16],
    received_at: UnixMs,
}

/// A subscription's delivery state and who dispatches it.
#[derive(Debug)]
struct SubRun {
    state: SubState,
    owner: Option<u64>,
    /// Until when `owner` holds it: renewed by each of its fetches and settles, by the
    /// lease length its last fetch asked for.
    owner_until: UnixMs,
    owner_lease_ms: i64,
}

/// Where one id stands in one inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Open(Slot),
    Acked(u32),
}

/// What a record's apply answers the node that proposed it.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Appended(AppendOutcome),
    Page(Page),
    Settled(Vec<SettleOutcome>),
    Lease(LeaseOutcome),
    Fetched(Picks),
    Serials(Vec<Option<u64>>),
    /// How many events a replay queued; `None`: the queue is full.
    Replayed(Option<u64>),
    Done,
    /// The record's publish failed past the write deadline: never stored
    /// ([`StoreError::Unavailable`], [`StoreError::Full`]) or perhaps
    /// ([`StoreError::Unconfirmed`]).
    Failed(StoreError),
}

/// A page of an inbox: which events, in which state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    pub(crate) found: Vec<(u64, u32, EventState)>,
    pub(crate) has_more: bool,
    pub(crate) next_visible: Option<UnixMs>,
}

/// A fetch's deliveries: (seq, attempt, replay), and when the next retry is due.
#[derive(Debug, Clone, Default)]
pub(crate) struct Picks {
    pub(crate) picks: Vec<(u64, u32, bool)>,
    pub(crate) next_due_at: Option<UnixMs>,
}

/// What an apply changed that the node must pass on (feed, long polls, catalog watch).
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) committed: Vec<Committed>,
    pub(crate) notify: Vec<TenantId>,
}

/// Counters the model keeps (the same on every node).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ModelCounts {
    pub(crate) events: u64,
    pub(crate) pending_expired: u64,
    pub(crate) dead_lettered: u64,
}

/// Durations the model measures against record times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    pub(crate) dedup_ms: i64,
    pub(crate) retention_acked_ms: i64,
    pub(crate) retention_pending_ms: i64,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Model {
    windows: Windows,
    /// This partition's id salt (see `Genesis`).
    salt: u16,
    /// Which partition this is, of how many: the model keeps state only for the
    /// tenants that live here.
    partition: (u32, u32),
    pub(crate) catalog: Arc<Catalog>,
    /// The catalog bucket revision of `catalog` (0: none yet). A record proposed under
    /// a later one is applied only after it (see `Envelope::rev`).
    pub(crate) catalog_rev: u64,
    logs: HashMap<TenantId, SeqMap<Meta>>,
    /// Per tenant, the latest event sequence ever committed (deleted ones included).
    log_ends: HashMap<TenantId, u64>,
    /// The latest event sequence of any tenant.
    pub(crate) last_event: u64,
    last_received: UnixMs,
    inboxes: HashMap<InboxKey, Inbox>,
    keys: HashMap<(TenantId, Bytes), Keyed>,
    key_order: VecDeque<(UnixMs, TenantId, Bytes)>,
    /// Every event type seen, interned (see `apply_event`): `Meta::type_id` indexes it.
    types: Vec<Bytes>,
    type_ids: HashMap<Bytes, u32>,
    subs: HashMap<SubKey, SubRun>,
    last_sweep: UnixMs,
    pub(crate) counts: ModelCounts,
}

impl Model {
    pub(crate) fn new(windows: Windows, salt: u16, partition: (u32, u32)) -> Model {
        debug_assert!(partition.0 < partition.1);
        Model {
            windows,
            salt,
            partition,
            catalog: Arc::new(Catalog::default()),
            catalog_rev: 0,
            logs: HashMap::new(),
            log_ends: HashMap::new(),
            last_event: 0,
            last_received: 0,
            inboxes: HashMap::new(),
            keys: HashMap::new(),
            key_order: VecDeque::new(),
            types: Vec::new(),
            type_ids: HashMap::new(),
            subs: HashMap::new(),
            last_sweep: 0,
            counts: ModelCounts::default(),
        }
    }

    fn id_of(&self, seq: u64, received_at: UnixMs) -> EventId {
        EventId::new(received_at, Sequence(seq), self.salt)
    }

    // ---- events ----

    /// Applies an event record at stream sequence `seq`.
    pub(crate) fn apply_event(
        &mut self,
        seq: u64,
        e: &EventRecord,
        fx: &mut Effects,
    ) -> AppendOutcome {
        let received_at = e.received_at.max(self.last_received);
        self.sweep(received_at);
        if let Some((key, fingerprint)) = &e.idempotency {
            // Its own copy: `key` is a view into the whole message, payload and all,
            // which the index would otherwise keep alive for the dedup window.
            let key = &Bytes::copy_from_slice(key);
            if let Some(k) = self.keys.get(&(e.tenant, key.clone())) {
                if k.received_at + self.windows.dedup_ms > received_at {
                    let id = self.id_of(k.seq, k.received_at);
                    return if k.fingerprint == *fingerprint {
                        AppendOutcome::Replayed {
                            id,
                            received_at: k.received_at,
                        }
                    } else {
                        AppendOutcome::KeyReused { id }
                    };
                }
            }
            self.keys.insert(
                (e.tenant, key.clone()),
                Keyed {
                    seq,
                    fingerprint: *fingerprint,
                    received_at,
                },
            );
            self.key_order
                .push_back((received_at, e.tenant, key.clone()));
        }
        // Interned: one allocation per distinct type, shared by every event of it (the
        // record's own field is a view into the whole message, payload included).
        let type_id = match self.type_ids.get(&e.event_type[..]) {
            Some(&id) => id,
            None => {
                let t = Bytes::copy_from_slice(&e.event_type);
                let id = self.types.len() as u32;
                self.types.push(t.clone());
                self.type_ids.insert(t, id);
                id
            }
        };
        self.last_received = received_at;
        self.last_event = seq;
        self.log_ends.insert(e.tenant, seq);
        self.counts.events += 1;
        self.logs.entry(e.tenant).or_default().insert(
            seq,
            Meta {
                received_at,
                type_id,
            },
        );
        let fresh = Slot {
            count: 0,
            until: 0,
            dead: false,
        };
        self.inboxes
            .entry(InboxKey::from(e.tenant))
            .or_insert_with(|| Inbox::new(TypeFilter::All))
            .open
            .insert(seq, fresh);
        // A consumer takes what comes after its start, whether this node learnt of it
        // before this event (here) or after (seeded from the log in `set_catalog`):
        // the same either way, so nodes agree however the catalog and the log interleave.
        for c in self
            .catalog
            .consumers
            .iter()
            .filter(|c| c.tenant == e.tenant && seq > c.start_after.0)
        {
            let key = InboxKey {
                tenant: c.tenant,
                consumer: c.id,
            };
            if let Some(inbox) = self.inboxes.get_mut(&key) {
                if inbox.filter.matches(&e.event_type) {
                    inbox.open.insert(seq, fresh);
                }
            }
        }
        let id = self.id_of(seq, received_at);
        fx.committed.push(Committed {
            id,
            tenant: e.tenant,
            event_type: e.event_type.clone(),
            source: e.source.clone(),
            occurred_at: e.occurred_at.clone(),
            received_at,
            payload: Some(e.payload.clone()),
        });
        fx.notify.push(e.tenant);
        AppendOutcome::Created { id, received_at }
    }

    /// Expires what outlived its window as of `now`: dedup keys, pending events past
    /// `retention.pending`, acked ones past `retention.acked`. At most once per second
    /// of record time, and [`SWEEP_EVENTS_MAX`] events per sweep.
    fn sweep(&mut self, now: UnixMs) {
        if now < self.last_sweep + 1000 {
            return;
        }
        self.last_sweep = now;
        while let Some((at, tenant, key)) = self.key_order.front().cloned() {
            if at + self.windows.dedup_ms > now {
                break;
            }
            self.key_order.pop_front();
            if self
                .keys
                .get(&(tenant, key.clone()))
                .is_some_and(|k| k.received_at == at)
            {
                self.keys.remove(&(tenant, key));
            }
        }
        let acked_before = now - self.windows.retention_acked_ms;
        let pending_before = now - self.windows.retention_pending_ms;
        let mut budget = SWEEP_EVENTS_MAX;
        let tenants: Vec<TenantId> = self.logs.keys().copied().collect();
        for tenant in tenants {
            // Oldest first, stopping at the first event still kept: an acked event
            // behind a pending one waits for it (at most `retention.pending`).
            while let Some((&seq, meta)) = self.logs.get(&tenant).and_then(|l| l.first_key_value())
            {
                if budget == 0 || meta.received_at >= acked_before {
                    break;
                }
                let open = self
                    .inboxes
                    .iter()
                    .any(|(k, i)| k.tenant == tenant && i.open.get(&seq).is_some_and(|s| !s.dead));
                if open && meta.received_at >= pending_before {
                    break; // pending: kept until `retention.pending`
                }
                if open {
                    self.counts.pending_expired += 1;
                }
                budget -= 1;
                self.remove_event(tenant, seq);
            }
        }
    }

    /// Takes an event out of the log and out of every inbox and subscription.
    fn remove_event(&mut self, tenant: TenantId, seq: u64) {
        if let Some(log) = self.logs.get_mut(&tenant) {
            log.remove(&seq);
        }
        for (k, inbox) in self.inboxes.iter_mut() {
            if k.tenant == tenant {
                inbox.open.remove(&seq);
                inbox.acked.remove(&seq);
            }
        }
        for s in self
            .catalog
            .subscriptions
            .iter()
            .filter(|s| s.tenant == tenant)
        {
            if let Some(run) = self.subs.get_mut(&s.key) {
                run.state.window.remove(&seq);
                run.state.replaying.remove(&seq);
                run.state.replay_queue.retain(|&q| q != seq);
                run.state.dead.remove(&seq);
                run.state.advance_cursor();
            }
        }
    }

    // ---- reads ----

    /// An event's type, if `id` is exactly a live event of `tenant`.
    pub(crate) fn event_type(&self, tenant: TenantId, id: EventId) -> Option<&[u8]> {
        self.event(tenant, id)
            .map(|m| &self.types[m.type_id as usize][..])
    }

    /// Whether `id` carries this partition's salt: an id of another deployment or
    /// partition names nothing here, whatever its sequence.
    pub(crate) fn issued_here(&self, id: EventId) -> bool {
        id.salt() == self.salt
    }

    /// An event's metadata, if `id` is exactly a live event of `tenant`.
    fn event(&self, tenant: TenantId, id: EventId) -> Option<&Meta> {
        if !self.issued_here(id) {
            return None;
        }
        let seq = id.sequence().0;
        let meta = self.logs.get(&tenant)?.get(&seq)?;
        (self.id_of(seq, meta.received_at) == id).then_some(meta)
    }

    /// Whether any event of `tenant` between two positions is still in the log.
    pub(crate) fn any_live(&self, tenant: TenantId, from: u64, to: u64) -> bool {
        self.logs.get(&tenant).is_some_and(|l| l.any_in(from, to))
    }

    /// A live event's id and receive time, by sequence.
    pub(crate) fn live(&self, tenant: TenantId, seq: u64) -> Option<(EventId, UnixMs)> {
        let meta = self.logs.get(&tenant)?.get(&seq)?;
        Some((self.id_of(seq, meta.received_at), meta.received_at))
    }

    fn standing(&self, inbox: InboxKey, seq: u64) -> Option<Standing> {
        let i = self.inboxes.get(&inbox)?;
        if let Some(s) = i.open.get(&seq) {
            return Some(Standing::Open(*s));
        }
        i.acked.get(&seq).map(|&c| Standing::Acked(c))
    }

    /// Where `id` stands in `inbox` at `now`, with its delivery count.
    pub(crate) fn state_of(
        &self,
        inbox: InboxKey,
        id: EventId,
        now: UnixMs,
    ) -> Option<(EventState, u32)> {
        self.event(inbox.tenant, id)?;
        match self.standing(inbox, id.sequence().0)? {
            Standing::Open(s) => Some((slot_state(&s, now), s.count)),
            Standing::Acked(c) => Some((EventState::Acked, c)),
        }
    }

    /// A page of a tenant's log after `after` (live events only), with how far it looked.
    pub(crate) fn log_page(
        &self,
        tenant: TenantId,
        after: Option<u64>,
        limit: usize,
        event_type: Option<&str>,
    ) -> (Vec<u64>, Option<u64>, bool) {
        let Some(log) = self.logs.get(&tenant) else {
            return (Vec::new(), after, false);
        };
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut found = Vec::new();
        let mut position = after;
        let mut has_more = false;
        for (scanned, (&seq, meta)) in log.range_from(start).enumerate() {
            if scanned == FETCH_SCAN_EVENTS_MAX || found.len() == limit {
                has_more = true;
                break;
            }
            position = Some(seq);
            if event_type.is_none_or(|t| t.as_bytes() == self.types[meta.type_id as usize]) {
                found.push(seq);
            }
        }
        (found, position, has_more)
    }

    /// The latest sequence of a tenant's log, deleted events included.
    pub(crate) fn log_end(&self, tenant: TenantId) -> Option<u64> {
        self.log_ends.get(&tenant).copied()
    }

    /// A page of an inbox; with `lease`, leases what it lists (and moves events leased
    /// `max_deliveries` times to the dead letters), else only reads.
    pub(crate) fn page(
        &mut self,
        inbox: InboxKey,
        after: Option<u64>,
        limit: usize,
        event_type: Option<&str>,
        lease: Option<(u64, Option<u32>)>,
        now: UnixMs,
    ) -> Page {
        let mut page = Page::default();
        let start = after.map_or(0, |a| a.saturating_add(1));
        let types = &self.types;
        let (Some(i), Some(log)) = (self.inboxes.get_mut(&inbox), self.logs.get(&inbox.tenant))
        else {
            return page;
        };
        for (&seq, slot) in i.open.range_from_mut(start) {
            if slot.dead {
                continue;
            }
            let Some(meta) = log.get(&seq) else { continue };
            if event_type.is_some_and(|t| t.as_bytes() != types[meta.type_id as usize]) {
                continue;
            }
            if let Some((_, max_deliveries)) = lease {
                if slot.until <= now && max_deliveries.is_some_and(|m| slot.count >= m) {
                    slot.dead = true;
                    slot.until = 0;
                    self.counts.dead_lettered += 1;
                    continue;
                }
                if slot.until > now {
                    page.next_visible =
                        Some(page.next_visible.map_or(slot.until, |t| t.min(slot.until)));
                    continue;
                }
            }
            if page.found.len() == limit {
                page.has_more = true;
                break;
            }
            let state = match lease {
                Some((ms, _)) => {
                    slot.until = now.saturating_add(ms as i64);
                    slot.count += 1;
                    EventState::Leased { until: slot.until }
                }
                None => slot_state(slot, now),
            };
            page.found.push((seq, slot.count, state));
        }
        page
    }

    /// A page of an inbox's dead letters, and how far it looked.
    pub(crate) fn dead_page(
        &self,
        inbox: InboxKey,
        after: Option<u64>,
        limit: usize,
    ) -> (Vec<(u64, u32)>, Option<u64>, bool) {
        let Some(i) = self.inboxes.get(&inbox) else {
            return (Vec::new(), None, false);
        };
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut found = Vec::new();
        let mut position = after;
        let mut has_more = false;
        for (scanned, (&seq, slot)) in i.open.range_from(start).enumerate() {
            if scanned == FETCH_SCAN_EVENTS_MAX {
                has_more = true;
                break;
            }
            if !slot.dead {
                position = Some(seq);
                continue;
            }
            if found.len() == limit {
                has_more = true;
                break;
            }
            position = Some(seq);
            found.push((seq, slot.count));
        }
        (found, position, has_more)
    }

    /// Every inbox's pending count and oldest pending receive time.
    pub(crate) fn summaries(&self) -> Vec<InboxSummary> {
        self.inboxes
            .iter()
            .map(|(k, i)| {
                // Dead letters count as pending: not acked, not deleted.
                let oldest = i
                    .open
                    .first_key_value()
                    .map(|(seq, _)| seq)
                    .and_then(|seq| self.logs.get(&k.tenant)?.get(seq))
                    .map(|m| m.received_at);
                InboxSummary {
                    tenant: k.tenant,
                    consumer: k.consumer,
                    pending: i.open.len() as u64,
                    oldest_pending_ms: oldest,
                }
            })
            .collect()
    }

    // ---- records other than events ----

    /// Applies a record other than an event, proposed by `node` at `at`.
    pub(crate) fn apply_op(
        &mut self,
        seq: u64,
        node: u64,
        at: UnixMs,
        op: &Op,
        fx: &mut Effects,
    ) -> Outcome {
        match op {
            Op::Lease {
                inbox,
                after,
                limit,
                event_type,
                lease_ms,
                max_deliveries,
            } => Outcome::Page(self.page(
                (*inbox).into(),
                *after,
                *limit,
                event_type.as_deref(),
                Some((*lease_ms, *max_deliveries)),
                at,
            )),
            Op::Settle {
                inbox,
                ids,
                how,
                leases,
            } => Outcome::Settled(self.settle((*inbox).into(), ids, *how, leases.as_deref(), fx)),
            Op::LeaseAction {
                inbox,
                id,
                extend,
                lease,
                ms,
            } => Outcome::Lease(self.lease_action(
                (*inbox).into(),
                (*id).into(),
                *extend,
                *lease,
                *ms,
                at,
                fx,
            )),
            Op::Fetch(f) => Outcome::Fetched(self.fetch(f, node, at)),
            Op::SettleDeliveries { sub, items } => {
                Outcome::Serials(self.settle_deliveries(SubKey(*sub), items, seq, node, at))
            }
            Op::Replay { sub, seqs } => Outcome::Replayed(self.replay(SubKey(*sub), seqs)),
            Op::Leave => {
                for run in self.subs.values_mut() {
                    if run.owner == Some(node) {
                        run.owner = None;
                        run.state.recovered();
                    }
                }
                Outcome::Done
            }
        }
    }

    /// Takes the catalog at bucket revision `rev`, starting what it added and dropping
    /// what it removed.
    pub(crate) fn set_catalog(&mut self, rev: u64, next: Arc<Catalog>) {
        if rev <= self.catalog_rev {
            return;
        }
        self.catalog_rev = rev;
        let (index, count) = self.partition;
        let owns = move |t: TenantId| t.0 % count == index;
        let before: HashSet<(TenantId, ConsumerId)> = self
            .catalog
            .consumers
            .iter()
            .map(|c| (c.tenant, c.id))
            .collect();
        let after: HashSet<(TenantId, ConsumerId)> =
            next.consumers.iter().map(|c| (c.tenant, c.id)).collect();
        for (tenant, consumer) in before.difference(&after) {
            self.inboxes.remove(&InboxKey {
                tenant: *tenant,
                consumer: *consumer,
            });
        }
        for c in next
            .consumers
            .iter()
            .filter(|c| owns(c.tenant) && !before.contains(&(c.tenant, c.id)))
        {
            let filter = TypeFilter::of_patterns(&c.event_types);
            let mut inbox = Inbox::new(filter);
            if let Some(log) = self.logs.get(&c.tenant) {
                for (&seq, meta) in log.range_from(c.start_after.0.saturating_add(1)) {
                    if inbox.filter.matches(&self.types[meta.type_id as usize]) {
                        inbox.open.insert(
                            seq,
                            Slot {
                                count: 0,
                                until: 0,
                                dead: false,
                            },
                        );
                    }
                }
            }
            self.inboxes.insert(
                InboxKey {
                    tenant: c.tenant,
                    consumer: c.id,
                },
                inbox,
            );
        }
        let keys: HashSet<SubKey> = next.subscriptions.iter().map(|s| s.key).collect();
        self.subs.retain(|k, _| keys.contains(k));
        for s in next.subscriptions.iter().filter(|s| owns(s.tenant)) {
            self.subs.entry(s.key).or_insert_with(|| SubRun {
                state: SubState::new(s.start_after.0),
                owner: None,
                owner_until: 0,
                owner_lease_ms: 0,
            });
        }
        self.catalog = next;
    }

    fn settle(
        &mut self,
        inbox: InboxKey,
        ids: &[super::record::IdRef],
        how: How,
        leases: Option<&[u32]>,
        fx: &mut Effects,
    ) -> Vec<SettleOutcome> {
        // A delete is the log's: checked against the tenant's default inbox.
        let inbox = if how == How::Delete {
            InboxKey::from(inbox.tenant)
        } else {
            inbox
        };
        let mut outcomes = Vec::with_capacity(ids.len());
        for (n, &id) in ids.iter().enumerate() {
            let id = EventId::from(id);
            let lease = leases.and_then(|l| l.get(n).copied());
            let seq = id.sequence().0;
            let standing = self
                .event(inbox.tenant, id)
                .and_then(|_| self.standing(inbox, seq));
            let outcome = match (how, standing) {
                (_, None) => SettleOutcome::NotFound,
                (How::Delete, Some(_)) => {
                    self.remove_event(inbox.tenant, seq);
                    SettleOutcome::Done
                }
                (How::Requeue, Some(Standing::Open(s))) if s.dead => {
                    self.set_slot(inbox, seq, |s| {
                        s.dead = false;
                        s.until = 0;
                        s.count = 0;
                    });
                    fx.notify.push(inbox.tenant);
                    SettleOutcome::Done
                }
                (How::Requeue, _) => SettleOutcome::NotFound,
                (How::Dead, Some(Standing::Open(s))) if s.dead => SettleOutcome::AlreadyDone,
                (How::Dead, Some(Standing::Open(_))) => {
                    self.set_slot(inbox, seq, |s| {
                        s.dead = true;
                        s.until = 0;
                    });
                    SettleOutcome::Done
                }
                (How::Dead, _) => SettleOutcome::NotFound,
                (How::Ack, Some(Standing::Acked(_))) => SettleOutcome::AlreadyDone,
                (How::Ack, Some(Standing::Open(s)))
                    if !s.dead && lease.is_some_and(|l| l != s.count) =>
                {
                    SettleOutcome::LeaseExpired
                }
                (How::Ack, Some(Standing::Open(s))) => {
                    if let Some(i) = self.inboxes.get_mut(&inbox) {
                        i.open.remove(&seq);
                        i.acked.insert(seq, s.count);
                    }
                    SettleOutcome::Done
                }
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    fn set_slot(&mut self, inbox: InboxKey, seq: u64, f: impl FnOnce(&mut Slot)) {
        if let Some(s) = self
            .inboxes
            .get_mut(&inbox)
            .and_then(|i| i.open.get_mut(&seq))
        {
            f(s);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn lease_action(
        &mut self,
        inbox: InboxKey,
        id: EventId,
        extend: bool,
        lease: Option<u32>,
        ms: u64,
        now: UnixMs,
        fx: &mut Effects,
    ) -> LeaseOutcome {
        let until = now.saturating_add(ms as i64);
        if self.event(inbox.tenant, id).is_none() {
            return LeaseOutcome::NotFound;
        }
        let Some(slot) = self
            .inboxes
            .get_mut(&inbox)
            .and_then(|i| i.open.get_mut(&id.sequence().0))
        else {
            return LeaseOutcome::NotFound;
        };
        if slot.dead {
            return LeaseOutcome::NotFound;
        }
        let lease = if extend {
            lease.or(Some(slot.count))
        } else {
            lease
        };
        if lease.is_some_and(|l| l != slot.count) {
            return LeaseOutcome::Stale;
        }
        slot.until = if until > now { until } else { 0 };
        if until <= now {
            fx.notify.push(inbox.tenant);
        }
        LeaseOutcome::Done { visible_at: until }
    }

    // ---- push delivery ----

    /// The node that dispatches `key` now, if one does (by `now`).
    pub(crate) fn owner(&self, key: SubKey, now: UnixMs) -> Option<(u64, UnixMs)> {
        let run = self.subs.get(&key)?;
        let owner = run.owner?;
        let until = run.owner_until;
        (until > now).then_some((owner, until))
    }

    /// Whether a fetch for `key` would hand anything out now, without changing
    /// anything: lets a node skip proposing a fetch that is known to be empty.
    pub(crate) fn has_due(&self, key: SubKey, tenant: TenantId, now: UnixMs) -> bool {
        let Some(run) = self.subs.get(&key) else {
            return false;
        };
        let s = &run.state;
        let due = |e: &crate::embedded::deliveries::Entry| !e.in_flight && e.due_at <= now;
        s.window.values().any(due)
            || s.replaying.values().any(due)
            || !s.replay_queue.is_empty()
            || self.log_end(tenant).is_some_and(|end| end > s.read_pos)
    }

    /// The earliest retry of `key` that is not due yet.
    pub(crate) fn next_due(&self, key: SubKey, now: UnixMs) -> Option<UnixMs> {
        let s = &self.subs.get(&key)?.state;
        s.window
            .values()
            .chain(s.replaying.values())
            .filter(|e| !e.in_flight && e.due_at > now)
            .map(|e| e.due_at)
            .min()
    }

    /// A fetch, as `node` proposed it at `now`. The subscription's filter, ordering and
    /// window come from the record, not from this node's catalog, which may be a
    /// change ahead or behind another node's at this point of the log.
    fn fetch(&mut self, f: &FetchRecord, node: u64, now: UnixMs) -> Picks {
        let key = SubKey(f.sub);
        let tenant = TenantId(f.tenant);
        let max = f.max;
        let Some(run) = self.subs.get_mut(&key) else {
            return Picks::default();
        };
        if let Some(owner) = run.owner {
            if owner != node && run.owner_until > now {
                return Picks {
                    picks: Vec::new(),
                    next_due_at: Some(run.owner_until),
                };
            }
        }
        if run.owner != Some(node) {
            // A takeover: what the last owner had in flight is handed out again.
            run.owner = Some(node);
            run.state.recovered();
        }
        run.owner_lease_ms = f.owner_lease_ms;
        run.owner_until = now.saturating_add(f.owner_lease_ms);
        let state = &mut run.state;
        // A node that read the log from a later start (the stream's head aged out)
        // catches up to where the proposer had read; for a node that read it all, the
        // hint is never ahead of its own position (the proposer had applied less).
        state.read_pos = state.read_pos.max(f.read_pos_hint);
        let filter = TypeFilter::of_patterns(&f.event_types);
        let fifo = f.fifo;
        let cap = if fifo {
            1
        } else {
            f.max_in_flight.clamp(1, WINDOW_MAX)
        };
        let log = self.logs.get(&tenant);
        let types = &self.types;
        let live = |seq: u64| log.is_some_and(|l| l.contains_key(&seq));
        // What was handed out and is gone from the log since leaves the window, as done.
        let gone: Vec<u64> = state.window.keys().copied().filter(|&s| !live(s)).collect();
        for seq in gone {
            state.window.remove(&seq);
        }
        state.replaying.retain(|&s, _| live(s));
        state.advance_cursor();
        let mut fetch = state.fetch_due(FetchShape { fifo, cap, max }, now, live);
        let mut pulled = Vec::new();
        let mut free = fetch.new_max;
        if free > 0 {
            if let Some(log) = log {
                for (scanned, (&seq, meta)) in
                    log.range_from(state.read_pos.saturating_add(1)).enumerate()
                {
                    if free == 0 || scanned == FETCH_SCAN_EVENTS_MAX {
                        break;
                    }
                    state.read_pos = seq;
                    if filter.matches(&types[meta.type_id as usize]) {
                        pulled.push(seq);
                        fetch.picks.push((seq, 1, false));
                        free -= 1;
                    }
                }
            }
            if free > 0 {
                // Everything after was looked at (other tenants' sequences, deleted
                // events): the read position moves to the tenant's log end.
                if let Some(end) = self.log_ends.get(&tenant) {
                    state.read_pos = state.read_pos.max(*end);
                }
            }
        }
        let (mut picks, next_due_at, replay_pulled) =
            (fetch.picks, fetch.next_due_at, fetch.replay_pulled);
        state.pull(&pulled, &replay_pulled);
        state.advance_cursor();
        picks.sort_by_key(|(seq, _, replay)| (!*replay, *seq));
        Picks { picks, next_due_at }
    }

    /// Settles deliveries by a record at stream sequence `seq`. An attempt's serial is
    /// made of the record's sequence and its place in it, so every node numbers it the
    /// same whatever part of the log it read (attempt ids and cursors agree).
    fn settle_deliveries(
        &mut self,
        key: SubKey,
        items: &[SettledRecord],
        seq: u64,
        node: u64,
        now: UnixMs,
    ) -> Vec<Option<u64>> {
        let Some(run) = self.subs.get_mut(&key) else {
            return vec![None; items.len()];
        };
        if run.owner == Some(node) {
            run.owner_until = now.saturating_add(run.owner_lease_ms);
        }
        debug_assert!(items.len() <= SETTLES_PER_RECORD_MAX);
        let record_seq = seq;
        let mut serials = Vec::with_capacity(items.len());
        for (n, r) in items.iter().enumerate() {
            let seq = r.seq.unwrap_or(0);
            if seq != 0 && !run.state.awaits(seq, r.replay) {
                serials.push(None);
                continue;
            }
            let serial = (record_seq << SERIAL_SHIFT) | n as u64;
            let s = r.settled(serial);
            run.state.settle(&Item {
                seq,
                replay: s.replay,
                next: s.next,
                attempt: s.attempt,
            });
            serials.push(Some(serial));
        }
        run.state.advance_cursor();
        serials
    }

    fn replay(&mut self, key: SubKey, seqs: &[u64]) -> Option<u64> {
        let Some(run) = self.subs.get_mut(&key) else {
            return Some(0);
        };
        if run.state.replay_queue.len() + seqs.len() > REPLAY_QUEUE_MAX {
            return None;
        }
        run.state
            .apply_replay(&crate::embedded::control::ReplayRequest {
                sub: key,
                at: 0,
                seqs: seqs.to_vec(),
            });
        Some(seqs.len() as u64)
    }

    /// A subscription's state, for reads.
    pub(crate) fn sub_state(&self, key: SubKey) -> Option<&SubState> {
        self.subs.get(&key).map(|r| &r.state)
    }

    /// Matching live events of `key`'s tenant after its read position (the part of the
    /// backlog not yet pulled).
    pub(crate) fn unread(&self, key: SubKey, tenant: TenantId, filter: &TypeFilter) -> u64 {
        let Some(run) = self.subs.get(&key) else {
            return 0;
        };
        self.logs.get(&tenant).map_or(0, |l| {
            l.range_from(run.state.read_pos.saturating_add(1))
                .filter(|(_, m)| filter.matches(&self.types[m.type_id as usize]))
                .count() as u64
        })
    }

    /// Live events of `tenant` received in `since..until`, matching `filter`, oldest
    /// first, at most `max`.
    pub(crate) fn received_between(
        &self,
        tenant: TenantId,
        filter: &TypeFilter,
        since: UnixMs,
        until: Option<UnixMs>,
        max: usize,
    ) -> Vec<u64> {
        self.logs.get(&tenant).map_or_else(Vec::new, |l| {
            l.iter()
                .filter(|(_, m)| m.received_at >= since && until.is_none_or(|u| m.received_at < u))
                .filter(|(_, m)| filter.matches(&self.types[m.type_id as usize]))
                .map(|(&s, _)| s)
                .take(max)
                .collect()
        })
    }
}

/// Where an open entry stands at `now`.
fn slot_state(s: &Slot, now: UnixMs) -> EventState {
    if s.dead {
        EventState::Dead
    } else if s.until > now {
        EventState::Leased { until: s.until }
    } else {
        EventState::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jetstream::record::{IdRef, Origin};

    const DAY: i64 = 24 * 3600 * 1000;

    fn model() -> Model {
        Model::new(
            Windows {
                dedup_ms: DAY,
                retention_acked_ms: 7 * DAY,
                retention_pending_ms: 30 * DAY,
            },
            7,
            (0, 1),
        )
    }

    fn event(at: UnixMs, key: Option<&'static [u8]>) -> EventRecord {
        EventRecord {
            origin: Origin { node: 1, nonce: 1 },
            tenant: TenantId(1),
            received_at: at,
            event_type: Bytes::from_static(b"t"),
            source: None,
            occurred_at: None,
            idempotency: key.map(|k| (Bytes::from_static(k), [1; 16])),
            payload: Bytes::from_static(b"{}"),
        }
    }

    fn created(o: AppendOutcome) -> EventId {
        match o {
            AppendOutcome::Created { id, .. } => id,
            other => panic!("expected Created, got {other:?}"),
        }
    }

    /// Retention as the embedded engine keeps it, measured on record time: acked events
    /// go after `retention.acked`, pending ones after `retention.pending` (counted as
    /// expired), and idempotency keys after the dedup window.
    #[test]
    fn retention_and_the_dedup_window_expire_on_record_time() {
        let mut m = model();
        let mut fx = Effects::default();
        let t0 = 1_700_000_000_000;
        let acked = created(m.apply_event(1, &event(t0, Some(b"k")), &mut fx));
        let pending = created(m.apply_event(2, &event(t0, None), &mut fx));
        let inbox = InboxKey::from(TenantId(1));
        let out = m.settle(inbox, &[IdRef::from(acked)], How::Ack, None, &mut fx);
        assert_eq!(out, vec![SettleOutcome::Done]);

        // Within the dedup window the key replays; past it, it makes a new event.
        let replay = m.apply_event(3, &event(t0 + DAY - 1, Some(b"k")), &mut fx);
        assert!(matches!(replay, AppendOutcome::Replayed { id, .. } if id == acked));
        created(m.apply_event(4, &event(t0 + DAY + 1_001, Some(b"k")), &mut fx));

        // Past retention.acked: the acked event is gone, the pending one stays.
        m.apply_event(5, &event(t0 + 7 * DAY + 1_001, None), &mut fx);
        assert!(m.state_of(inbox, acked, t0 + 8 * DAY).is_none());
        assert_eq!(
            m.state_of(inbox, pending, t0 + 8 * DAY),
            Some((EventState::Pending, 0))
        );
        assert_eq!(m.counts.pending_expired, 0);

        // Past retention.pending: the pending one goes too, counted as expired.
        m.apply_event(6, &event(t0 + 30 * DAY + 2_002, None), &mut fx);
        assert!(m.state_of(inbox, pending, t0 + 31 * DAY).is_none());
        assert_eq!(m.counts.pending_expired, 1);
    }
}
