//! Each subscription's delivery state in memory: the embedded engine's half of
//! [`crate::delivery`].
//!
//! Per subscription:
//! - `cursor`: every matching event up to it is done (delivered or dead);
//! - `read_pos`: every event up to it has been looked at (pulled into the window, or
//!   skipped as not matching);
//! - `window`: the events pulled and not yet done, each in flight or waiting for its
//!   retry: at most `max_in_flight` entries (one with FIFO ordering);
//! - the replay queue and the replays in flight, the dead letters, and the last
//!   [`ATTEMPTS_KEPT_MAX`] attempts.
//!
//! So every matching event in `(cursor, read_pos]` outside the window is done. That is
//! the fact recovery needs: the window's membership is durable (each pull is recorded
//! before the settle that ends it, in the queue's order), so after a crash the window
//! is rebuilt exactly, and only what was in flight is handed out again.
//!
//! Every change goes through [`SubState::apply`], from a record: the live path builds
//! the record, applies it, and sends it to the writer; recovery applies the records it
//! reads. The two cannot disagree.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::control::{Control, Deliveries, Item, ReplayRequest};
use crate::catalog::SubKey;
use crate::delivery::{
    Attempt, AttemptOutcome, AttemptPage, AttemptQuery, Next, ATTEMPTS_KEPT_MAX, REPLAY_QUEUE_MAX,
};
use crate::types::UnixMs;

/// One pulled event, not yet done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Attempts made so far.
    pub(crate) attempts: u32,
    /// When it may be tried (again).
    pub(crate) due_at: UnixMs,
    /// Handed out and not yet settled.
    pub(crate) in_flight: bool,
}

/// A dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dead {
    pub(crate) at: UnixMs,
    pub(crate) attempts: u32,
}

/// One subscription's state; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct SubState {
    pub(crate) cursor: u64,
    pub(crate) read_pos: u64,
    pub(crate) window: BTreeMap<u64, Entry>,
    pub(crate) replay_queue: VecDeque<u64>,
    pub(crate) replaying: BTreeMap<u64, Entry>,
    pub(crate) dead: BTreeMap<u64, Dead>,
    /// Oldest first.
    pub(crate) attempts: VecDeque<Attempt>,
    pub(crate) last_success_at: Option<UnixMs>,
    pub(crate) last_failure_at: Option<UnixMs>,
    pub(crate) failing_since: Option<UnixMs>,
    /// Whether each stream key (tenant, type) matches the subscription, for the
    /// subscription's event types as of `patterns`.
    pub(crate) matches: HashMap<u32, bool>,
    pub(crate) patterns: Vec<String>,
    /// Matching events in `(read_pos, counted_to]`, for the backlog: counted as the log
    /// grows, not per query.
    pub(crate) counted: u64,
    pub(crate) counted_to: u64,
    /// Pulls not yet in a record: they ride with the next settle's record. Until then
    /// the durable state has them after its `read_pos`, so a crash hands them out
    /// again, which they needed anyway (they were in flight). One record per settle
    /// instead of one more per fetch halved the writer's work per delivery. At most
    /// the window's size.
    pub(crate) unrecorded: Pulls,
}

/// Pulls waiting for a record.
#[derive(Debug, Default)]
pub(crate) struct Pulls {
    pub(crate) pulled: Vec<u64>,
    pub(crate) replay_pulled: Vec<u64>,
}

/// How a subscription takes deliveries, for [`SubState::fetch_due`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchShape {
    /// One in flight, in order.
    pub(crate) fifo: bool,
    /// Its window: 1 with FIFO, else `max_in_flight`.
    pub(crate) cap: usize,
    /// What the dispatcher asked for, at most.
    pub(crate) max: usize,
}

/// What [`SubState::fetch_due`] handed out, and what the backend may add from its log.
#[derive(Debug, Default)]
pub(crate) struct Fetch {
    /// `(sequence, attempt, replay)`, in the order found.
    pub(crate) picks: Vec<(u64, u32, bool)>,
    /// The earliest retry that is not due yet.
    pub(crate) next_due_at: Option<UnixMs>,
    /// Replays taken from the queue.
    pub(crate) replay_pulled: Vec<u64>,
    /// New events the backend may pull from its log after `read_pos`, at most.
    pub(crate) new_max: usize,
}

impl SubState {
    /// A subscription that starts after `start_after`.
    pub(crate) fn new(start_after: u64) -> SubState {
        SubState {
            cursor: start_after,
            read_pos: start_after,
            counted_to: start_after,
            ..SubState::default()
        }
    }

    /// Applies one record of this subscription.
    pub(crate) fn apply(&mut self, control: &Control) {
        match control {
            Control::Deliveries(d) => self.apply_deliveries(d),
            Control::Replay(r) => self.apply_replay(r),
        }
    }

    fn apply_deliveries(&mut self, d: &Deliveries) {
        self.pull(&d.pulled, &d.replay_pulled);
        for item in &d.items {
            self.settle(item);
        }
        self.finish(d);
    }

    /// The part of a fetch every backend shares: hands out due retries and replays
    /// (replays first; with FIFO, nothing behind an entry that is in flight or not due
    /// yet), then replays queued by hand into free slots (`live` says which are still
    /// in the log), and says how many new events the backend may pull from its log
    /// after `read_pos`. The backend scans its log for those, then calls
    /// [`SubState::pull`] with them and [`Fetch::replay_pulled`].
    pub(crate) fn fetch_due(
        &mut self,
        shape: FetchShape,
        now: UnixMs,
        live: impl Fn(u64) -> bool,
    ) -> Fetch {
        let FetchShape { fifo, cap, max } = shape;
        let mut fetch = Fetch::default();
        let mut room = max.min(cap);
        let occupied = self.window.len() + self.replaying.len();
        let mut due = |entries: &mut BTreeMap<u64, Entry>, replay: bool, fetch: &mut Fetch| {
            for (&seq, e) in entries.iter_mut() {
                if room == 0 {
                    break;
                }
                if e.in_flight {
                    if fifo {
                        break;
                    }
                    continue;
                }
                if e.due_at > now {
                    fetch.next_due_at =
                        Some(fetch.next_due_at.map_or(e.due_at, |d| d.min(e.due_at)));
                    if fifo {
                        break;
                    }
                    continue;
                }
                e.in_flight = true;
                fetch.picks.push((seq, e.attempts + 1, replay));
                room -= 1;
                if fifo {
                    break;
                }
            }
        };
        due(&mut self.replaying, true, &mut fetch);
        let blocked = fifo && (!self.replaying.is_empty() || !fetch.picks.is_empty());
        if !blocked {
            due(&mut self.window, false, &mut fetch);
        }
        let fifo_busy = fifo && (occupied > 0 || !fetch.picks.is_empty());
        if fifo_busy {
            return fetch;
        }
        // Replays take free slots before new events.
        let mut free = cap.saturating_sub(occupied).min(room);
        while free > 0 {
            let Some(seq) = self.replay_queue.front().copied() else {
                break;
            };
            if live(seq) {
                fetch.replay_pulled.push(seq);
                fetch.picks.push((seq, 1, true));
                free -= 1;
            }
            self.replay_queue.pop_front();
        }
        // A FIFO subscription that took a replay pulls nothing new beside it.
        if fetch.replay_pulled.is_empty() || !fifo {
            fetch.new_max = free;
        }
        fetch
    }

    /// A page of the attempts log, newest first: what every backend answers
    /// [`crate::Store::attempts`] with.
    pub(crate) fn attempt_page(&self, query: &AttemptQuery) -> AttemptPage {
        let limit = query.limit.clamp(1, 1000);
        let mut matching = self
            .attempts
            .iter()
            .rev()
            .filter(|a| query.before.is_none_or(|b| a.serial < b))
            .filter(|a| query.outcome.is_none_or(|o| a.outcome == o));
        let attempts: Vec<_> = matching.by_ref().take(limit).cloned().collect();
        let has_more = matching.next().is_some();
        AttemptPage { attempts, has_more }
    }

    /// Takes pulled events into the window, and replayed ones out of the queue.
    pub(crate) fn pull(&mut self, pulled: &[u64], replay_pulled: &[u64]) {
        let fresh = Entry {
            attempts: 0,
            due_at: 0,
            in_flight: true,
        };
        for &seq in pulled {
            if seq > self.cursor {
                self.window.entry(seq).or_insert(fresh);
            }
        }
        for &seq in replay_pulled {
            if let Some(i) = self.replay_queue.iter().position(|&s| s == seq) {
                self.replay_queue.remove(i);
            }
            self.replaying.entry(seq).or_insert(fresh);
        }
    }

    /// The rest of a record: the position it reached and the summary it carries.
    fn finish(&mut self, d: &Deliveries) {
        if d.read_pos > self.read_pos {
            self.forget_counted(d.read_pos);
            self.read_pos = d.read_pos;
        }
        self.last_success_at = self.last_success_at.max(d.last_success_at);
        self.failing_since = d.failing_since;
        self.cursor = self.cursor.max(d.cursor);
        self.advance_cursor();
    }

    pub(crate) fn apply_replay(&mut self, r: &ReplayRequest) {
        for &seq in &r.seqs {
            self.dead.remove(&seq);
            if self.replay_queue.len() < REPLAY_QUEUE_MAX && !self.replay_queue.contains(&seq) {
                self.replay_queue.push_back(seq);
            }
        }
    }

    /// Whether `seq` is handed out and awaiting its settle (a settle of anything else
    /// is stale: a repeat, or from before a restart, and changes nothing).
    pub(crate) fn awaits(&self, seq: u64, replay: bool) -> bool {
        let entries = if replay {
            &self.replaying
        } else {
            &self.window
        };
        entries.get(&seq).is_some_and(|e| e.in_flight)
    }

    /// One attempt's end.
    pub(crate) fn settle(&mut self, item: &Item) {
        let a = &item.attempt;
        match a.outcome {
            AttemptOutcome::Delivered => {
                self.last_success_at = self.last_success_at.max(Some(a.started_at));
                self.failing_since = None;
            }
            AttemptOutcome::Failed | AttemptOutcome::Dead => {
                self.last_failure_at = self.last_failure_at.max(Some(a.started_at));
                self.failing_since.get_or_insert(a.started_at);
            }
        }
        self.push_attempt(a.clone());
        if item.seq == 0 {
            return; // a test event: only the attempts log
        }
        let entries = if item.replay {
            &mut self.replaying
        } else {
            &mut self.window
        };
        match item.next {
            Next::Delivered => {
                entries.remove(&item.seq);
            }
            Next::Dead => {
                entries.remove(&item.seq);
                self.dead.insert(
                    item.seq,
                    Dead {
                        at: a.started_at,
                        attempts: a.attempt,
                    },
                );
            }
            Next::RetryAt(at) => {
                if let Some(e) = entries.get_mut(&item.seq) {
                    e.attempts = a.attempt;
                    e.due_at = at;
                    e.in_flight = false;
                }
            }
        }
    }

    fn push_attempt(&mut self, a: Attempt) {
        if self.attempts.len() == ATTEMPTS_KEPT_MAX {
            self.attempts.pop_front();
        }
        self.attempts.push_back(a);
    }

    /// Moves the cursor up to just before the oldest event still in the window.
    pub(crate) fn advance_cursor(&mut self) {
        let done_to = match self.window.first_key_value() {
            Some((&first, _)) => first - 1,
            None => self.read_pos,
        };
        self.cursor = self.cursor.max(done_to);
        self.read_pos = self.read_pos.max(self.cursor);
    }

    /// A record of the state as it is now, carrying `pulled`, `replay_pulled` and
    /// `items` (already applied to this state).
    pub(crate) fn record(
        &self,
        sub: SubKey,
        at: UnixMs,
        pulled: Vec<u64>,
        replay_pulled: Vec<u64>,
        items: Vec<Item>,
    ) -> Deliveries {
        Deliveries {
            sub,
            at,
            cursor: self.cursor,
            read_pos: self.read_pos,
            last_success_at: self.last_success_at,
            failing_since: self.failing_since,
            pulled,
            replay_pulled,
            items,
        }
    }

    /// The backlog count's bookkeeping when `read_pos` moves to `to`: counted again
    /// from there at the next query (the pulled events are in the window now).
    pub(crate) fn forget_counted(&mut self, to: u64) {
        self.counted = 0;
        self.counted_to = to;
    }

    /// After recovery: nothing is in flight any more; what was is handed out again.
    pub(crate) fn recovered(&mut self) {
        for e in self.window.values_mut().chain(self.replaying.values_mut()) {
            e.in_flight = false;
        }
    }

    /// Drops everything before `first` (retention removed those events, or expired
    /// them unconsumed): the cursor moves past them.
    pub(crate) fn forget_before(&mut self, first: u64) {
        let floor = first.saturating_sub(1);
        if self.cursor < floor {
            self.cursor = floor;
        }
        if self.read_pos < floor {
            self.read_pos = floor;
            self.counted = 0;
            self.counted_to = floor;
        }
        self.window.retain(|&s, _| s >= first);
        self.replaying.retain(|&s, _| s >= first);
        self.replay_queue.retain(|&s| s >= first);
        self.dead.retain(|&s, _| s >= first);
        self.advance_cursor();
    }

    /// The lowest sequence this subscription still needs from the log.
    pub(crate) fn floor(&self) -> u64 {
        let mut floor = self.cursor + 1;
        if let Some((&s, _)) = self.replaying.first_key_value() {
            floor = floor.min(s);
        }
        if let Some(&s) = self.replay_queue.iter().min() {
            floor = floor.min(s);
        }
        floor
    }

    /// Entries handed out and not settled.
    pub(crate) fn in_flight(&self) -> u32 {
        self.window
            .values()
            .chain(self.replaying.values())
            .filter(|e| e.in_flight)
            .count() as u32
    }

    /// Entries waiting for a retry.
    pub(crate) fn retrying(&self) -> u32 {
        self.window
            .values()
            .chain(self.replaying.values())
            .filter(|e| !e.in_flight && e.attempts > 0)
            .count() as u32
    }
}

/// Every subscription's state, and the store-wide attempt serial.
#[derive(Debug, Default)]
pub(crate) struct DeliveryStates {
    pub(crate) subs: HashMap<SubKey, SubState>,
    /// The next attempt serial to assign.
    pub(crate) next_serial: u64,
}

impl DeliveryStates {
    /// Applies a record (recovery, and the live path after building it).
    pub(crate) fn apply(&mut self, control: &Control) {
        let sub = match control {
            Control::Deliveries(d) => {
                for item in &d.items {
                    self.next_serial = self.next_serial.max(item.attempt.serial + 1);
                }
                d.sub
            }
            Control::Replay(r) => r.sub,
        };
        self.subs.entry(sub).or_default().apply(control);
    }

    /// The lowest sequence any subscription still needs.
    pub(crate) fn floor(&self) -> Option<u64> {
        self.subs.values().map(SubState::floor).min()
    }

    /// See [`SubState::forget_before`].
    pub(crate) fn forget_before(&mut self, first: u64) {
        for s in self.subs.values_mut() {
            s.forget_before(first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_id::EventId;
    use crate::types::Sequence;

    fn attempt(seq: u64, n: u32, outcome: AttemptOutcome) -> Attempt {
        Attempt {
            serial: seq * 10 + u64::from(n),
            event_id: EventId::new(1, Sequence(seq), 1),
            attempt: n,
            started_at: 100 + seq as i64,
            latency_ms: 1,
            status: Some(500),
            error: None,
            outcome,
        }
    }

    fn item(seq: u64, n: u32, next: Next) -> Item {
        let outcome = match next {
            Next::Delivered => AttemptOutcome::Delivered,
            Next::RetryAt(_) => AttemptOutcome::Failed,
            Next::Dead => AttemptOutcome::Dead,
        };
        Item {
            seq,
            replay: false,
            next,
            attempt: attempt(seq, n, outcome),
        }
    }

    fn record(pulled: Vec<u64>, items: Vec<Item>, read_pos: u64) -> Control {
        Control::Deliveries(Deliveries {
            pulled,
            items,
            read_pos,
            ..Deliveries::default()
        })
    }

    /// Out-of-order completions leave the cursor at the oldest open event; a retry
    /// holds it; a dead letter releases it.
    #[test]
    fn the_cursor_stops_at_the_oldest_open_event() {
        let mut s = SubState::new(10);
        s.apply(&record(vec![11, 13, 14], vec![], 15));
        assert_eq!(s.cursor, 10);
        s.apply(&record(vec![], vec![item(13, 1, Next::Delivered)], 15));
        assert_eq!(s.cursor, 10, "11 is still open");
        s.apply(&record(vec![], vec![item(11, 1, Next::RetryAt(500))], 15));
        assert_eq!(s.cursor, 10, "11 waits for its retry");
        assert_eq!(s.retrying(), 1);
        assert_eq!(s.in_flight(), 1, "14");
        s.apply(&record(vec![], vec![item(11, 2, Next::Dead)], 15));
        assert_eq!(s.cursor, 13, "14 is next");
        assert!(s.dead.contains_key(&11));
        s.apply(&record(vec![], vec![item(14, 1, Next::Delivered)], 15));
        assert_eq!(s.cursor, 15, "everything looked at is done");
        assert_eq!(s.attempts.len(), 4);
    }

    #[test]
    fn replays_take_dead_letters_back_and_the_attempts_log_is_bounded() {
        let mut s = SubState::new(0);
        s.apply(&record(vec![1], vec![item(1, 1, Next::Dead)], 1));
        assert!(s.dead.contains_key(&1));
        s.apply(&Control::Replay(ReplayRequest {
            sub: SubKey(0),
            at: 0,
            seqs: vec![1, 1],
        }));
        assert!(s.dead.is_empty());
        assert_eq!(s.replay_queue, VecDeque::from(vec![1]));
        assert_eq!(s.floor(), 1, "a queued replay pins its event");
        for n in 0..(ATTEMPTS_KEPT_MAX as u64 + 5) {
            s.push_attempt(attempt(n, 1, AttemptOutcome::Failed));
        }
        assert_eq!(s.attempts.len(), ATTEMPTS_KEPT_MAX);
        s.forget_before(5);
        assert_eq!(s.cursor, 4);
        assert!(s.replay_queue.is_empty());
    }
}
