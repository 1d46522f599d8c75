//! One tenant's pending events, in sequence order.
//!
//! Each entry also carries its event's receive time (the time part of its id), so that
//! a lookup matches a whole id, never a sequence alone: an id with the right sequence
//! and another time part was never issued, and must name no event.
//!
//! The writer hands out sequences in increasing order, so a new pending event always
//! goes at the end, and consumers mostly settle from the front. A `BTreeMap` paid a
//! root-to-leaf descent and a share of node splits on every append: `perf` put 5–6 % of
//! the server's cycles under batch ingest in `BTreeMap::insert`. This is a deque kept
//! sorted by sequence: an append is a push at the back, a lookup is a binary search, and
//! a settled event leaves a tombstone that goes once it reaches the front, or when
//! tombstones exceed half the live entries. Memory therefore stays within 1.5 entries
//! of 32 bytes per pending event (against ~40 bytes in the B-tree), and a removal costs
//! its search plus amortized O(1): a compaction of n entries follows at least n/3
//! removals.
//!
//! The price is that a compaction is one pass over the deque, under the index lock.
//! Consumers that ack in order never cause one (the front pops). Scattered acks over a
//! backlog of a million pending events would cause a pass of ~48 MB, on the order of
//! 10 ms, once per half a million acks, where the B-tree spread that cost over every
//! operation.

use std::collections::VecDeque;

use super::index::Pending;
use crate::types::UnixMs;

/// Below this many entries, tombstones are left for the front to drop: compacting a
/// small deque often would cost more than the space it saves.
const COMPACT_MIN_ENTRIES: usize = 64;

/// Receive times are kept to the 48 bits an [`crate::EventId`] holds.
const MS_MASK: u64 = (1 << 48) - 1;

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    /// The receive time's 48 bits, shifted up one, with the live flag in bit 0: one word
    /// for both keeps the entry at 32 bytes.
    stamp: u64,
    pending: Pending,
}

impl Entry {
    fn live(&self) -> bool {
        self.stamp & 1 == 1
    }

    fn kill(&mut self) {
        self.stamp &= !1;
    }

    fn received_ms(&self) -> UnixMs {
        (self.stamp >> 1) as UnixMs
    }
}

/// Pending events by sequence; see the module docs.
#[derive(Debug, Default)]
pub struct PendingQueue {
    entries: VecDeque<Entry>,
    live: usize,
}

impl PendingQueue {
    /// Adds a pending event received at `received_ms`. Sequences come in increasing
    /// order from the writer and from recovery; one that does not is still placed in
    /// order, at the cost of a shift.
    pub fn insert(&mut self, seq: u64, received_ms: UnixMs, pending: Pending) {
        let entry = Entry {
            seq,
            stamp: ((received_ms as u64 & MS_MASK) << 1) | 1,
            pending,
        };
        match self.entries.back() {
            Some(last) if last.seq >= seq => {
                let i = self.position(seq);
                match self.entries.get_mut(i) {
                    Some(e) if e.seq == seq => {
                        if !e.live() {
                            self.live += 1;
                        }
                        *e = entry;
                        return;
                    }
                    _ => self.entries.insert(i, entry),
                }
            }
            _ => self.entries.push_back(entry),
        }
        self.live += 1;
    }

    /// Removes `seq`, returning its state if it was pending.
    pub fn remove(&mut self, seq: u64) -> Option<Pending> {
        let i = self.find(seq)?;
        let entry = &mut self.entries[i];
        entry.kill();
        let pending = entry.pending;
        self.live -= 1;
        self.drop_tombstones();
        Some(pending)
    }

    /// The state of `seq`, if pending, with its receive time.
    pub fn get(&self, seq: u64) -> Option<(UnixMs, &Pending)> {
        self.find(seq).map(|i| {
            let e = &self.entries[i];
            (e.received_ms(), &e.pending)
        })
    }

    /// The state of the event whose id holds `seq` and `received_ms`, if pending: both
    /// must match (see the module docs).
    pub fn get_exact(&self, seq: u64, received_ms: UnixMs) -> Option<&Pending> {
        self.get(seq)
            .filter(|(ms, _)| *ms == received_ms)
            .map(|(_, p)| p)
    }

    /// The state of `seq`, if pending, to change it (a settle record names sequences).
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Pending> {
        let i = self.find(seq)?;
        Some(&mut self.entries[i].pending)
    }

    /// Like [`PendingQueue::get_exact`], to change the entry.
    pub fn get_exact_mut(&mut self, seq: u64, received_ms: UnixMs) -> Option<&mut Pending> {
        let i = self.find(seq)?;
        let e = &mut self.entries[i];
        (e.received_ms() == received_ms).then_some(&mut e.pending)
    }

    /// The receive time of the oldest pending event (the front is always live:
    /// tombstones there are dropped as they reach it).
    pub fn oldest_ms(&self) -> Option<UnixMs> {
        self.entries
            .iter()
            .find(|e| e.live())
            .map(|e| e.received_ms())
    }

    /// Pending events.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Pending events from `start` on, in order, for a poll that may lease them.
    pub fn iter_from_mut(&mut self, start: u64) -> impl Iterator<Item = (u64, &mut Pending)> {
        self.iter_stamped_mut(start).map(|(seq, _, p)| (seq, p))
    }

    /// Like [`PendingQueue::iter_from_mut`], with each event's receive time (what an
    /// id needs besides the sequence).
    pub fn iter_stamped_mut(
        &mut self,
        start: u64,
    ) -> impl Iterator<Item = (u64, UnixMs, &mut Pending)> {
        let i = self.position(start);
        self.entries
            .range_mut(i..)
            .filter(|e| e.live())
            .map(|e| (e.seq, e.received_ms(), &mut e.pending))
    }

    /// Removes every pending event in `lo..hi` (a segment's sequences), returning their
    /// sequences in order.
    pub fn remove_range(&mut self, lo: u64, hi: u64) -> Vec<u64> {
        if hi <= lo {
            return Vec::new();
        }
        let (from, to) = (self.position(lo), self.position(hi));
        let mut removed = Vec::new();
        for e in self.entries.range_mut(from..to).filter(|e| e.live()) {
            e.kill();
            removed.push(e.seq);
        }
        self.live -= removed.len();
        self.drop_tombstones();
        removed
    }

    /// The index of the first entry at or after `seq`.
    fn position(&self, seq: u64) -> usize {
        self.entries.partition_point(|e| e.seq < seq)
    }

    fn find(&self, seq: u64) -> Option<usize> {
        let i = self.position(seq);
        self.entries
            .get(i)
            .is_some_and(|e| e.seq == seq && e.live())
            .then_some(i)
    }

    fn drop_tombstones(&mut self) {
        while self.entries.front().is_some_and(|e| !e.live()) {
            self.entries.pop_front();
        }
        let tombstones = self.entries.len() - self.live;
        if 2 * tombstones > self.live && self.entries.len() >= COMPACT_MIN_ENTRIES {
            self.entries.retain(|e| e.live());
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ms(seq: u64) -> UnixMs {
        1_700_000_000_000 + (seq / 3) as UnixMs
    }

    fn pending(n: u64) -> Pending {
        Pending {
            type_id: n as u32,
            delivery_count: 0,
            lease_until: 0,
        }
    }

    /// Random inserts (mostly appends), removals and range removals against a BTreeMap.
    #[test]
    fn behaves_like_a_sorted_map() {
        let mut queue = PendingQueue::default();
        let mut model: BTreeMap<u64, Pending> = BTreeMap::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut top = 0u64;
        for _ in 0..20_000 {
            let r = next();
            match r % 10 {
                0..=4 => {
                    // Mostly the next sequence; now and then an old or repeated one.
                    let seq = if r % 97 == 0 {
                        next() % (top + 1)
                    } else {
                        top + 1 + r % 3
                    };
                    top = top.max(seq);
                    queue.insert(seq, ms(seq), pending(seq));
                    model.insert(seq, pending(seq));
                }
                5..=7 => {
                    // Settle near the front mostly, anywhere sometimes.
                    let seq = if r % 3 == 0 {
                        next() % (top + 1)
                    } else {
                        model.keys().next().copied().unwrap_or(0) + r % 5
                    };
                    assert_eq!(queue.remove(seq), model.remove(&seq), "remove {seq}");
                }
                8 => {
                    let lo = next() % (top + 1);
                    let hi = lo + next() % 50;
                    let expected: Vec<u64> = model.range(lo..hi).map(|(&s, _)| s).collect();
                    for s in &expected {
                        model.remove(s);
                    }
                    assert_eq!(queue.remove_range(lo, hi), expected);
                }
                _ => {
                    let seq = next() % (top + 2);
                    assert_eq!(queue.get(seq).map(|(_, p)| p), model.get(&seq));
                    assert_eq!(queue.get_exact(seq, ms(seq)), model.get(&seq));
                    // The right sequence with another time part is no event.
                    assert_eq!(queue.get_exact(seq, ms(seq) + 1), None);
                    let from: Vec<u64> =
                        queue.iter_from_mut(seq).map(|(s, _)| s).take(20).collect();
                    let expected: Vec<u64> = model.range(seq..).map(|(&s, _)| s).take(20).collect();
                    assert_eq!(from, expected);
                }
            }
            assert_eq!(queue.len(), model.len());
            // Tombstones stay within half the live entries (the bound the module's
            // memory figure rests on), once the deque is big enough to compact.
            assert!(queue.entries.len() <= (queue.live * 3 / 2 + 1).max(COMPACT_MIN_ENTRIES));
        }
    }

    #[test]
    fn an_entry_is_the_32_bytes_the_memory_budget_counts() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn leases_taken_through_the_iterator_stick() {
        let mut queue = PendingQueue::default();
        for seq in 1..=5 {
            queue.insert(seq, ms(seq), pending(seq));
        }
        queue.remove(2);
        for (_, p) in queue.iter_from_mut(2).take(2) {
            p.lease_until = 99;
        }
        let leased: Vec<u64> = queue
            .iter_from_mut(0)
            .filter(|(_, p)| p.lease_until == 99)
            .map(|(s, _)| s)
            .collect();
        assert_eq!(leased, vec![3, 4]);
        assert!(queue.get(2).is_none());
        // An empty or inverted range removes nothing (and does not panic).
        assert!(queue.remove_range(4, 3).is_empty());
        assert!(queue.remove_range(4, 4).is_empty());
        assert_eq!(queue.len(), 4);
    }
}
