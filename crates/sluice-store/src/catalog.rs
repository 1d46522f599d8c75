//! The control plane: tenants, API keys, subscriptions and named consumers, as every
//! backend stores them.
//!
//! The catalog is small and changes rarely, so backends keep it apart from the event
//! log (the embedded engine as one JSON file replaced atomically, JetStream in a KV
//! bucket). Readers get an `Arc<Catalog>` snapshot and never lock. Every change is a
//! [`CatalogChange`], applied by one pure function ([`Catalog::apply`]) from one catalog
//! to the next, so every backend applies exactly the same rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::types::{ConsumerId, Sequence, TenantId, UnixMs};

/// Subscriptions one tenant may have: each is a consumer the dispatcher runs, so the
/// bound is the dispatcher's memory and task count per tenant.
pub const SUBSCRIPTIONS_PER_TENANT_MAX: usize = 1000;

/// Named consumers one tenant may have. Each takes its own 32-byte entry for every
/// matching event committed, on the commit path, so the bound is the commit path's
/// work per event (and RAM per pending event) times this.
pub const CONSUMERS_PER_TENANT_MAX: usize = 32;

/// The name of the inbox every tenant has; no named consumer may take it.
pub const DEFAULT_CONSUMER: &str = "default";

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
    /// The settings of the tenant's inbox (the `default` consumer).
    #[serde(default)]
    pub inbox: InboxSettings,
}

/// How a tenant's inbox treats events that keep coming back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxSettings {
    /// An event leased this many times without an ack moves to the dead letters on
    /// its next poll. `None`: unlimited (the default).
    pub max_deliveries: Option<u32>,
}

/// A named consumer: an independent inbox over its tenant's log (see
/// [`crate::types::ConsumerId`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    /// Its id, never reused.
    pub id: ConsumerId,
    /// The owner.
    pub tenant: TenantId,
    /// Unique within the tenant; never `default`.
    pub name: String,
    /// The event types it takes: exact names, or prefixes ending in `.*`; empty takes
    /// every type.
    pub event_types: Vec<String>,
    /// As [`InboxSettings::max_deliveries`], for this consumer.
    pub max_deliveries: Option<u32>,
    /// It takes the events after this position: the log's end when it was created
    /// with `start: "new"`, 0 with `start: "all"`.
    pub start_after: Sequence,
    /// When it was created.
    pub created_at: UnixMs,
}

/// Where a new consumer starts reading its tenant's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsumerStart {
    /// With what is committed from now on: it costs nothing for the events before it.
    #[default]
    New,
    /// With every event still retained.
    All,
}

/// What a new consumer is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsumer {
    /// The owner.
    pub tenant: TenantId,
    /// Its name.
    pub name: String,
    /// See [`Consumer::event_types`].
    pub event_types: Vec<String>,
    /// See [`Consumer::max_deliveries`].
    pub max_deliveries: Option<u32>,
    /// Where it starts.
    pub start: ConsumerStart,
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

/// A subscription's compact identity on the data plane: its delivery records carry this
/// 4-byte key, never the public id. Keys are never reused, even after a deletion, so a
/// deleted subscription's records cannot be mistaken for a new one's.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SubKey(pub u32);

/// How a subscription orders its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// One delivery in flight, in ingest order, retries included.
    Fifo,
    /// Up to `max_in_flight` deliveries at once, each retried on its own.
    None,
}

impl Ordering {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Ordering::Fifo => "fifo",
            Ordering::None => "none",
        }
    }
}

/// Whether a subscription delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    /// Delivering.
    Active,
    /// Held by its owner; resumes where it stopped.
    Paused,
    /// Stopped by Sluice (see `disabled_reason`); resumes when set active again.
    Disabled,
}

impl SubscriptionStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Paused => "paused",
            SubscriptionStatus::Disabled => "disabled",
        }
    }
}

/// One of a subscription's signing secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    /// `whsec_` + base64 of 32 random bytes.
    pub secret: String,
    /// When it was made.
    pub created_at: UnixMs,
    /// When it stops signing (a rotated-out secret signs beside the new one until
    /// then); `None` for the current secret.
    pub expires_at: Option<UnixMs>,
}

/// A webhook subscription: a tenant's events sent to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Public id (`sub_…`): random, so ids say nothing about each other.
    pub id: String,
    /// Compact key for the data plane.
    pub key: SubKey,
    /// Owner.
    pub tenant: TenantId,
    /// Where deliveries go.
    pub target_url: String,
    /// Exact types and `prefix.*` patterns; empty takes every type.
    pub event_types: Vec<String>,
    /// Free text for the owner.
    pub description: Option<String>,
    /// See [`Ordering`].
    pub ordering: Ordering,
    /// Deliveries in flight at most (1 with FIFO).
    pub max_in_flight: u32,
    /// Extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// See [`SubscriptionStatus`].
    pub status: SubscriptionStatus,
    /// Why Sluice disabled it (`gone`: the endpoint answered 410; `failing`: nothing but
    /// failures for `webhook_disable_after`).
    pub disabled_reason: Option<String>,
    /// Signing secrets, current first.
    pub secrets: Vec<SigningSecret>,
    /// Creation time.
    pub created_at: UnixMs,
    /// The position of the latest event committed when it was created: it delivers the
    /// events after it ("from the next event on"); older ones need an explicit replay.
    pub start_after: Sequence,
}

/// A subscription to create: everything but what the store assigns (the key, the
/// start position, the creation time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// Public id, made by the caller (random).
    pub id: String,
    /// Owner.
    pub tenant: TenantId,
    /// See [`Subscription::target_url`].
    pub target_url: String,
    /// See [`Subscription::event_types`].
    pub event_types: Vec<String>,
    /// See [`Subscription::description`].
    pub description: Option<String>,
    /// See [`Subscription::ordering`].
    pub ordering: Ordering,
    /// See [`Subscription::max_in_flight`].
    pub max_in_flight: u32,
    /// See [`Subscription::headers`].
    pub headers: BTreeMap<String, String>,
    /// The first signing secret.
    pub secret: String,
}

/// Changes to a subscription; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionPatch {
    /// A new endpoint.
    pub target_url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// A new description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// A new status; `Active` clears `disabled_reason`.
    pub status: Option<SubscriptionStatus>,
    /// Why Sluice disabled it, with `status: Disabled`.
    pub disabled_reason: Option<String>,
}

/// One change to the catalog. Every backend applies it with [`Catalog::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogChange {
    /// A new tenant; names are unique.
    CreateTenant {
        /// Its name.
        name: String,
        /// Its limit overrides.
        limits: TenantLimits,
    },
    /// Replaces a tenant's limits.
    SetTenantLimits {
        /// Which tenant.
        name: String,
        /// The new limits.
        limits: TenantLimits,
    },
    /// Replaces a tenant's inbox settings.
    SetInboxSettings {
        /// Which tenant.
        tenant: TenantId,
        /// The new settings.
        settings: InboxSettings,
    },
    /// A new API key record.
    AddKey(ApiKeyRecord),
    /// Revokes a key (repeating is harmless).
    RevokeKey {
        /// Its id.
        key_id: String,
    },
    /// A new subscription.
    CreateSubscription(NewSubscription),
    /// Changes a subscription of a tenant.
    UpdateSubscription {
        /// The owner (another tenant's id is not found).
        tenant: TenantId,
        /// The public id.
        id: String,
        /// What changes.
        patch: SubscriptionPatch,
    },
    /// A new current secret; the previous one keeps signing until `old_valid_until`.
    RotateSecret {
        /// The owner.
        tenant: TenantId,
        /// The public id.
        id: String,
        /// The new secret.
        secret: String,
        /// When the secret it replaces stops signing.
        old_valid_until: UnixMs,
    },
    /// Deletes a subscription.
    DeleteSubscription {
        /// The owner.
        tenant: TenantId,
        /// The public id.
        id: String,
    },
    /// A new named consumer.
    CreateConsumer(NewConsumer),
    /// Replaces a named consumer's `max_deliveries`.
    SetConsumerMaxDeliveries {
        /// The owner.
        tenant: TenantId,
        /// Its name.
        name: String,
        /// The new setting.
        max_deliveries: Option<u32>,
    },
    /// Deletes a named consumer, with its pending set and dead letters.
    DeleteConsumer {
        /// The owner.
        tenant: TenantId,
        /// Its name.
        name: String,
    },
}

/// What a change made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// A tenant, as it is now.
    Tenant(Tenant),
    /// A key record, as it is now.
    Key(ApiKeyRecord),
    /// A subscription, as it is now.
    Subscription(Box<Subscription>),
    /// A named consumer, as it is now.
    Consumer(Box<Consumer>),
    /// Something was deleted.
    Deleted,
}

/// The whole control-plane state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// All tenants.
    pub tenants: Vec<Tenant>,
    /// All keys, revoked ones included (for audit).
    pub keys: Vec<ApiKeyRecord>,
    /// All subscriptions.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// The next [`SubKey`] to issue.
    #[serde(default)]
    pub next_sub_key: u32,
    /// All named consumers.
    #[serde(default)]
    pub consumers: Vec<Consumer>,
    /// The next [`ConsumerId`] to issue (0 is every tenant's `default` inbox, so the
    /// first issued is 1).
    #[serde(default)]
    pub next_consumer_id: u32,
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

    /// A tenant's subscription by its public id; another tenant's is `None`, exactly
    /// like an unknown id.
    pub fn subscription(&self, tenant: TenantId, id: &str) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.tenant == tenant && s.id == id)
    }

    /// A tenant's named consumer by name; another tenant's is `None`, exactly like an
    /// unknown name.
    pub fn consumer(&self, tenant: TenantId, name: &str) -> Option<&Consumer> {
        self.consumers
            .iter()
            .find(|c| c.tenant == tenant && c.name == name)
    }

    /// Applies one change: the one place the catalog's rules live. `now` stamps what is
    /// created; `log_end` is the position of the latest event committed, where a new
    /// subscription starts.
    pub fn apply(
        &self,
        change: CatalogChange,
        now: UnixMs,
        log_end: Sequence,
    ) -> Result<(Catalog, Changed), StoreError> {
        match change {
            CatalogChange::CreateTenant { name, limits } => {
                let (next, t) = self.with_tenant(&name, limits, now)?;
                Ok((next, Changed::Tenant(t)))
            }
            CatalogChange::SetTenantLimits { name, limits } => {
                let (next, t) = self.with_limits(&name, limits)?;
                Ok((next, Changed::Tenant(t)))
            }
            CatalogChange::SetInboxSettings { tenant, settings } => {
                let mut next = self.clone();
                let t = next
                    .tenants
                    .iter_mut()
                    .find(|t| t.id == tenant)
                    .ok_or_else(|| StoreError::NotFound(format!("tenant {}", tenant.0)))?;
                t.inbox = settings;
                let t = t.clone();
                Ok((next, Changed::Tenant(t)))
            }
            CatalogChange::AddKey(key) => {
                let next = self.with_key(key.clone())?;
                Ok((next, Changed::Key(key)))
            }
            CatalogChange::RevokeKey { key_id } => {
                let next = self.with_revoked(&key_id, now)?;
                let key = next.keys.iter().find(|k| k.id == key_id).cloned();
                let key = key.ok_or_else(|| StoreError::NotFound(format!("key {key_id:?}")))?;
                Ok((next, Changed::Key(key)))
            }
            CatalogChange::CreateSubscription(new) => {
                if self.tenant(new.tenant).is_none() {
                    return Err(StoreError::NotFound(format!("tenant {}", new.tenant.0)));
                }
                if self.subscriptions.iter().any(|s| s.id == new.id) {
                    return Err(StoreError::Conflict(format!(
                        "subscription {} already exists",
                        new.id
                    )));
                }
                let owned = self
                    .subscriptions
                    .iter()
                    .filter(|s| s.tenant == new.tenant)
                    .count();
                if owned >= SUBSCRIPTIONS_PER_TENANT_MAX {
                    return Err(StoreError::Conflict(format!(
                        "this tenant has {owned} subscriptions, the most it may have"
                    )));
                }
                let mut next = self.clone();
                let key = SubKey(next.next_sub_key);
                next.next_sub_key += 1;
                let sub = Subscription {
                    id: new.id,
                    key,
                    tenant: new.tenant,
                    target_url: new.target_url,
                    event_types: new.event_types,
                    description: new.description,
                    ordering: new.ordering,
                    max_in_flight: new.max_in_flight,
                    headers: new.headers,
                    status: SubscriptionStatus::Active,
                    disabled_reason: None,
                    secrets: vec![SigningSecret {
                        secret: new.secret,
                        created_at: now,
                        expires_at: None,
                    }],
                    created_at: now,
                    start_after: log_end,
                };
                next.subscriptions.push(sub.clone());
                Ok((next, Changed::Subscription(Box::new(sub))))
            }
            CatalogChange::UpdateSubscription { tenant, id, patch } => {
                let mut next = self.clone();
                let sub = next.subscription_mut(tenant, &id)?;
                if let Some(url) = patch.target_url {
                    sub.target_url = url;
                }
                if let Some(types) = patch.event_types {
                    sub.event_types = types;
                }
                if let Some(description) = patch.description {
                    sub.description = description;
                }
                if let Some(status) = patch.status {
                    sub.status = status;
                    sub.disabled_reason = match status {
                        SubscriptionStatus::Disabled => patch.disabled_reason,
                        _ => None,
                    };
                }
                let sub = sub.clone();
                Ok((next, Changed::Subscription(Box::new(sub))))
            }
            CatalogChange::RotateSecret {
                tenant,
                id,
                secret,
                old_valid_until,
            } => {
                let mut next = self.clone();
                let sub = next.subscription_mut(tenant, &id)?;
                // Secrets already past their end go; the current one gets its end.
                sub.secrets
                    .retain(|s| s.expires_at.is_none_or(|at| at > now));
                for s in &mut sub.secrets {
                    s.expires_at.get_or_insert(old_valid_until);
                }
                sub.secrets.insert(
                    0,
                    SigningSecret {
                        secret,
                        created_at: now,
                        expires_at: None,
                    },
                );
                let sub = sub.clone();
                Ok((next, Changed::Subscription(Box::new(sub))))
            }
            CatalogChange::DeleteSubscription { tenant, id } => {
                let mut next = self.clone();
                let before = next.subscriptions.len();
                next.subscriptions
                    .retain(|s| !(s.tenant == tenant && s.id == id));
                if next.subscriptions.len() == before {
                    return Err(StoreError::NotFound(format!("subscription {id}")));
                }
                Ok((next, Changed::Deleted))
            }
            CatalogChange::CreateConsumer(new) => {
                if self.tenant(new.tenant).is_none() {
                    return Err(StoreError::NotFound(format!("tenant {}", new.tenant.0)));
                }
                if new.name == DEFAULT_CONSUMER || self.consumer(new.tenant, &new.name).is_some() {
                    return Err(StoreError::Conflict(format!(
                        "consumer {:?} already exists",
                        new.name
                    )));
                }
                let owned = self
                    .consumers
                    .iter()
                    .filter(|c| c.tenant == new.tenant)
                    .count();
                if owned >= CONSUMERS_PER_TENANT_MAX {
                    return Err(StoreError::Conflict(format!(
                        "this tenant has {owned} named consumers, the most it may have"
                    )));
                }
                let mut next = self.clone();
                let id = ConsumerId(next.next_consumer_id.max(1));
                next.next_consumer_id = id.0 + 1;
                let consumer = Consumer {
                    id,
                    tenant: new.tenant,
                    name: new.name,
                    event_types: new.event_types,
                    max_deliveries: new.max_deliveries,
                    start_after: match new.start {
                        ConsumerStart::New => log_end,
                        ConsumerStart::All => Sequence(0),
                    },
                    created_at: now,
                };
                next.consumers.push(consumer.clone());
                Ok((next, Changed::Consumer(Box::new(consumer))))
            }
            CatalogChange::SetConsumerMaxDeliveries {
                tenant,
                name,
                max_deliveries,
            } => {
                let mut next = self.clone();
                let consumer = next
                    .consumers
                    .iter_mut()
                    .find(|c| c.tenant == tenant && c.name == name)
                    .ok_or_else(|| StoreError::NotFound(format!("consumer {name:?}")))?;
                consumer.max_deliveries = max_deliveries;
                let consumer = consumer.clone();
                Ok((next, Changed::Consumer(Box::new(consumer))))
            }
            CatalogChange::DeleteConsumer { tenant, name } => {
                let mut next = self.clone();
                let before = next.consumers.len();
                next.consumers
                    .retain(|c| !(c.tenant == tenant && c.name == name));
                if next.consumers.len() == before {
                    return Err(StoreError::NotFound(format!("consumer {name:?}")));
                }
                Ok((next, Changed::Deleted))
            }
        }
    }

    fn subscription_mut(
        &mut self,
        tenant: TenantId,
        id: &str,
    ) -> Result<&mut Subscription, StoreError> {
        self.subscriptions
            .iter_mut()
            .find(|s| s.tenant == tenant && s.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("subscription {id}")))
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
            inbox: InboxSettings::default(),
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
