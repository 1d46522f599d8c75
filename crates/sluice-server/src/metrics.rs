//! Lock-free request metrics and their Prometheus text exposition.
//!
//! Why not `prometheus-client`: its `Histogram::observe` takes a lock, and DESIGN.md
//! requires lock-free counters and histograms on the request path. Here every route of
//! the route table has a fixed array of atomic counters per status and latency bucket,
//! indexed without any lookup, and the text format is written only when `/metrics` is
//! scraped. The routes come from the route table and the statuses from the problem
//! codes, so a new route or a new code is counted without touching this file.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use sluice_store::exposition::Exposition;
use sluice_store::StoreStats;

use crate::problem::Code;
use crate::routes::{RouteId, ROUTES};

/// The statuses a success can have; with every [`Code`]'s status, the statuses with
/// their own counter. Anything else is counted as "other".
const SUCCESS_STATUSES: [u16; 5] = [200, 201, 202, 204, 207];

/// Counters per route: the table's routes, then one for requests that matched none.
const ROUTE_SLOTS_MAX: usize = 64;

/// Latency bucket upper bounds in microseconds (the last is +Inf).
const BUCKETS_US: [u64; 14] = [
    100,
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
    u64::MAX,
];

/// Batch-size bucket upper bounds (events per batch request).
const BATCH_BUCKETS: [u64; 8] = [1, 10, 50, 100, 250, 500, 1000, u64::MAX];

/// Status slots: every counted status, then "other".
const STATUS_SLOTS_MAX: usize = 32;

#[derive(Debug, Default)]
struct RouteMetrics {
    by_status: [AtomicU64; STATUS_SLOTS_MAX],
    latency_buckets: [AtomicU64; BUCKETS_US.len()],
    latency_sum_us: AtomicU64,
}

/// One tenant's inbox, as `/metrics` shows it.
#[derive(Debug, Clone)]
pub struct TenantInbox {
    /// The tenant's name.
    pub name: String,
    /// The consumer's name (`default`: the tenant's own inbox).
    pub consumer: String,
    /// Pending events.
    pub pending: u64,
    /// Age of the oldest pending event, in seconds (0 when none).
    pub oldest_age_seconds: f64,
}

/// All request-path metrics.
#[derive(Debug)]
pub struct Metrics {
    routes: Box<[RouteMetrics]>,
    /// The counted statuses, in slot order; the slot after the last is "other".
    statuses: Vec<u16>,
    /// Status → slot, for every status code (100..=599), so counting is an index.
    slot_of: Box<[u8; 600]>,
    events_ingested: AtomicU64,
    events_replayed: AtomicU64,
    batch_buckets: [AtomicU64; BATCH_BUCKETS.len()],
    batch_sum: AtomicU64,
    connections_refused: AtomicU64,
    connections_open: AtomicU64,
    /// Problems answered, by code, in [`Code::ALL`]'s order.
    problems: [AtomicU64; Code::ALL.len()],
    /// What pull consumers do, for `/metrics`.
    pub(crate) inbox: InboxMetrics,
    /// Live tails (`GET /v1/stream`) open now; shared with each stream's task.
    pub(crate) tails_open: std::sync::Arc<AtomicU64>,
}

/// The inbox's counters: leases handed out (and how many of them were redeliveries),
/// acks, nacks, and long polls parked now.
#[derive(Debug, Default)]
pub(crate) struct InboxMetrics {
    pub(crate) leased: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) nacked: AtomicU64,
    pub(crate) lease_expired: AtomicU64,
    pub(crate) requeued: AtomicU64,
    pub(crate) polls_waiting: AtomicU64,
}

impl InboxMetrics {
    fn write(&self, out: &mut Exposition) {
        for (name, help, v) in [
            (
                "sluice_inbox_leased_total",
                "Events handed out under a lease.",
                &self.leased,
            ),
            (
                "sluice_inbox_redelivered_total",
                "Leases of events leased before (delivery_count above 1).",
                &self.redelivered,
            ),
            (
                "sluice_inbox_acked_total",
                "Events acked (first acks; repeats are not counted).",
                &self.acked,
            ),
            (
                "sluice_inbox_nacked_total",
                "Leases ended early by a nack.",
                &self.nacked,
            ),
            (
                "sluice_inbox_lease_expired_total",
                "Acks, nacks and extensions refused with 409 lease_expired.",
                &self.lease_expired,
            ),
            (
                "sluice_inbox_requeued_total",
                "Dead letters put back in the inbox.",
                &self.requeued,
            ),
        ] {
            out.counter(name, help, v.load(Relaxed));
        }
        out.gauge(
            "sluice_inbox_long_polls_waiting",
            "Inbox long polls (wait_seconds) parked, waiting for an event.",
            self.polls_waiting.load(Relaxed),
        );
    }
}

impl Default for Metrics {
    fn default() -> Self {
        assert!(
            ROUTES.len() < ROUTE_SLOTS_MAX,
            "more routes than metrics slots"
        );
        let mut statuses: Vec<u16> = SUCCESS_STATUSES.to_vec();
        for code in Code::ALL {
            let status = code.status().as_u16();
            if !statuses.contains(&status) {
                statuses.push(status);
            }
        }
        statuses.sort_unstable();
        assert!(
            statuses.len() < STATUS_SLOTS_MAX,
            "more statuses than slots"
        );
        let other = statuses.len() as u8;
        let mut slot_of = Box::new([other; 600]);
        for (slot, status) in statuses.iter().enumerate() {
            slot_of[*status as usize] = slot as u8;
        }
        Metrics {
            routes: (0..=ROUTES.len())
                .map(|_| RouteMetrics::default())
                .collect(),
            statuses,
            slot_of,
            events_ingested: AtomicU64::new(0),
            events_replayed: AtomicU64::new(0),
            batch_buckets: Default::default(),
            batch_sum: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            problems: Default::default(),
            inbox: InboxMetrics::default(),
            tails_open: Default::default(),
        }
    }
}

impl Metrics {
    /// Counts a finished request; `route` is `None` for one that matched no route.
    pub fn observe(&self, route: Option<RouteId>, status: u16, latency_us: u64) {
        let m = &self.routes[route.map_or(ROUTES.len(), |r| r as usize)];
        let slot = self
            .slot_of
            .get(status as usize)
            .copied()
            .unwrap_or(self.statuses.len() as u8);
        m.by_status[slot as usize].fetch_add(1, Relaxed);
        let b = BUCKETS_US
            .iter()
            .position(|&ub| latency_us <= ub)
            .unwrap_or(BUCKETS_US.len() - 1);
        m.latency_buckets[b].fetch_add(1, Relaxed);
        m.latency_sum_us.fetch_add(latency_us, Relaxed);
    }

    /// Counts one problem answered (the error path only: a scan of 21 codes).
    pub fn problem(&self, code: Code) {
        if let Some(i) = Code::ALL.iter().position(|c| *c == code) {
            self.problems[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts stored and replayed events.
    pub fn events(&self, created: u64, replayed: u64) {
        self.events_ingested.fetch_add(created, Relaxed);
        self.events_replayed.fetch_add(replayed, Relaxed);
    }

    /// Counts one batch request of `n` events.
    pub fn batch(&self, n: u64) {
        let b = BATCH_BUCKETS
            .iter()
            .position(|&ub| n <= ub)
            .unwrap_or(BATCH_BUCKETS.len() - 1);
        self.batch_buckets[b].fetch_add(1, Relaxed);
        self.batch_sum.fetch_add(n, Relaxed);
    }

    /// Counts a connection refused at the connection limit.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// Tracks open connections.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
    }

    /// Tracks open connections.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    /// The `method` and `route` labels of a route slot (the route is its path
    /// pattern); a request that matched no route is `method="other",route="unmatched"`,
    /// so a scan of random paths adds one series, not one per path.
    fn labels(slot: usize) -> String {
        match ROUTES.get(slot) {
            Some(r) => format!("method=\"{}\",route=\"{}\"", r.method, r.path),
            None => "method=\"other\",route=\"unmatched\"".to_owned(),
        }
    }

    /// The statuses counted per route, in slot order, as label values.
    fn status_label(&self, slot: usize) -> String {
        self.statuses
            .get(slot)
            .map_or_else(|| "other".to_owned(), u16::to_string)
    }

    /// Writes the request path's series and the store's neutral counters; `pending` is
    /// each tenant's inbox.
    pub fn write(&self, store: &StoreStats, pending: &[TenantInbox], out: &mut Exposition) {
        out.family(
            "sluice_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
        );
        for (slot, m) in self.routes.iter().enumerate() {
            for (status, count) in m.by_status.iter().enumerate() {
                let n = count.load(Relaxed);
                if n > 0 {
                    let labels = format!(
                        "{},status=\"{}\"",
                        Self::labels(slot),
                        self.status_label(status)
                    );
                    out.sample("sluice_http_requests_total", &labels, n);
                }
            }
        }
        out.family(
            "sluice_http_request_duration_seconds",
            "histogram",
            "Request latency by route.",
        );
        for (slot, m) in self.routes.iter().enumerate() {
            // Routes never called are left out rather than listed as empty series.
            if m.latency_buckets.iter().all(|b| b.load(Relaxed) == 0) {
                continue;
            }
            out.histogram(
                "sluice_http_request_duration_seconds",
                &Self::labels(slot),
                &BUCKETS_US,
                m.latency_buckets.iter().map(|c| c.load(Relaxed)),
                m.latency_sum_us.load(Relaxed),
                1e6,
            );
        }
        out.counter(
            "sluice_events_ingested_total",
            "Events stored (idempotent replays excluded).",
            self.events_ingested.load(Relaxed),
        );
        out.counter(
            "sluice_events_replayed_total",
            "Idempotent replays answered with the original event.",
            self.events_replayed.load(Relaxed),
        );
        out.family(
            "sluice_batch_size",
            "histogram",
            "Events per batch request.",
        );
        out.histogram(
            "sluice_batch_size",
            "",
            &BATCH_BUCKETS,
            self.batch_buckets.iter().map(|c| c.load(Relaxed)),
            self.batch_sum.load(Relaxed),
            1.0,
        );
        out.counter(
            "sluice_connections_refused_total",
            "Connections answered 503 at the connection limit.",
            self.connections_refused.load(Relaxed),
        );
        out.gauge(
            "sluice_connections_open",
            "Open client connections.",
            self.connections_open.load(Relaxed),
        );
        self.inbox.write(out);
        out.gauge(
            "sluice_tail_streams_open",
            "Live tails (GET /v1/stream) open now.",
            self.tails_open.load(Relaxed),
        );
        out.counter(
            "sluice_store_commits_total",
            "Durable writes (group commits, or acknowledged publishes).",
            store.commits,
        );
        out.counter(
            "sluice_store_events_appended_total",
            "Events made durable by the store.",
            store.events_appended,
        );
        out.gauge(
            "sluice_store_commit_queue_depth",
            "Writes waiting to be made durable.",
            store.queue_depth,
        );
        out.counter(
            "sluice_store_overloaded_total",
            "Appends refused because the store was at capacity.",
            store.overloaded_total,
        );
        out.counter(
            "sluice_store_pending_expired_total",
            "Pending events dropped after retention.pending.",
            store.pending_expired,
        );
        out.counter(
            "sluice_inbox_dead_lettered_total",
            "Events moved to the inbox dead letters after max_deliveries leases.",
            store.dead_lettered,
        );
        out.family(
            "sluice_pending_events",
            "gauge",
            "Pending (unacked) events per tenant.",
        );
        let label = |t: &TenantInbox| {
            format!(
                "tenant=\"{}\",consumer=\"{}\"",
                sluice_store::exposition::label_value(&t.name),
                sluice_store::exposition::label_value(&t.consumer)
            )
        };
        // Kept as it was (the default inbox, by tenant): dashboards rely on it.
        for t in pending.iter().filter(|t| t.consumer == "default") {
            out.sample(
                "sluice_pending_events",
                &format!(
                    "tenant=\"{}\"",
                    sluice_store::exposition::label_value(&t.name)
                ),
                t.pending,
            );
        }
        out.family(
            "sluice_http_problems_total",
            "counter",
            "Problem answers (RFC 9457) by their stable code: what the console's errors chart shows.",
        );
        for (code, n) in Code::ALL.iter().zip(&self.problems) {
            let n = n.load(Relaxed);
            if n > 0 {
                out.sample(
                    "sluice_http_problems_total",
                    &format!("code=\"{}\"", code.as_str()),
                    n,
                );
            }
        }
        out.family(
            "sluice_consumer_pending_events",
            "gauge",
            "Pending (unacked) events per tenant and consumer.",
        );
        for t in pending {
            out.sample("sluice_consumer_pending_events", &label(t), t.pending);
        }
        out.family(
            "sluice_inbox_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest pending event per tenant and consumer: the consumer's lag (0 when none is pending).",
        );
        for t in pending {
            out.sample(
                "sluice_inbox_oldest_pending_age_seconds",
                &label(t),
                format!("{:.3}", t.oldest_age_seconds),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histograms_in_the_prometheus_text_format() {
        let m = Metrics::default();
        m.observe(Some(RouteId::Ingest), 201, 300);
        m.observe(Some(RouteId::Ingest), 201, 2_000_000);
        m.batch(100);
        let mut out = Exposition::default();
        m.write(&StoreStats::default(), &[], &mut out);
        let text = out.finish();
        for line in [
            r#"sluice_http_requests_total{method="POST",route="/v1/events",status="201"} 2"#,
            r#"sluice_http_request_duration_seconds_bucket{method="POST",route="/v1/events",le="0.0001"} 0"#,
            r#"sluice_http_request_duration_seconds_bucket{method="POST",route="/v1/events",le="0.0005"} 1"#,
            r#"sluice_http_request_duration_seconds_bucket{method="POST",route="/v1/events",le="5"} 2"#,
            r#"sluice_http_request_duration_seconds_bucket{method="POST",route="/v1/events",le="+Inf"} 2"#,
            r#"sluice_http_request_duration_seconds_sum{method="POST",route="/v1/events"} 2.0003"#,
            r#"sluice_http_request_duration_seconds_count{method="POST",route="/v1/events"} 2"#,
            r#"sluice_batch_size_bucket{le="50"} 0"#,
            r#"sluice_batch_size_bucket{le="100"} 1"#,
            r#"sluice_batch_size_bucket{le="+Inf"} 1"#,
            "sluice_batch_size_sum 100",
            "sluice_batch_size_count 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(
            !text.contains("GET /v1/inbox"),
            "routes never called are left out"
        );
    }

    #[test]
    fn every_code_has_its_own_status_counter() {
        let m = Metrics::default();
        for code in Code::ALL {
            let status = code.status().as_u16();
            let slot = m.slot_of[status as usize] as usize;
            assert_eq!(m.statuses.get(slot), Some(&status), "{code:?}");
        }
        for (i, spec) in ROUTES.iter().enumerate() {
            assert_eq!(
                Metrics::labels(i),
                format!("method=\"{}\",route=\"{}\"", spec.method, spec.path)
            );
        }
        assert_eq!(
            Metrics::labels(ROUTES.len()),
            "method=\"other\",route=\"unmatched\""
        );
    }
}
