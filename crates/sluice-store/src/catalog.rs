//! The control plane: tenants and API keys, as every backend stores them.
//!
//! The catalog is small and changes rarely, so backends keep it apart from the event
//! log (the embedded engine as one JSON file replaced atomically, JetStream in a KV
//! bucket). Readers get an `Arc<Catalog>` snapshot and never lock; changes are pure
//! functions from one catalog to the next (`with_*`), so every backend applies the
//! same rules.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::types::{TenantId, UnixMs};

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Post events.
    Ingest,
    /// Read the inbox, ack and delete.
    Consume,
    /// Manage subscriptions and read delivery state.
    Manage,
}

impl Scope {
    /// All scopes, for the first-start key.
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Consume, Scope::Manage];

    /// Parses a scope name as the API and CLI spell it.
    pub fn parse(name: &str) -> Option<Scope> {
        match name {
            "ingest" => Some(Scope::Ingest),
            "consume" => Some(Scope::Consume),
            "manage" => Some(Scope::Manage),
            _ => None,
        }
    }

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Consume => "consume",
            Scope::Manage => "manage",
        }
    }
}

/// Per-tenant overrides of server-wide limits; `None` means "use the server default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    /// Largest accepted request body, in bytes.
    pub max_payload_bytes: Option<u32>,
    /// Sustained requests per second.
    pub rate_per_second: Option<u32>,
    /// Requests allowed in a burst above the sustained rate.
    pub rate_burst: Option<u32>,
}

/// A tenant: the owner of events, keys and subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Compact id used on the data plane.
    pub id: TenantId,
    /// Unique, human-chosen name.
    pub name: String,
    /// Creation time.
    pub created_at: UnixMs,
    /// Limit overrides.
    #[serde(default)]
    pub limits: TenantLimits,
}

/// A stored API key: its SHA-256 hash, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public id (`key_…`), used to list and revoke.
    pub id: String,
    /// Owning tenant.
    pub tenant: TenantId,
    /// SHA-256 of the key, hex.
    pub sha256_hex: String,
    /// The first characters of the key, to help operators recognise it.
    pub prefix: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// Creation time.
    pub created_at: UnixMs,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixMs>,
}

/// The whole control-plane state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// All tenants.
    pub tenants: Vec<Tenant>,
    /// All keys, revoked ones included (for audit).
    pub keys: Vec<ApiKeyRecord>,
    /// 32 random bytes, hex, that key the MACs of the tokens Sluice hands to clients
    /// (page cursors, lease ids), so that an altered or forged token is refused rather
    /// than decoded into some other position. Kept with the catalog because every node
    /// that serves a store must accept the tokens of every other; empty in a catalog
    /// written before it existed, until the store fills it in at open.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token_secret: String,
}

impl Catalog {
    /// A fresh token secret (see [`Catalog::token_secret`]).
    pub fn new_token_secret() -> String {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Finds a tenant by name.
    pub fn tenant_by_name(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// Finds a tenant by id.
    pub fn tenant(&self, id: TenantId) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    /// Adds a tenant with the next free id.
    pub fn with_tenant(
        &self,
        name: &str,
        limits: TenantLimits,
        now: UnixMs,
    ) -> Result<(Catalog, Tenant), StoreError> {
        if self.tenant_by_name(name).is_some() {
            return Err(StoreError::Conflict(format!(
                "tenant {name:?} already exists"
            )));
        }
        let id = TenantId(self.tenants.iter().map(|t| t.id.0 + 1).max().unwrap_or(1));
        let tenant = Tenant {
            id,
            name: name.to_owned(),
            created_at: now,
            limits,
        };
        let mut next = self.clone();
        next.tenants.push(tenant.clone());
        Ok((next, tenant))
    }

    /// Replaces a tenant's limits.
    pub fn with_limits(
        &self,
        name: &str,
        limits: TenantLimits,
    ) -> Result<(Catalog, Tenant), StoreError> {
        let mut next = self.clone();
        let tenant = next
            .tenants
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| StoreError::NotFound(format!("tenant {name:?}")))?;
        tenant.limits = limits;
        let tenant = tenant.clone();
        Ok((next, tenant))
    }

    /// Adds a key record; its tenant must exist.
    pub fn with_key(&self, key: ApiKeyRecord) -> Result<Catalog, StoreError> {
        if self.tenant(key.tenant).is_none() {
            return Err(StoreError::NotFound(format!("tenant {}", key.tenant.0)));
        }
        if self.keys.iter().any(|k| k.id == key.id) {
            return Err(StoreError::Conflict(format!(
                "key {} already exists",
                key.id
            )));
        }
        let mut next = self.clone();
        next.keys.push(key);
        Ok(next)
    }

    /// Marks a key revoked. Revoking twice is harmless.
    pub fn with_revoked(&self, key_id: &str, now: UnixMs) -> Result<Catalog, StoreError> {
        let mut next = self.clone();
        let key = next
            .keys
            .iter_mut()
            .find(|k| k.id == key_id)
            .ok_or_else(|| StoreError::NotFound(format!("key {key_id:?}")))?;
        key.revoked_at.get_or_insert(now);
        Ok(next)
    }
}
