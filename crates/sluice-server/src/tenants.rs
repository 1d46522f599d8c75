//! Per-tenant request state: limits and rate limiters, derived from the catalog.
//!
//! Like the key cache, it is rebuilt when the catalog changes and swapped in whole.
//! Limiters of tenants whose quota did not change carry over, so a catalog change does
//! not hand everyone a fresh burst.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use sluice_store::idhash::IdHash;
use sluice_store::{Catalog, TenantId};

use crate::config::Limits;
use crate::reply::decimal_header;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// One tenant's effective limits and its limiter.
#[derive(Debug)]
pub struct TenantEntry {
    /// Largest accepted single-event body, in bytes.
    pub max_payload_bytes: usize,
    /// Sustained requests per second.
    pub rate_per_second: u32,
    /// Burst allowance.
    pub rate_burst: u32,
    /// `RateLimit-Limit` (the requests allowed per 1 s window: the sustained rate),
    /// built once instead of on every response.
    pub limit_header: http::HeaderValue,
    /// `RateLimit-Policy` (`<rate>;w=1;burst=<burst>`, the IETF RateLimit header
    /// draft's quota policy, with the GCRA burst as an extension parameter).
    pub policy_header: http::HeaderValue,
    /// The inbox's `max_deliveries` (`None`: unlimited).
    pub max_deliveries: Option<u32>,
    limiter: Arc<Limiter>,
}

/// The outcome of a rate check, with what the `RateLimit-*` headers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// `RateLimit-Limit`: the requests allowed per second, as a ready header value.
    pub limit: http::HeaderValue,
    /// `RateLimit-Policy`, ready.
    pub policy: http::HeaderValue,
    /// `RateLimit-Remaining` as a header value: while the bucket holds at least a
    /// window's quota (nearly always, under the defaults) it is the limit's own value,
    /// shared, instead of a number formatted and allocated per request.
    pub remaining_header: http::HeaderValue,
    /// `RateLimit-Reset`: seconds until the bucket is full again (or, when refused,
    /// until the next request is allowed; also sent as `Retry-After`).
    pub reset_s: u64,
}

impl TenantEntry {
    /// Takes one request from the tenant's bucket.
    pub fn check(&self) -> RateDecision {
        match self.limiter.check() {
            Ok(snapshot) => {
                let left = snapshot.remaining_burst_capacity();
                let missing = self.rate_burst.saturating_sub(left) as u64;
                // What the current 1 s window still allows: never more than the
                // window's quota, though the bucket may hold a larger burst.
                let remaining = left.min(self.rate_per_second);
                RateDecision {
                    allowed: true,
                    limit: self.limit_header.clone(),
                    policy: self.policy_header.clone(),
                    remaining_header: if remaining == self.rate_per_second {
                        self.limit_header.clone()
                    } else {
                        decimal_header(u64::from(remaining))
                    },
                    reset_s: missing.div_ceil(self.rate_per_second.max(1) as u64),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                RateDecision {
                    allowed: false,
                    limit: self.limit_header.clone(),
                    policy: self.policy_header.clone(),
                    remaining_header: decimal_header(0),
                    reset_s: ceil_secs(wait),
                }
            }
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// All tenants' entries.
#[derive(Debug, Default)]
pub struct TenantTable {
    entries: HashMap<TenantId, Arc<TenantEntry>, IdHash>,
}

/// `RateLimit-Policy: <rate>;w=1;burst=<burst>`.
fn policy_header(rate: u32, burst: u32) -> http::HeaderValue {
    match http::HeaderValue::from_str(&format!("{rate};w=1;burst={burst}")) {
        Ok(v) => v,
        // Digits, ';', '=' and letters: visible ASCII, which a header value may hold.
        Err(_) => unreachable!("a policy header is visible ASCII"),
    }
}

impl TenantTable {
    /// Builds the table from the catalog and server defaults, reusing `previous`'s
    /// limiters where the quota is unchanged.
    pub fn build(
        catalog: &Catalog,
        defaults: &Limits,
        previous: Option<&TenantTable>,
    ) -> TenantTable {
        let mut entries = HashMap::default();
        for t in &catalog.tenants {
            let max_payload_bytes = t
                .limits
                .max_payload_bytes
                .map_or(defaults.max_payload_bytes, |b| b as usize);
            let rate = t
                .limits
                .rate_per_second
                .unwrap_or(defaults.rate_per_second)
                .max(1);
            let burst = t.limits.rate_burst.unwrap_or(defaults.rate_burst).max(1);
            let reused = previous
                .and_then(|p| p.entries.get(&t.id))
                .filter(|e| e.rate_per_second == rate && e.rate_burst == burst)
                .map(|e| e.limiter.clone());
            let limiter = reused.unwrap_or_else(|| {
                // Both are at least 1 (clamped above), so NonZeroU32::new cannot fail.
                let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
                    .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
                Arc::new(RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>())
            });
            entries.insert(
                t.id,
                Arc::new(TenantEntry {
                    max_payload_bytes,
                    rate_per_second: rate,
                    rate_burst: burst,
                    limit_header: http::HeaderValue::from(rate),
                    policy_header: policy_header(rate, burst),
                    max_deliveries: t.inbox.max_deliveries,
                    limiter,
                }),
            );
        }
        TenantTable { entries }
    }

    /// A tenant's entry.
    pub fn get(&self, tenant: TenantId) -> Option<&Arc<TenantEntry>> {
        self.entries.get(&tenant)
    }

    /// All tenant ids, for per-tenant metrics.
    pub fn ids(&self) -> impl Iterator<Item = TenantId> + '_ {
        self.entries.keys().copied()
    }
}
