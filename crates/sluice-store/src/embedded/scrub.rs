//! The background scrub: verifies, after open, the sealed segments that recovery loaded
//! from index checkpoints without reading them (see [`super::recovery`]).
//!
//! Damage is never skipped silently: it is logged with the file and byte offset, counted
//! in [`crate::StoreStats::corrupt_segments`] (which turns readiness off), and every read
//! of an affected record fails with a `Corrupt` error naming the same place.

use std::path::PathBuf;

use parking_lot::{Condvar, Mutex};

use super::scan;

/// One damaged segment found by the scrub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubDamage {
    /// The segment.
    pub path: PathBuf,
    /// Byte offset of the first bad batch.
    pub offset: u64,
    /// What check failed.
    pub reason: &'static str,
}

/// What the scrub found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Segments verified.
    pub verified: u64,
    /// Damaged segments.
    pub damage: Vec<ScrubDamage>,
}

/// Shared scrub state: the report once done, and a condition to wait on.
#[derive(Debug, Default)]
pub struct Scrub {
    done: Mutex<Option<ScrubReport>>,
    finished: Condvar,
    /// Set when the store closes: the scrub stops between segments.
    stop: std::sync::atomic::AtomicBool,
    /// Damaged segments found so far. Counted the moment one is found, before it is
    /// logged: whoever reads the log line must already see readiness off, even while
    /// the scrub goes on through the remaining segments.
    damaged: std::sync::atomic::AtomicU64,
}

impl Scrub {
    /// Verifies `segments` on a background thread.
    pub fn start(self: &std::sync::Arc<Self>, segments: Vec<PathBuf>) -> std::io::Result<()> {
        let scrub = self.clone();
        std::thread::Builder::new().name("sluice-scrub".into()).spawn(move || {
            super::fsutil::lower_thread_priority();
            let mut report = ScrubReport::default();
            for path in segments {
                if scrub.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    // Removed by retention meanwhile: nothing left to verify.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "scrub could not read a segment");
                        continue;
                    }
                };
                let walk = scan::walk(&bytes, |_, _| {});
                report.verified += 1;
                if let Some(d) = walk.damage {
                    scrub.damaged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tracing::error!(
                        path = %path.display(),
                        offset = d.offset,
                        reason = d.reason,
                        "corrupt sealed segment: reads of events from this offset on will fail; run `sluice check`, then `sluice serve --repair`"
                    );
                    report.damage.push(ScrubDamage { path, offset: d.offset, reason: d.reason });
                }
            }
            *scrub.done.lock() = Some(report);
            scrub.finished.notify_all();
        })?;
        Ok(())
    }

    /// Asks the scrub to stop at the next segment (the store is closing).
    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Damaged segments found so far (the scrub may still be running).
    pub fn damaged(&self) -> u64 {
        self.damaged.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Blocks until the scrub has finished.
    pub fn wait(&self) -> ScrubReport {
        let mut done = self.done.lock();
        loop {
            if let Some(report) = done.as_ref() {
                return report.clone();
            }
            self.finished.wait(&mut done);
        }
    }
}
