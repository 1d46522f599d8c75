//! Lock-free request metrics and their Prometheus text exposition.
//!
//! Why not `prometheus-client`: its `Histogram::observe` takes a lock, and DESIGN.md
//! requires lock-free counters and histograms on the request path. Here every route has
//! a fixed array of atomic counters per status and latency bucket, resolved without any
//! lookup, and the text format is written only when `/metrics` is scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use sluice_store::{StoreStats, SYNC_LATENCY_BOUNDS_US};

/// The routes, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Route {
    Ingest,
    IngestBatch,
    Inbox,
    InboxAck,
    EventGet,
    EventAck,
    EventDelete,
    Admin,
    Health,
    Ready,
    Metrics,
    OpenApi,
    Unknown,
}

const ROUTES: [Route; 13] = [
    Route::Ingest,
    Route::IngestBatch,
    Route::Inbox,
    Route::InboxAck,
    Route::EventGet,
    Route::EventAck,
    Route::EventDelete,
    Route::Admin,
    Route::Health,
    Route::Ready,
    Route::Metrics,
    Route::OpenApi,
    Route::Unknown,
];

impl Route {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Ingest => "POST /v1/events",
            Route::IngestBatch => "POST /v1/events/batch",
            Route::Inbox => "GET /v1/inbox",
            Route::InboxAck => "POST /v1/inbox/ack",
            Route::EventGet => "GET /v1/events/{id}",
            Route::EventAck => "POST /v1/events/{id}/ack",
            Route::EventDelete => "DELETE /v1/events/{id}",
            Route::Admin => "/v1/admin",
            Route::Health => "GET /v1/health",
            Route::Ready => "GET /v1/ready",
            Route::Metrics => "GET /metrics",
            Route::OpenApi => "GET /openapi.json",
            Route::Unknown => "unknown",
        }
    }
}

/// Status codes with their own counter; anything else is counted as "other".
const STATUSES: [u16; 17] = [
    200, 201, 204, 207, 400, 401, 403, 404, 405, 413, 415, 422, 429, 500, 503, 507, 0,
];

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

#[derive(Debug, Default)]
struct RouteMetrics {
    by_status: [AtomicU64; STATUSES.len()],
    latency_buckets: [AtomicU64; BUCKETS_US.len()],
    latency_sum_us: AtomicU64,
}

/// All request-path metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: [RouteMetrics; ROUTES.len()],
    events_ingested: AtomicU64,
    events_replayed: AtomicU64,
    batch_buckets: [AtomicU64; BATCH_BUCKETS.len()],
    batch_sum: AtomicU64,
    connections_refused: AtomicU64,
    connections_open: AtomicU64,
}

fn route_index(route: Route) -> usize {
    ROUTES
        .iter()
        .position(|r| *r == route)
        .unwrap_or(ROUTES.len() - 1)
}

impl Metrics {
    /// Counts a finished request.
    pub fn observe(&self, route: Route, status: u16, latency_us: u64) {
        let m = &self.routes[route_index(route)];
        let s = STATUSES
            .iter()
            .position(|&c| c == status)
            .unwrap_or(STATUSES.len() - 1);
        m.by_status[s].fetch_add(1, Relaxed);
        let b = BUCKETS_US
            .iter()
            .position(|&ub| latency_us <= ub)
            .unwrap_or(BUCKETS_US.len() - 1);
        m.latency_buckets[b].fetch_add(1, Relaxed);
        m.latency_sum_us.fetch_add(latency_us, Relaxed);
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

    /// Renders everything in the Prometheus text format.
    pub fn render(&self, store: &StoreStats, pending: &[(String, u64)]) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP sluice_http_requests_total HTTP requests by route and status.\n# TYPE sluice_http_requests_total counter\n");
        for (route, m) in ROUTES.iter().zip(&self.routes) {
            for (status, count) in STATUSES.iter().zip(&m.by_status) {
                let n = count.load(Relaxed);
                if n > 0 {
                    let status = if *status == 0 {
                        "other".to_owned()
                    } else {
                        status.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "sluice_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                        route.as_str()
                    );
                }
            }
        }
        out.push_str("# HELP sluice_http_request_duration_seconds Request latency by route.\n# TYPE sluice_http_request_duration_seconds histogram\n");
        for (route, m) in ROUTES.iter().zip(&self.routes) {
            // Routes never called are left out rather than listed as empty series.
            if m.latency_buckets.iter().all(|b| b.load(Relaxed) == 0) {
                continue;
            }
            let labels = format!("route=\"{}\"", route.as_str());
            let sum = m.latency_sum_us.load(Relaxed);
            let name = "sluice_http_request_duration_seconds";
            histogram(
                &mut out,
                name,
                &labels,
                &BUCKETS_US,
                m.latency_buckets.iter().map(|c| c.load(Relaxed)),
                sum,
                1e6,
            );
        }
        counter(
            &mut out,
            "sluice_events_ingested_total",
            "Events stored (idempotent replays excluded).",
            self.events_ingested.load(Relaxed),
        );
        counter(
            &mut out,
            "sluice_events_replayed_total",
            "Idempotent replays answered with the original event.",
            self.events_replayed.load(Relaxed),
        );
        out.push_str("# HELP sluice_batch_size Events per batch request.\n# TYPE sluice_batch_size histogram\n");
        let sum = self.batch_sum.load(Relaxed);
        histogram(
            &mut out,
            "sluice_batch_size",
            "",
            &BATCH_BUCKETS,
            self.batch_buckets.iter().map(|c| c.load(Relaxed)),
            sum,
            1.0,
        );
        counter(
            &mut out,
            "sluice_connections_refused_total",
            "Connections answered 503 at the connection limit.",
            self.connections_refused.load(Relaxed),
        );
        gauge(
            &mut out,
            "sluice_connections_open",
            "Open client connections.",
            self.connections_open.load(Relaxed),
        );
        counter(
            &mut out,
            "sluice_store_commits_total",
            "Group commits (one write and one sync each).",
            store.commits,
        );
        out.push_str("# HELP sluice_store_fsync_seconds Latency of each group commit's fdatasync.\n# TYPE sluice_store_fsync_seconds histogram\n");
        histogram(
            &mut out,
            "sluice_store_fsync_seconds",
            "",
            &SYNC_LATENCY_BOUNDS_US,
            store.sync_latency_counts,
            store.sync_micros_total,
            1e6,
        );
        counter(
            &mut out,
            "sluice_store_events_appended_total",
            "Events made durable by the store.",
            store.events_appended,
        );
        gauge(
            &mut out,
            "sluice_store_commit_queue_depth",
            "Commands waiting for the group-commit writer.",
            store.queue_depth,
        );
        counter(
            &mut out,
            "sluice_store_overloaded_total",
            "Appends refused because the commit queue was full.",
            store.overloaded_total,
        );
        gauge(
            &mut out,
            "sluice_store_segments",
            "Log segments on disk.",
            store.segments,
        );
        gauge(
            &mut out,
            "sluice_store_log_bytes",
            "Bytes of log on disk.",
            store.log_bytes,
        );
        gauge(
            &mut out,
            "sluice_store_pinned_bytes",
            "Log bytes kept only because old segments hold pending events.",
            store.pinned_bytes,
        );
        counter(
            &mut out,
            "sluice_store_segments_purged_total",
            "Segments removed by retention.",
            store.segments_purged,
        );
        counter(
            &mut out,
            "sluice_store_pending_expired_total",
            "Pending events dropped after retention.pending.",
            store.pending_expired,
        );
        out.push_str("# HELP sluice_pending_events Pending (unacked) events per tenant.\n# TYPE sluice_pending_events gauge\n");
        for (tenant, n) in pending {
            let _ = writeln!(out, "sluice_pending_events{{tenant=\"{tenant}\"}} {n}");
        }
        out
    }
}

/// Writes one histogram series: cumulative `_bucket`s, `_sum` and `_count`. `labels` is
/// empty or `key="value"`; bounds and sum are divided by `scale` (1e6: µs to seconds).
fn histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[u64],
    counts: impl IntoIterator<Item = u64>,
    sum: u64,
    scale: f64,
) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (ub, count) in bounds.iter().zip(counts) {
        cumulative += count;
        let le = if *ub == u64::MAX {
            "+Inf".to_owned()
        } else {
            format!("{}", *ub as f64 / scale)
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", sum as f64 / scale);
    let _ = writeln!(out, "{name}_count{braces} {cumulative}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histograms_in_the_prometheus_text_format() {
        let m = Metrics::default();
        m.observe(Route::Ingest, 201, 300);
        m.observe(Route::Ingest, 201, 2_000_000);
        m.batch(100);
        let mut store = StoreStats::default();
        // Syncs of 150 µs, 150 µs and 60 ms: buckets are per-bucket counts in the
        // store and cumulative on the wire.
        store.sync_latency_counts[1] = 2;
        store.sync_latency_counts[8] = 1;
        store.sync_micros_total = 60_300;
        let text = m.render(&store, &[]);
        for line in [
            r#"sluice_http_requests_total{route="POST /v1/events",status="201"} 2"#,
            r#"sluice_http_request_duration_seconds_bucket{route="POST /v1/events",le="0.0001"} 0"#,
            r#"sluice_http_request_duration_seconds_bucket{route="POST /v1/events",le="0.0005"} 1"#,
            r#"sluice_http_request_duration_seconds_bucket{route="POST /v1/events",le="5"} 2"#,
            r#"sluice_http_request_duration_seconds_bucket{route="POST /v1/events",le="+Inf"} 2"#,
            r#"sluice_http_request_duration_seconds_sum{route="POST /v1/events"} 2.0003"#,
            r#"sluice_http_request_duration_seconds_count{route="POST /v1/events"} 2"#,
            r#"sluice_batch_size_bucket{le="50"} 0"#,
            r#"sluice_batch_size_bucket{le="100"} 1"#,
            r#"sluice_batch_size_bucket{le="+Inf"} 1"#,
            "sluice_batch_size_sum 100",
            "sluice_batch_size_count 1",
            r#"sluice_store_fsync_seconds_bucket{le="0.0001"} 0"#,
            r#"sluice_store_fsync_seconds_bucket{le="0.0002"} 2"#,
            r#"sluice_store_fsync_seconds_bucket{le="0.05"} 3"#,
            r#"sluice_store_fsync_seconds_bucket{le="+Inf"} 3"#,
            "sluice_store_fsync_seconds_sum 0.0603",
            "sluice_store_fsync_seconds_count 3",
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
}
