//! The embedded engine's counters, and the series it adds to `/metrics`.
//!
//! Plain relaxed atomics, bumped by the writer thread and read by a scrape: no lock, no
//! allocation on the commit path.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::exposition::Exposition;

/// Upper bounds, in microseconds, of the sync-latency buckets; the last bucket is
/// unbounded. From the cheapest sync of a fast disk to the stalls worth an alert.
pub const SYNC_LATENCY_BOUNDS_US: [u64; 12] = [
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    250_000,
    u64::MAX,
];

/// Lock-free counters, see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) events_appended: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) sync_micros_total: AtomicU64,
    /// Syncs by latency, per bucket of [`SYNC_LATENCY_BOUNDS_US`] (not cumulative): a
    /// mean hides the stalls that set the p99 of ingest; these show them.
    pub(crate) sync_latency: [AtomicU64; SYNC_LATENCY_BOUNDS_US.len()],
    pub(crate) segments_purged: AtomicU64,
    pub(crate) pending_expired: AtomicU64,
    /// Events moved to the inbox dead letters.
    pub(crate) dead_lettered: AtomicU64,
    /// Reads that missed the page cache and went to the blocking pool.
    pub(crate) reads_uncached: AtomicU64,
}

/// The engine's own figures at one moment, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineGauges {
    /// Segments on disk.
    pub segments: u64,
    /// Bytes of log on disk.
    pub log_bytes: u64,
    /// Bytes of log kept only because old segments still hold pending events (the
    /// space that long-pending events pin; bounded by `retention.pending`).
    pub pinned_bytes: u64,
    /// Sealed segments the background scrub found damaged (readiness turns off).
    pub corrupt_segments: u64,
}

impl Counters {
    /// Writes the engine's series, with the names `/metrics` has always had.
    pub(crate) fn write(&self, gauges: &EngineGauges, out: &mut Exposition) {
        out.family(
            "sluice_store_fsync_seconds",
            "histogram",
            "Latency of each group commit's fdatasync.",
        );
        out.histogram(
            "sluice_store_fsync_seconds",
            "",
            &SYNC_LATENCY_BOUNDS_US,
            self.sync_latency.iter().map(|c| c.load(Ordering::Relaxed)),
            self.sync_micros_total.load(Ordering::Relaxed),
            1e6,
        );
        out.gauge(
            "sluice_store_segments",
            "Log segments on disk.",
            gauges.segments,
        );
        out.gauge(
            "sluice_store_log_bytes",
            "Bytes of log on disk.",
            gauges.log_bytes,
        );
        out.gauge(
            "sluice_store_pinned_bytes",
            "Log bytes kept only because old segments hold pending events.",
            gauges.pinned_bytes,
        );
        out.counter(
            "sluice_store_segments_purged_total",
            "Segments removed by retention.",
            self.segments_purged.load(Ordering::Relaxed),
        );
        out.counter(
            "sluice_store_reads_uncached_total",
            "Reads of records that were not in the page cache (served on the blocking pool).",
            self.reads_uncached.load(Ordering::Relaxed),
        );
        out.gauge(
            "sluice_store_corrupt_segments",
            "Sealed segments the background scrub found damaged.",
            gauges.corrupt_segments,
        );
    }
}
