//! The dedup index: (tenant, idempotency key) → the event it created.
//!
//! Only the writer thread touches it, and it resolves keys in the same step that assigns
//! sequences, so two concurrent requests with one key can never both create an event.
//!
//! Keys are stored as a 16-byte hash of (tenant, key), never as strings, so an entry has
//! a fixed size whatever the client sends. Entries expire by time bucket: the window is
//! cut into [`BUCKETS`] buckets and a whole bucket is dropped at once, so expiry costs
//! nothing per request. A key is honoured for at least the window and at most one bucket
//! longer.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::types::{Sequence, TenantId, UnixMs};

/// How many buckets the window is cut into.
pub const BUCKETS: i64 = 24;

/// What a key resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The event the key created.
    pub seq: Sequence,
    /// Its receive time (part of its id).
    pub received_at: UnixMs,
    /// Fingerprint of the content first sent with the key.
    pub fingerprint: [u8; 16],
    bucket: i64,
}

/// See the module docs.
#[derive(Debug)]
pub struct IdempotencyIndex {
    map: HashMap<[u8; 16], Entry>,
    buckets: VecDeque<(i64, Vec<[u8; 16]>)>,
    bucket_ms: i64,
}

/// Hashes a tenant's key. Including the tenant keeps tenants' keys apart.
pub fn key_hash(tenant: TenantId, key: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(tenant.0.to_le_bytes());
    h.update(key);
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

impl IdempotencyIndex {
    /// An empty index for a dedup window of `window_ms`.
    pub fn new(window_ms: i64) -> Self {
        IdempotencyIndex {
            map: HashMap::new(),
            buckets: VecDeque::new(),
            bucket_ms: (window_ms / BUCKETS).max(1),
        }
    }

    /// The live entry for a key hash.
    pub fn get(&self, hash: &[u8; 16]) -> Option<Entry> {
        self.map.get(hash).copied()
    }

    /// Records a key; an existing entry for the same hash is replaced.
    pub fn insert(&mut self, hash: [u8; 16], seq: Sequence, received_at: UnixMs, fp: [u8; 16]) {
        let bucket = received_at.div_euclid(self.bucket_ms);
        self.map.insert(
            hash,
            Entry {
                seq,
                received_at,
                fingerprint: fp,
                bucket,
            },
        );
        match self.buckets.back_mut() {
            Some((b, keys)) if *b == bucket => keys.push(hash),
            _ => self.buckets.push_back((bucket, vec![hash])),
        }
    }

    /// Forgets a key if it was inserted for `first` or a later sequence (the keys of a
    /// commit that failed), keeping any older entry.
    pub fn remove_since(&mut self, hash: &[u8; 16], first: Sequence) {
        if self.map.get(hash).is_some_and(|e| e.seq >= first) {
            self.map.remove(hash);
        }
    }

    /// Drops every bucket wholly older than the window.
    pub fn expire(&mut self, now: UnixMs) {
        let oldest_live = now.div_euclid(self.bucket_ms) - BUCKETS;
        while let Some((bucket, _)) = self.buckets.front() {
            if *bucket >= oldest_live {
                break;
            }
            if let Some((bucket, keys)) = self.buckets.pop_front() {
                for k in keys {
                    if self.map.get(&k).is_some_and(|e| e.bucket == bucket) {
                        self.map.remove(&k);
                    }
                }
            }
        }
    }

    /// Whether an entry received at `received_at` is still inside the window at `now`.
    pub fn is_live(&self, received_at: UnixMs, now: UnixMs) -> bool {
        received_at.div_euclid(self.bucket_ms) >= now.div_euclid(self.bucket_ms) - BUCKETS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_expire_by_bucket_and_tenants_are_apart() {
        let hour = 3_600_000;
        let mut idx = IdempotencyIndex::new(24 * hour);
        let a = key_hash(TenantId(1), b"k");
        assert_ne!(a, key_hash(TenantId(2), b"k"));
        idx.insert(a, Sequence(1), 10 * hour, [1; 16]);
        idx.expire(10 * hour + 24 * hour);
        assert_eq!(idx.get(&a).map(|e| e.seq), Some(Sequence(1)));
        idx.expire(10 * hour + 26 * hour);
        assert_eq!(idx.get(&a), None);
    }

    #[test]
    fn removing_a_failed_insert_keeps_a_newer_entry() {
        let mut idx = IdempotencyIndex::new(1000);
        let k = [3; 16];
        idx.insert(k, Sequence(5), 0, [0; 16]);
        idx.remove_since(&k, Sequence(6));
        assert!(idx.get(&k).is_some());
        idx.remove_since(&k, Sequence(5));
        assert!(idx.get(&k).is_none());
    }
}
