//! A hasher for in-memory maps whose keys are integers no client chooses: tenant and
//! consumer ids (assigned by Sluice), and, in the server, API key hashes and tags
//! (SHA-256 prefixes of live keys and outputs of a keyed PRF, inserted only once
//! verified).
//!
//! `HashMap`'s default SipHash-1-3 resists keys chosen to collide, which these keys
//! cannot be, and costs 100–150 instructions a lookup: the inbox map is looked up for
//! every event committed, the tenant table and key memo for every request (callgrind,
//! issue 17). One multiplication by the golden ratio per integer written spreads the
//! bits over the whole word, high bits included (hashbrown takes its 7-bit control
//! bytes from the top).

use std::hash::{BuildHasherDefault, Hasher};

/// A multiplicative (Fibonacci) hasher for integer keys (see the module comment).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

/// `HashMap<K, V, IdHash>` for integer keys no client chooses.
pub type IdHash = BuildHasherDefault<IdHasher>;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(GOLDEN);
    }

    /// Integer keys use the methods above; anything else is folded in bytewise.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;
    use crate::TenantId;

    /// A degenerate hasher would still give a correct map, only a slow one, so no other
    /// test would notice: check that consecutive ids spread over a table's buckets (the
    /// low bits, which pick the bucket) and its control bytes (the top 7 bits).
    #[test]
    fn ids_spread_over_buckets_and_control_bytes() {
        let build = IdHash::default();
        for hashes in [
            (0..1024u32)
                .map(|n| build.hash_one(TenantId(n)))
                .collect::<Vec<u64>>(),
            (0..1024u64).map(|n| build.hash_one(n)).collect(),
        ] {
            let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
            assert_eq!(low.len(), 1024, "ids collide in a 1,024-bucket table");
            let top: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
            assert!(top.len() > 100, "only {} distinct control bytes", top.len());
        }
    }
}
