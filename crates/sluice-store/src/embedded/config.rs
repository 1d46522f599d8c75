//! The embedded engine's settings, with their defaults and the reasons for them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::types::UnixMs;

/// When an acknowledged write is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Answer after the group commit's `fdatasync`. Nothing acknowledged is ever lost.
    Fsync,
    /// Answer after the `write`; `fdatasync` every interval. A power loss (not a process
    /// crash: the page cache survives kill -9) can lose up to one interval of events.
    Interval(Duration),
    /// Never sync (tests and throwaway benchmarks only). A power loss can lose anything
    /// not yet written back by the kernel.
    None,
}

/// Where "now" comes from. Tests use a manual clock to expire leases and retention
/// without sleeping.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that moves only when told to.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start`.
    pub fn manual(start: UnixMs) -> (Clock, Arc<AtomicI64>) {
        let cell = Arc::new(AtomicI64::new(start));
        (Clock::Manual(cell.clone()), cell)
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> UnixMs {
        match self {
            Clock::System => crate::types::now_ms(),
            Clock::Manual(cell) => cell.load(Ordering::Relaxed),
        }
    }
}

/// Settings for [`super::EmbeddedStore`].
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The data directory; created if missing.
    pub dir: PathBuf,
    /// See [`Durability`]. Default: `Fsync`.
    pub durability: Durability,
    /// Pre-allocated size of each segment. Default 64 MiB: large enough that sealing
    /// (one extra sync) is rare, small enough that retention frees space in useful steps.
    pub segment_bytes: u64,
    /// Commands the commit queue holds before callers get `Overloaded`. Default 8192.
    pub commit_queue_depth: usize,
    /// Payload bytes the commit queue holds before callers get `Overloaded`. Default
    /// 256 MiB: the memory bound of the write path whatever the request sizes.
    pub commit_queue_bytes_max: usize,
    /// Bytes one group commit writes at most. Default 8 MiB: big enough to amortise the
    /// sync (0.2 ms sync vs. ~4 ms to write 8 MiB), small enough to bound latency.
    pub batch_bytes_max: usize,
    /// How long an idempotency key is remembered. Default 24 h.
    pub dedup_window: Duration,
    /// How long acked events are kept for replay. Default 7 days.
    pub retention_acked: Duration,
    /// How long unconsumed events are kept. Default 30 days. This also bounds the log
    /// space that long-pending events can pin.
    pub retention_pending: Duration,
    /// Open despite damage in the middle of the log by truncating the damaged segment
    /// at the first bad batch. Loses the events after it; for operators, never default.
    pub repair: bool,
    /// The least time from the start of one sync to the start of the next, in `Fsync`
    /// mode, when the previous group commit carried more than one command. Commands
    /// that arrive meanwhile join the next group commit. Default 1 ms: under concurrent
    /// load, at most 1,000 syncs a second.
    ///
    /// Why a floor: cloud block devices meter operations. On this project's test VMs a
    /// loop of small write+fdatasync pairs runs at ~130 µs each until it passes
    /// ~2,500 syncs/s; from then on the device stalls for 10–20 ms every 100 ms (a token
    /// bucket refilling), and every request waiting on a sync waits that long. There,
    /// each sync costs four device operations (the data, the inode's new mtime, one
    /// more metadata block, the cache flush), so 1,000 syncs/s stay under the budget.
    /// (Not always: when the VM's CPUs are also busy, the same 100 ms stalls come at
    /// ~900 syncs/s, and they stop the whole VM; `bench/tail_floor.sh` measures that.)
    /// The cost is up to 1 ms of added latency under concurrent load; a lone client is
    /// never held back. Zero turns pacing off (fast local NVMe).
    pub sync_interval_min: Duration,
    /// Group commits that write at least this many bytes are synced on the sync thread
    /// while the writer encodes and writes the next one; smaller ones are synced on the
    /// writer thread. Default 256 KiB. A small commit's sync (~0.3 ms for the ~17 KB of
    /// 100 single-event producers) is over before `sync_interval_min` lets the next
    /// commit start, so there is nothing to overlap, and handing it over costs two
    /// thread wake-ups (~3 % of single-event throughput, six paired runs, all slower).
    /// A 2 MB batch commit syncs for ~4 ms; overlapping those gained ~10 % of batch
    /// ingest. Tests set 0 to send every commit through the overlapped path.
    pub sync_overlap_min_bytes: u64,
    /// Time source.
    pub clock: Clock,
    /// Extra time added to every group commit's sync, on whichever thread runs it: a
    /// slow-disk simulation so that tests and demos can drive the commit queue into
    /// overload, or hold a commit in flight. Zero in production.
    pub commit_delay: Duration,
}

impl EmbeddedConfig {
    /// Defaults for a data directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            dir: dir.into(),
            durability: Durability::Fsync,
            segment_bytes: 64 << 20,
            commit_queue_depth: 8192,
            commit_queue_bytes_max: 256 << 20,
            batch_bytes_max: 8 << 20,
            dedup_window: Duration::from_secs(24 * 3600),
            retention_acked: Duration::from_secs(7 * 24 * 3600),
            retention_pending: Duration::from_secs(30 * 24 * 3600),
            repair: false,
            sync_interval_min: Duration::from_millis(1),
            sync_overlap_min_bytes: 256 << 10,
            clock: Clock::System,
            commit_delay: Duration::ZERO,
        }
    }
}
