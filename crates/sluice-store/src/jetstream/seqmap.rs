//! An ordered map from log positions to small values, for keys that arrive in
//! ascending order: the shape of every per-event index the model keeps.
//!
//! A `BTreeMap` filled in ascending order leaves its leaves about half full, so a
//! 16-byte entry costs ~46 bytes; the model's two maps per pending event came to ~150
//! bytes an event. Here the keys and the values are two sorted deques: an append is a
//! push, a lookup a binary search, and a removal marks the value dead (the value type
//! says how, [`Tomb`]); dead entries leave from the front as soon as they reach it, and
//! the whole map is compacted once they outnumber the live ones. So an entry costs its
//! key and its value, plus the deques' growth slack.

use std::collections::VecDeque;

/// A value that has a dead state, which no live value ever takes.
pub(crate) trait Tomb: Copy {
    /// The dead value.
    const DEAD: Self;
    /// Whether this is [`Tomb::DEAD`].
    fn is_dead(&self) -> bool;
}

/// Dead entries tolerated beyond the live ones before a compaction, at least.
const SLACK_MIN: usize = 1024;

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct SeqMap<V> {
    keys: VecDeque<u64>,
    vals: VecDeque<V>,
    live: usize,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        SeqMap {
            keys: VecDeque::new(),
            vals: VecDeque::new(),
            live: 0,
        }
    }
}

impl<V: Tomb> SeqMap<V> {
    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    fn find(&self, key: u64) -> Result<usize, usize> {
        // Appends are the common case, and lookups of recent keys: check the end first.
        match self.keys.back() {
            Some(&last) if key > last => Err(self.keys.len()),
            _ => self.keys.binary_search(&key),
        }
    }

    /// The live value at `key`.
    pub(crate) fn get(&self, key: &u64) -> Option<&V> {
        let i = self.find(*key).ok()?;
        let v = &self.vals[i];
        (!v.is_dead()).then_some(v)
    }

    /// The live value at `key`, to change.
    pub(crate) fn get_mut(&mut self, key: &u64) -> Option<&mut V> {
        let i = self.find(*key).ok()?;
        let v = &mut self.vals[i];
        (!v.is_dead()).then_some(v)
    }

    /// Whether a live value is at `key`.
    pub(crate) fn contains_key(&self, key: &u64) -> bool {
        self.get(key).is_some()
    }

    /// Sets the value at `key` (a push when `key` is past the last one).
    pub(crate) fn insert(&mut self, key: u64, value: V) {
        debug_assert!(!value.is_dead(), "inserting the dead value");
        match self.find(key) {
            Ok(i) => {
                if self.vals[i].is_dead() {
                    self.live += 1;
                }
                self.vals[i] = value;
            }
            Err(i) => {
                self.keys.insert(i, key);
                self.vals.insert(i, value);
                self.live += 1;
            }
        }
    }

    /// Removes the value at `key`, answering it if it was live.
    pub(crate) fn remove(&mut self, key: &u64) -> Option<V> {
        let i = self.find(*key).ok()?;
        let old = self.vals[i];
        if old.is_dead() {
            return None;
        }
        self.vals[i] = V::DEAD;
        self.live -= 1;
        self.tidy();
        Some(old)
    }

    /// Drops dead entries from the front, and compacts when they outnumber the live.
    fn tidy(&mut self) {
        while self.vals.front().is_some_and(Tomb::is_dead) {
            self.vals.pop_front();
            self.keys.pop_front();
        }
        let dead = self.keys.len() - self.live;
        if dead > self.live.max(SLACK_MIN) {
            let mut keep = self.vals.iter().map(|v| !v.is_dead());
            self.keys.retain(|_| keep.next().unwrap_or(false));
            self.vals.retain(|v| !v.is_dead());
            self.keys.shrink_to_fit();
            self.vals.shrink_to_fit();
        }
        debug_assert_eq!(self.keys.len(), self.vals.len());
    }

    /// The first live entry.
    pub(crate) fn first_key_value(&self) -> Option<(&u64, &V)> {
        // `tidy` keeps the front live.
        debug_assert!(self.vals.front().is_none_or(|v| !v.is_dead()));
        Some((self.keys.front()?, self.vals.front()?))
    }

    fn start(&self, from: u64) -> usize {
        self.keys.partition_point(|&k| k < from)
    }

    /// Live entries from `from` on, in order.
    pub(crate) fn range_from(&self, from: u64) -> impl Iterator<Item = (&u64, &V)> {
        let start = self.start(from);
        self.keys
            .range(start..)
            .zip(self.vals.range(start..))
            .filter(|(_, v)| !v.is_dead())
    }

    /// Live entries from `from` on, in order, to change.
    pub(crate) fn range_from_mut(&mut self, from: u64) -> impl Iterator<Item = (&u64, &mut V)> {
        let start = self.start(from);
        self.keys
            .range(start..)
            .zip(self.vals.range_mut(start..))
            .filter(|(_, v)| !v.is_dead())
    }

    /// Every live entry, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u64, &V)> {
        self.range_from(0)
    }

    /// Whether a live entry lies in `from..=to`.
    pub(crate) fn any_in(&self, from: u64, to: u64) -> bool {
        self.range_from(from).next().is_some_and(|(&k, _)| k <= to)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    impl Tomb for u32 {
        const DEAD: u32 = u32::MAX;
        fn is_dead(&self) -> bool {
            *self == u32::MAX
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u32),
        Append(u32),
        Remove(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..3000, 0u32..1000).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u32..1000).prop_map(Op::Append),
            (0u64..3000).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Against a `BTreeMap`: every operation answers the same, and so does every
        /// read, through appends, out-of-order inserts, removals and compactions.
        #[test]
        fn behaves_as_an_ordered_map(ops in prop::collection::vec(op(), 1..4000), from in 0u64..3000) {
            let mut model = BTreeMap::new();
            let mut map = SeqMap::default();
            let mut next = 3000u64;
            for op in ops {
                match op {
                    Op::Insert(k, v) => { model.insert(k, v); map.insert(k, v); }
                    Op::Append(v) => { next += 1; model.insert(next, v); map.insert(next, v); }
                    Op::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                }
                prop_assert_eq!(map.len(), model.len());
            }
            prop_assert_eq!(map.first_key_value(), model.first_key_value());
            let ours: Vec<_> = map.range_from(from).collect();
            let theirs: Vec<_> = model.range(from..).collect();
            prop_assert_eq!(ours, theirs);
            for k in 0..3100 {
                prop_assert_eq!(map.get(&k), model.get(&k));
            }
            prop_assert_eq!(map.any_in(from, from + 10), model.range(from..=from + 10).next().is_some());
        }
    }
}
