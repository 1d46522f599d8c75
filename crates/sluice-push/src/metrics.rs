//! The dispatcher's metrics: deliveries by outcome, attempt latency, deliveries in
//! flight, and (at scrape time) each subscription's backlog and dead letters, each
//! endpoint's breaker, and the subscriptions by status.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use sluice_store::exposition::{label_value, Exposition};

/// Attempt latency bucket bounds, in microseconds (the last is +Inf).
const LATENCY_BUCKETS_US: [u64; 14] = [
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    1_000_000,
    5_000_000,
    15_000_000,
    u64::MAX,
];

/// Lock-free counters, bumped by the workers.
#[derive(Debug, Default)]
pub struct PushMetrics {
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dead: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    latency_sum_us: AtomicU64,
    pub(crate) disabled_gone: AtomicU64,
    pub(crate) disabled_failing: AtomicU64,
}

/// One subscription's figures at a scrape.
#[derive(Debug, Clone)]
pub struct SubscriptionFigures {
    /// Public id.
    pub id: String,
    /// Events not yet delivered.
    pub backlog: u64,
    /// Dead letters.
    pub dead_letters: u64,
}

impl PushMetrics {
    /// Counts one attempt's latency.
    pub(crate) fn attempt(&self, micros: u64) {
        let b = LATENCY_BUCKETS_US
            .iter()
            .position(|&ub| micros <= ub)
            .unwrap_or(LATENCY_BUCKETS_US.len() - 1);
        self.latency_buckets[b].fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(micros, Relaxed);
    }

    /// Deliveries that succeeded since start.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Relaxed)
    }

    /// Writes the series; the rest comes from the store and the breakers.
    pub fn write(
        &self,
        subs: &[SubscriptionFigures],
        statuses: [(&str, u64); 3],
        breakers: &[(String, u64)],
        out: &mut Exposition,
    ) {
        out.family(
            "sluice_webhook_deliveries_total",
            "counter",
            "Webhook attempts by outcome: delivered, failed (a retry is scheduled), dead.",
        );
        for (outcome, n) in [
            ("delivered", &self.delivered),
            ("failed", &self.failed),
            ("dead", &self.dead),
        ] {
            out.sample(
                "sluice_webhook_deliveries_total",
                &format!("outcome=\"{outcome}\""),
                n.load(Relaxed),
            );
        }
        out.family(
            "sluice_webhook_attempt_duration_seconds",
            "histogram",
            "Webhook attempt latency, from sending to the answer or the failure.",
        );
        out.histogram(
            "sluice_webhook_attempt_duration_seconds",
            "",
            &LATENCY_BUCKETS_US,
            self.latency_buckets.iter().map(|c| c.load(Relaxed)),
            self.latency_sum_us.load(Relaxed),
            1e6,
        );
        out.gauge(
            "sluice_webhook_deliveries_in_flight",
            "Webhook requests in flight.",
            self.in_flight.load(Relaxed),
        );
        out.family(
            "sluice_webhook_backlog",
            "gauge",
            "Events not yet delivered, per subscription.",
        );
        for s in subs {
            out.sample(
                "sluice_webhook_backlog",
                &format!("subscription=\"{}\"", label_value(&s.id)),
                s.backlog,
            );
        }
        out.family(
            "sluice_webhook_dead_letters",
            "gauge",
            "Dead letters, per subscription.",
        );
        for s in subs {
            out.sample(
                "sluice_webhook_dead_letters",
                &format!("subscription=\"{}\"", label_value(&s.id)),
                s.dead_letters,
            );
        }
        out.family(
            "sluice_webhook_subscriptions",
            "gauge",
            "Subscriptions by status.",
        );
        for (status, n) in statuses {
            out.sample(
                "sluice_webhook_subscriptions",
                &format!("status=\"{status}\""),
                n,
            );
        }
        out.family(
            "sluice_webhook_disabled_total",
            "counter",
            "Subscriptions Sluice disabled, by reason.",
        );
        out.sample(
            "sluice_webhook_disabled_total",
            "reason=\"gone\"",
            self.disabled_gone.load(Relaxed),
        );
        out.sample(
            "sluice_webhook_disabled_total",
            "reason=\"failing\"",
            self.disabled_failing.load(Relaxed),
        );
        out.family(
            "sluice_webhook_breaker_state",
            "gauge",
            "Circuit breaker per endpoint: 0 closed, 1 open, 2 half-open.",
        );
        for (endpoint, state) in breakers {
            out.sample(
                "sluice_webhook_breaker_state",
                &format!("endpoint=\"{}\"", label_value(endpoint)),
                state,
            );
        }
    }
}
