//! API keys: generation, hashing, and the in-process lookup cache.
//!
//! A key is `sk_` plus 32 base64url characters (192 random bits). Only its SHA-256 is
//! stored. Requests are authenticated without touching storage, in one of two ways:
//!
//! - **Known here** (every request after a key's first): the presented bytes go
//!   through SipHash-2-4 with a 128-bit secret drawn when the cache was built, and the
//!   128-bit tag is looked up among the tags of keys this cache has already verified,
//!   then compared in full in constant time. About 150 instructions, where SHA-256 in
//!   software is ~3,500 (issue 17: with SHA-NI it is cheap, but it is still the
//!   largest single item of the request path's profile).
//! - **First sight**: the SHA-256 of the presented bytes is looked up among the live
//!   keys' stored hashes (by its first 8 bytes), the full 32 bytes compared in constant
//!   time, and only on a match is the key's tag remembered.
//!
//! Why the memo is safe:
//!
//! - Hashed at rest stays true: nothing new is stored. The memo lives in memory only
//!   and holds tags, not keys. Its safety rests on the secret staying in the process
//!   (it is never written, logged or shown: `KeyCache`'s `Debug` leaves it out), as
//!   the keys themselves do while requests carrying them are read.
//! - No false accepts: a tag is remembered only for bytes whose SHA-256 matched a live
//!   key. Another input is accepted only if its 128-bit tag equals a remembered one,
//!   which without the secret is a 2^-128 guess; it cannot be tried offline.
//! - Revocation takes effect at once: the memo belongs to one [`KeyCache`], and every
//!   catalog change (a revoked key, a deleted tenant) builds a new cache with an empty
//!   memo, swapped in before the change is answered.
//! - Bounded, and not an attacker's to fill: only verified keys enter, one tag per
//!   live key (a key has one byte form), capped at [`MEMO_ENTRIES_MAX`]. Unknown keys
//!   cost what they always did (one SHA-256) and leave no trace.
//! - Timing: the lookup depends on the tag, which says nothing about stored hashes;
//!   the final compares are constant-time.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;

use base64::Engine;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use siphasher::sip128::{Hasher128, SipHasher24};
use sluice_store::idhash::IdHash;
use sluice_store::{ApiKeyRecord, Catalog, Scope, TenantId, UnixMs};
use subtle::ConstantTimeEq;

/// The most verified keys one cache remembers by tag. Past it a key still
/// authenticates, through SHA-256 each time: the bound keeps memory fixed, and a
/// deployment with more live keys than this is one where the catalog is the limit.
pub const MEMO_ENTRIES_MAX: usize = 65_536;

/// A bit set of [`Scope`]s, checked on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    fn bit(scope: Scope) -> u8 {
        match scope {
            Scope::Ingest => 1,
            Scope::Consume => 2,
            Scope::Manage => 4,
        }
    }

    /// The set of the given scopes.
    pub fn of(scopes: &[Scope]) -> Self {
        Scopes(scopes.iter().fold(0, |acc, s| acc | Self::bit(*s)))
    }

    /// Whether `scope` is in the set.
    pub fn has(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }
}

/// Who a request is, once its key checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The key's tenant.
    pub tenant: TenantId,
    /// What the key may do.
    pub scopes: Scopes,
}

#[derive(Debug)]
struct CachedKey {
    hash: [u8; 32],
    principal: Principal,
}

/// Every live key, by hash prefix, and the tags of the keys verified since it was
/// built. Rebuilt whole from the catalog when it changes, and swapped in atomically
/// (control-plane changes are rare; reads are every request).
pub struct KeyCache {
    by_prefix: HashMap<u64, Vec<CachedKey>, IdHash>,
    /// The secret the tags are keyed with: drawn per cache, never stored or shown.
    tag_key: [u8; 16],
    /// Tags of verified keys, by their low 64 bits (see the module's comment).
    memo: RwLock<HashMap<u64, Memo, IdHash>>,
}

/// A verified key, remembered by its tag.
#[derive(Debug, Clone, Copy)]
struct Memo {
    tag: [u8; 16],
    principal: Principal,
}

impl std::fmt::Debug for KeyCache {
    /// Counts only: the tag secret and the tags stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field(
                "keys",
                &self.by_prefix.values().map(Vec::len).sum::<usize>(),
            )
            .field("remembered", &self.memo.read().len())
            .finish_non_exhaustive()
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::build(&Catalog::default())
    }
}

impl KeyCache {
    /// Builds the cache from a catalog snapshot, leaving out revoked keys.
    pub fn build(catalog: &Catalog) -> KeyCache {
        let mut by_prefix: HashMap<u64, Vec<CachedKey>, IdHash> = HashMap::default();
        for key in catalog.keys.iter().filter(|k| k.revoked_at.is_none()) {
            let Some(hash) = decode_hex32(&key.sha256_hex) else {
                tracing::warn!(key_id = %key.id, "ignoring a key whose stored hash is not 32 hex bytes");
                continue;
            };
            by_prefix.entry(prefix(&hash)).or_default().push(CachedKey {
                hash,
                principal: Principal {
                    tenant: key.tenant,
                    scopes: Scopes::of(&key.scopes),
                },
            });
        }
        KeyCache {
            by_prefix,
            tag_key: rand::random(),
            memo: RwLock::new(HashMap::default()),
        }
    }

    /// The principal of a presented key, if it is live.
    pub fn authenticate(&self, presented: &[u8]) -> Option<Principal> {
        let tag = self.tag(presented);
        let low = prefix(&tag);
        // Decided under the shared lock, so that a full memo (or a slot another key
        // holds) never sends requests through the exclusive one.
        let remember = {
            let memo = self.memo.read();
            match memo.get(&low) {
                Some(m) if bool::from(m.tag.ct_eq(&tag)) => return Some(m.principal),
                // A different verified key with the same low 64 bits (a 2^-64 event)
                // keeps its place; this one is verified by SHA-256 each time.
                Some(_) => false,
                None => memo.len() < MEMO_ENTRIES_MAX,
            }
        };
        let principal = self.verify(presented)?;
        if remember {
            let mut memo = self.memo.write();
            if memo.len() < MEMO_ENTRIES_MAX {
                memo.entry(low).or_insert(Memo { tag, principal });
            }
        }
        Some(principal)
    }

    /// The slow path: the presented key's SHA-256 against the stored hashes.
    fn verify(&self, presented: &[u8]) -> Option<Principal> {
        let hash: [u8; 32] = Sha256::digest(presented).into();
        let candidates = self.by_prefix.get(&prefix(&hash))?;
        candidates
            .iter()
            .find(|k| bool::from(k.hash.ct_eq(&hash)))
            .map(|k| k.principal)
    }

    /// SipHash-2-4 (128-bit output) of the presented bytes under this cache's secret.
    fn tag(&self, presented: &[u8]) -> [u8; 16] {
        let mut h = SipHasher24::new_with_key(&self.tag_key);
        h.write(presented);
        h.finish128().as_bytes()
    }

    /// How many verified keys this cache remembers (for tests).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.memo.read().len()
    }
}

/// The first 8 bytes of a hash or tag, as the key of the maps that hold them.
fn prefix<const N: usize>(bytes: &[u8; N]) -> u64 {
    const { assert!(N >= 8) };
    let mut p = [0u8; 8];
    p.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(p)
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A freshly generated key: the secret (shown once) and the record to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key itself. Never stored; print it once.
    pub secret: String,
    /// What gets stored.
    pub record: ApiKeyRecord,
}

/// Generates a key for a tenant with the given scopes.
pub fn generate_key(tenant: TenantId, scopes: Vec<Scope>, now: UnixMs) -> NewKey {
    let random: [u8; 24] = rand::random();
    let secret = format!(
        "sk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    debug_assert!(is_key_shaped(secret.as_bytes()), "{secret}");
    let id_bits: [u8; 8] = rand::random();
    let record = ApiKeyRecord {
        id: format!("key_{}", encode_hex(&id_bits)),
        tenant,
        sha256_hex: encode_hex(&Sha256::digest(secret.as_bytes())),
        prefix: secret[..10].to_owned(),
        scopes,
        created_at: now,
        revoked_at: None,
    };
    NewKey { secret, record }
}

/// The prefix of every key [`generate_key`] makes.
const KEY_PREFIX: &[u8] = b"sk_";

/// Base64url characters of a key after its prefix (24 random bytes).
const KEY_SECRET_CHARS: usize = 32;

/// Whether `presented` has the shape of a key [`generate_key`] makes. Only such a
/// string can be a key another node made a moment ago, so only such a string is worth
/// a look in the cluster's catalog when this node does not know it.
pub fn is_key_shaped(presented: &[u8]) -> bool {
    presented.len() == KEY_PREFIX.len() + KEY_SECRET_CHARS
        && presented.starts_with(KEY_PREFIX)
        && presented[KEY_PREFIX.len()..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// A shared, swappable cache: readers load it without locking.
pub type SharedKeyCache = Arc<arc_swap::ArcSwap<KeyCache>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_authenticate_and_revoked_do_not() {
        let mut catalog = Catalog::default();
        let (c, tenant) = catalog
            .with_tenant("t", Default::default(), 0)
            .expect("tenant");
        catalog = c;
        let key = generate_key(tenant.id, vec![Scope::Ingest], 0);
        assert!(key.secret.len() >= 35, "at least 128 bits of randomness");
        assert!(is_key_shaped(key.secret.as_bytes()));
        assert!(!is_key_shaped(&key.secret.as_bytes()[1..]));
        assert!(!is_key_shaped(format!("{}=", &key.secret[..34]).as_bytes()));
        catalog = catalog.with_key(key.record.clone()).expect("key");
        let cache = KeyCache::build(&catalog);
        let p = cache
            .authenticate(key.secret.as_bytes())
            .expect("authenticates");
        assert_eq!(p.tenant, tenant.id);
        assert!(p.scopes.has(Scope::Ingest));
        assert!(!p.scopes.has(Scope::Consume));
        assert!(cache.authenticate(b"sk_wrong").is_none());
        assert_eq!(
            cache.remembered(),
            1,
            "the verified key is remembered, not the wrong one"
        );
        // Known by its tag now: the same answer, and a key one byte off is still refused.
        assert_eq!(cache.authenticate(key.secret.as_bytes()), Some(p));
        let mut altered = key.secret.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(cache.authenticate(&altered).is_none());
        assert!(cache.authenticate(&key.secret.as_bytes()[..last]).is_none());
        assert_eq!(cache.remembered(), 1);
        let revoked = catalog.with_revoked(&key.record.id, 1).expect("revoke");
        assert!(KeyCache::build(&revoked)
            .authenticate(key.secret.as_bytes())
            .is_none());
    }
}
