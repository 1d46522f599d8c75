//! API keys: generation, hashing, and the in-process lookup cache.
//!
//! A key is `sk_` plus 32 base64url characters (192 random bits). Only its SHA-256 is
//! stored. Requests are authenticated without touching storage: the cache maps the
//! first 8 bytes of a key's hash to its record, and the full 32-byte hash is then
//! compared in constant time, so response timing says nothing about stored hashes.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};
use sluice_store::{ApiKeyRecord, Catalog, Scope, TenantId, UnixMs};
use subtle::ConstantTimeEq;

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

/// Every live key, by hash prefix. Rebuilt whole from the catalog when it changes, and
/// swapped in atomically (control-plane changes are rare; reads are every request).
#[derive(Debug, Default)]
pub struct KeyCache {
    by_prefix: HashMap<u64, Vec<CachedKey>>,
}

impl KeyCache {
    /// Builds the cache from a catalog snapshot, leaving out revoked keys.
    pub fn build(catalog: &Catalog) -> KeyCache {
        let mut by_prefix: HashMap<u64, Vec<CachedKey>> = HashMap::new();
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
        KeyCache { by_prefix }
    }

    /// The principal of a presented key, if it is live.
    pub fn authenticate(&self, presented: &[u8]) -> Option<Principal> {
        let hash: [u8; 32] = Sha256::digest(presented).into();
        let candidates = self.by_prefix.get(&prefix(&hash))?;
        candidates
            .iter()
            .find(|k| bool::from(k.hash.ct_eq(&hash)))
            .map(|k| k.principal)
    }
}

fn prefix(hash: &[u8; 32]) -> u64 {
    let mut p = [0u8; 8];
    p.copy_from_slice(&hash[..8]);
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
        catalog = catalog.with_key(key.record.clone()).expect("key");
        let cache = KeyCache::build(&catalog);
        let p = cache
            .authenticate(key.secret.as_bytes())
            .expect("authenticates");
        assert_eq!(p.tenant, tenant.id);
        assert!(p.scopes.has(Scope::Ingest));
        assert!(!p.scopes.has(Scope::Consume));
        assert!(cache.authenticate(b"sk_wrong").is_none());
        let revoked = catalog.with_revoked(&key.record.id, 1).expect("revoke");
        assert!(KeyCache::build(&revoked)
            .authenticate(key.secret.as_bytes())
            .is_none());
    }
}
