//! A hasher for the request path's in-memory maps whose keys are integers that no
//! client chooses: tenant ids (assigned by the server), and API key hashes and tags
//! (SHA-256 prefixes of live keys and outputs of a keyed PRF, see [`crate::auth`];
//! only verified keys are ever inserted, and a lookup inserts nothing).
//!
//! `HashMap`'s default SipHash-1-3 resists keys chosen to collide, which these keys
//! cannot be, and cost 114–142 instructions per lookup on the ingest path (callgrind,
//! issue 17). One multiplication by the golden ratio spreads the bits over the whole
//! word, high bits included (hashbrown takes its 7-bit tags from the top).

use std::hash::{BuildHasherDefault, Hasher};

/// A multiplicative hasher for integer keys (see the module comment).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

/// `HashMap<K, V, IdHash>` for integer keys no client chooses.
pub type IdHash = BuildHasherDefault<IdHasher>;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by integer keys; folded in for any other key all the same.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(GOLDEN);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(GOLDEN);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn small_ids_differ_in_their_top_bits() {
        let h = IdHash::default();
        let tops: std::collections::HashSet<u64> =
            (0u32..128).map(|n| h.hash_one(n) >> 57).collect();
        assert!(tops.len() > 64, "{} distinct 7-bit tags of 128", tops.len());
    }
}
