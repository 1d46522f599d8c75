//! The embedded engine's push-delivery operations: [`crate::Store`]'s subscription
//! methods over [`super::deliveries`].
//!
//! State changes happen under the index lock, in memory, and their record goes to the
//! writer before the lock is released (`try_send` never waits), so records reach the
//! log in the order the changes were made. A settle waits for its record to be
//! durable; a pull does not (a pull lost in a crash only hands its events out again).

use tokio::sync::oneshot;

use super::control::{Control, Item, ReplayRequest, ITEMS_MAX};
use super::deliveries::{DeliveryStates, SubState};
use super::error::EngineError;
use super::index::{
    Index, SegmentMeta, StreamInterner, TypeInterner, STATE_DELETED, STATE_EXPIRED,
};
use super::reader::{self, Span, SPAN_BYTES_MAX};
use super::writer::Command;
use super::EmbeddedStore;
use crate::catalog::{Ordering, SubKey, Subscription};
use crate::delivery::{
    AttemptPage, AttemptQuery, DeadLetter, DeadLetterPage, Delivery, DeliveryState, Fetched,
    Replay, Settled, REPLAY_EVENTS_MAX, REPLAY_QUEUE_MAX,
};
use crate::error::StoreError;
use crate::feed::TypeFilter;
use crate::types::{LogQuery, Sequence, TenantId};

/// Events a fetch looks at, at most, for new deliveries (stream keys in memory).
const FETCH_SCAN_EVENTS_MAX: usize = 64 << 10;

/// Events a backlog count looks at per query, at most: past it the count is what was
/// counted so far (it goes on from there at the next query).
const BACKLOG_SCAN_EVENTS_MAX: usize = 16 << 20;

/// Largest window a subscription may have (the API's bound on `max_in_flight`).
const WINDOW_MAX: usize = 1000;

/// A subscription's filter, from its event types.
fn filter_of(sub: &Subscription) -> TypeFilter {
    TypeFilter::of_patterns(&sub.event_types)
}

/// Whether the event with stream key `key` is one `sub` delivers (cached per key).
fn matches(
    state: &mut SubState,
    index_streams: &StreamInterner,
    types: &TypeInterner,
    tenant: TenantId,
    filter: &TypeFilter,
    key: u32,
) -> bool {
    *state.matches.entry(key).or_insert_with(|| {
        let (t, type_id) = index_streams.get(key);
        t == tenant && filter.matches(types.name(type_id))
    })
}

/// The span that reads the event `seq` of `seg` alone.
fn span_of(seg: &SegmentMeta, seq: u64) -> Span {
    let i = (seq - seg.base_seq) as usize;
    let start = u64::from(seg.offsets[i]);
    let end = seg.offsets.get(i + 1).map_or(seg.bytes, |&o| u64::from(o));
    Span {
        file: seg.file.clone(),
        path: seg.path.clone(),
        start,
        end,
        records: vec![(Sequence(seq), start)],
    }
}

/// Spans for `seqs` (ascending): consecutive records share one read.
fn spans_for(segments: &[SegmentMeta], seqs: &[u64]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for &seq in seqs {
        let Some(si) = super::index::segment_of(segments, Sequence(seq)) else {
            continue; // retention removed it meanwhile: nothing to deliver
        };
        let seg = &segments[si];
        let one = span_of(seg, seq);
        match spans.last_mut() {
            Some(s)
                if s.path == one.path
                    && s.end == one.start
                    && one.end - s.start <= SPAN_BYTES_MAX =>
            {
                s.end = one.end;
                s.records.push((Sequence(seq), one.start));
            }
            _ => spans.push(one),
        }
    }
    spans
}

/// Whether `seq` is still a live event (not deleted, not expired, not removed).
fn live(segments: &[SegmentMeta], seq: u64) -> bool {
    match super::index::segment_of(segments, Sequence(seq)) {
        Some(si) => {
            let seg = &segments[si];
            !matches!(
                seg.states[(seq - seg.base_seq) as usize],
                STATE_DELETED | STATE_EXPIRED
            )
        }
        None => false,
    }
}

impl EmbeddedStore {
    /// The subscription with this key, as the catalog has it now.
    fn subscription(&self, key: SubKey) -> Result<Subscription, StoreError> {
        let catalog = self.inner.catalog.current.borrow().clone();
        catalog
            .subscriptions
            .iter()
            .find(|s| s.key == key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("subscription {}", key.0)))
    }

    /// Sends a control record to the writer; with `wait`, answers once it is durable.
    fn send_control(
        &self,
        control: Control,
        wait: bool,
    ) -> Result<Option<oneshot::Receiver<Result<(), EngineError>>>, StoreError> {
        let queue = self.queue.as_ref().ok_or(EngineError::Closed)?;
        let (done, rx) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        queue.send(Command::Control { control, done })?;
        Ok(rx)
    }

    pub(super) async fn fetch_deliveries_impl(
        &self,
        key: SubKey,
        max: usize,
    ) -> Result<Fetched, StoreError> {
        let sub = self.subscription(key)?;
        let filter = filter_of(&sub);
        let now = self.inner.clock.now_ms();
        let fifo = sub.ordering == Ordering::Fifo;
        let cap = if fifo {
            1
        } else {
            (sub.max_in_flight as usize).clamp(1, WINDOW_MAX)
        };
        let (spans, attempts, next_due_at) = {
            let mut guard = self.inner.index.lock();
            let Index {
                segments,
                streams,
                types,
                deliveries,
                ..
            } = &mut *guard;
            let DeliveryStates { subs, .. } = deliveries;
            let state = subs
                .entry(key)
                .or_insert_with(|| SubState::new(sub.start_after.0));
            if state.patterns != sub.event_types {
                state.matches.clear();
                state.patterns = sub.event_types.clone();
                let at = state.read_pos;
                state.forget_counted(at);
            }
            // Due entries first (replays, then the window), then new ones.
            let mut fetch = state.fetch_due(
                super::deliveries::FetchShape { fifo, cap, max },
                now,
                |seq| live(segments, seq),
            );
            let mut pulled = Vec::new();
            let mut free = fetch.new_max;
            if free > 0 {
                // New events, from the read position on.
                let mut scanned = 0;
                let start = state.read_pos + 1;
                let first = segments.partition_point(|s| s.end_seq() <= start);
                'scan: for seg in &segments[first..] {
                    for seq in start.max(seg.base_seq)..seg.end_seq() {
                        if free == 0 || scanned == FETCH_SCAN_EVENTS_MAX {
                            break 'scan;
                        }
                        scanned += 1;
                        let i = (seq - seg.base_seq) as usize;
                        state.read_pos = seq;
                        if matches!(seg.states[i], STATE_DELETED | STATE_EXPIRED) {
                            continue;
                        }
                        if matches(state, streams, types, sub.tenant, &filter, seg.keys[i]) {
                            pulled.push(seq);
                            fetch.picks.push((seq, 1, false));
                            free -= 1;
                        }
                    }
                }
            }
            let (mut picks, next_due_at, replay_pulled) =
                (fetch.picks, fetch.next_due_at, fetch.replay_pulled);
            // Recorded with the next settle, not now (see `SubState::unrecorded`): a pull
            // lost in a crash only hands its events out again.
            state.pull(&pulled, &replay_pulled);
            state.unrecorded.pulled.extend_from_slice(&pulled);
            state
                .unrecorded
                .replay_pulled
                .extend_from_slice(&replay_pulled);
            picks.sort_by_key(|(seq, _, replay)| (!*replay, *seq));
            let seqs: Vec<u64> = picks.iter().map(|(s, ..)| *s).collect();
            let mut sorted = seqs.clone();
            sorted.sort_unstable();
            sorted.dedup();
            (spans_for(segments, &sorted), picks, next_due_at)
        };
        let (salt, tenant) = (self.inner.salt, sub.tenant);
        let events = reader::read(&self.inner.counters, spans, move |spans, mode| {
            reader::read_spans(salt, tenant, None, spans, mode)
        })
        .await?;
        let mut deliveries = Vec::with_capacity(attempts.len());
        for (seq, attempt, replay) in attempts {
            match events.iter().find(|e| e.id.sequence().0 == seq) {
                Some(event) => deliveries.push(Delivery {
                    event: event.clone(),
                    attempt,
                    replay,
                }),
                None => self.drop_unreadable(key, seq, replay),
            }
        }
        Ok(Fetched {
            deliveries,
            next_due_at,
        })
    }

    /// An event handed out that is no longer in the log (deleted, or removed by
    /// retention, since): it leaves the window, as if done.
    fn drop_unreadable(&self, key: SubKey, seq: u64, replay: bool) {
        let mut index = self.inner.index.lock();
        if let Some(state) = index.deliveries.subs.get_mut(&key) {
            let entries = if replay {
                &mut state.replaying
            } else {
                &mut state.window
            };
            entries.remove(&seq);
            state.advance_cursor();
        }
    }

    pub(super) async fn settle_deliveries_impl(
        &self,
        key: SubKey,
        settled: Vec<Settled>,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let now = self.inner.clock.now_ms();
        let mut waits = Vec::new();
        let mut serials = Vec::with_capacity(settled.len());
        for chunk in settled.chunks(ITEMS_MAX) {
            let rx = {
                let mut guard = self.inner.index.lock();
                let DeliveryStates { subs, next_serial } = &mut guard.deliveries;
                let Some(state) = subs.get_mut(&key) else {
                    return Err(StoreError::NotFound(format!("subscription {}", key.0)));
                };
                let mut items = Vec::with_capacity(chunk.len());
                for s in chunk {
                    let seq = s.seq.map_or(0, |q| q.0);
                    if seq != 0 && !state.awaits(seq, s.replay) {
                        serials.push(None);
                        continue; // stale: not handed out, or already settled
                    }
                    let mut attempt = s.attempt.clone();
                    attempt.serial = *next_serial;
                    serials.push(Some(attempt.serial));
                    *next_serial += 1;
                    let item = Item {
                        seq,
                        replay: s.replay,
                        next: s.next,
                        attempt,
                    };
                    state.settle(&item);
                    items.push(item);
                }
                if items.is_empty() {
                    continue;
                }
                state.advance_cursor();
                let pulls = std::mem::take(&mut state.unrecorded);
                let record = state.record(key, now, pulls.pulled, pulls.replay_pulled, items);
                match self.send_control(Control::Deliveries(record.clone()), true) {
                    Ok(rx) => rx,
                    Err(e) => {
                        // Not recorded: the pulls wait for the next record.
                        state.unrecorded.pulled = record.pulled;
                        state.unrecorded.replay_pulled = record.replay_pulled;
                        return Err(e);
                    }
                }
            };
            waits.extend(rx);
        }
        for rx in waits {
            match rx.await {
                Ok(result) => result?,
                Err(_) => return Err(EngineError::Closed.into()),
            }
        }
        Ok(serials)
    }

    pub(super) async fn delivery_state_impl(
        &self,
        key: SubKey,
    ) -> Result<DeliveryState, StoreError> {
        let sub = self.subscription(key)?;
        let filter = filter_of(&sub);
        let mut guard = self.inner.index.lock();
        let Index {
            segments,
            streams,
            types,
            deliveries,
            ..
        } = &mut *guard;
        let state = deliveries
            .subs
            .entry(key)
            .or_insert_with(|| SubState::new(sub.start_after.0));
        if state.patterns != sub.event_types {
            state.matches.clear();
            state.patterns = sub.event_types.clone();
            let at = state.read_pos;
            state.forget_counted(at);
        }
        // Count the matching events after what was counted, up to the log's end.
        let start = state.counted_to.max(state.read_pos) + 1;
        let first = segments.partition_point(|s| s.end_seq() <= start);
        let mut scanned = 0;
        'count: for seg in &segments[first..] {
            for seq in start.max(seg.base_seq)..seg.end_seq() {
                if scanned == BACKLOG_SCAN_EVENTS_MAX {
                    break 'count;
                }
                scanned += 1;
                let i = (seq - seg.base_seq) as usize;
                state.counted_to = seq;
                if !matches!(seg.states[i], STATE_DELETED | STATE_EXPIRED)
                    && matches(state, streams, types, sub.tenant, &filter, seg.keys[i])
                {
                    state.counted += 1;
                }
            }
        }
        let backlog = state.counted
            + (state.window.len() + state.replaying.len() + state.replay_queue.len()) as u64;
        Ok(DeliveryState {
            backlog,
            in_flight: state.in_flight(),
            retrying: state.retrying(),
            dead_letters: state.dead.len() as u64,
            last_success_at: state.last_success_at,
            last_failure_at: state.last_failure_at,
            failing_since: state.failing_since,
            position: Sequence(state.cursor),
        })
    }

    pub(super) async fn attempts_impl(
        &self,
        key: SubKey,
        query: AttemptQuery,
    ) -> Result<AttemptPage, StoreError> {
        self.subscription(key)?;
        let index = self.inner.index.lock();
        Ok(index
            .deliveries
            .subs
            .get(&key)
            .map_or_else(AttemptPage::default, |state| state.attempt_page(&query)))
    }

    pub(super) async fn dead_letters_impl(
        &self,
        key: SubKey,
        after: Option<Sequence>,
        limit: usize,
    ) -> Result<DeadLetterPage, StoreError> {
        let sub = self.subscription(key)?;
        let limit = limit.clamp(1, 1000);
        let (found, has_more, spans) = {
            let index = self.inner.index.lock();
            let Some(state) = index.deliveries.subs.get(&key) else {
                return Ok(DeadLetterPage::default());
            };
            let from = after.map_or(0, |s| s.0 + 1);
            let mut range = state.dead.range(from..);
            let found: Vec<(u64, super::deliveries::Dead)> =
                range.by_ref().take(limit).map(|(s, d)| (*s, *d)).collect();
            let has_more = range.next().is_some();
            let seqs: Vec<u64> = found.iter().map(|(s, _)| *s).collect();
            (found, has_more, spans_for(&index.segments, &seqs))
        };
        let (salt, tenant) = (self.inner.salt, sub.tenant);
        let events = reader::read(&self.inner.counters, spans, move |spans, mode| {
            reader::read_spans(salt, tenant, None, spans, mode)
        })
        .await?;
        let next = found.last().map(|(s, _)| Sequence(*s));
        let dead = found
            .into_iter()
            .filter_map(|(seq, d)| {
                let event = events.iter().find(|e| e.id.sequence().0 == seq)?.clone();
                Some(DeadLetter {
                    event,
                    dead_at: d.at,
                    attempts: d.attempts,
                })
            })
            .collect();
        Ok(DeadLetterPage {
            dead,
            next,
            has_more,
        })
    }

    pub(super) async fn replay_impl(&self, key: SubKey, what: Replay) -> Result<u64, StoreError> {
        let sub = self.subscription(key)?;
        let filter = filter_of(&sub);
        let seqs = match what {
            Replay::Ids(ids) => {
                let mut seqs = Vec::new();
                for id in ids {
                    if let Some(e) = crate::Store::get(self, sub.tenant, id).await? {
                        if filter.matches(&e.event_type) {
                            seqs.push(id.sequence().0);
                        }
                    }
                }
                seqs
            }
            Replay::Range { since, until } => {
                self.replay_range(&sub, &filter, since, until).await?
            }
        };
        let mut seqs = seqs;
        seqs.sort_unstable();
        seqs.dedup();
        if seqs.is_empty() {
            return Ok(0);
        }
        let now = self.inner.clock.now_ms();
        let rx = {
            let mut guard = self.inner.index.lock();
            let state = guard
                .deliveries
                .subs
                .entry(key)
                .or_insert_with(|| SubState::new(sub.start_after.0));
            if state.replay_queue.len() + seqs.len() > REPLAY_QUEUE_MAX {
                return Err(StoreError::Overloaded);
            }
            let request = ReplayRequest {
                sub: key,
                at: now,
                seqs: seqs.clone(),
            };
            state.apply_replay(&request);
            self.send_control(Control::Replay(request), true)?
        };
        if let Some(rx) = rx {
            match rx.await {
                Ok(result) => result?,
                Err(_) => return Err(EngineError::Closed.into()),
            }
        }
        Ok(seqs.len() as u64)
    }

    /// The subscription's matching events received in `since..until`, oldest first,
    /// at most [`REPLAY_EVENTS_MAX`].
    async fn replay_range(
        &self,
        sub: &Subscription,
        filter: &TypeFilter,
        since: i64,
        until: Option<i64>,
    ) -> Result<Vec<u64>, StoreError> {
        // Receive times never go backwards in the log: start at the first segment whose
        // newest event is not older than `since`.
        let mut after = {
            let index = self.inner.index.lock();
            let first = index.segments.partition_point(|s| s.received_last < since);
            index
                .segments
                .get(first)
                .map(|s| Sequence(s.base_seq.saturating_sub(1)))
        };
        let mut seqs = Vec::new();
        loop {
            let page = crate::Store::read_log(
                self,
                LogQuery {
                    tenant: sub.tenant,
                    after,
                    limit: 1000,
                    event_type: None,
                },
            )
            .await?;
            for e in &page.events {
                if until.is_some_and(|u| e.received_at >= u) {
                    return Ok(seqs);
                }
                if e.received_at >= since && filter.matches(&e.event_type) {
                    seqs.push(e.id.sequence().0);
                    if seqs.len() == REPLAY_EVENTS_MAX {
                        return Ok(seqs);
                    }
                }
            }
            if !page.has_more || page.position.is_none() {
                return Ok(seqs);
            }
            after = page.position;
        }
    }

    /// Forgets a deleted subscription's state.
    pub(super) fn forget_subscription(&self, key: SubKey) {
        self.inner.index.lock().deliveries.subs.remove(&key);
    }
}
