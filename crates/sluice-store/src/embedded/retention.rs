//! Retention: pending events older than `retention.pending` expire, and whole segments
//! go once nothing in them is needed.
//!
//! Run by the writer thread about once a second, off the commit path's code. The rules:
//! - a sealed segment whose newest event is past `retention.pending` has its pending
//!   events expired, all at once (they leave every inbox, and reads stop finding them);
//! - segments are removed oldest first only, and only when none of their events is
//!   pending, no subscription still has to deliver one of them, and their newest
//!   receive, ack or delete is past `retention.acked`. Oldest first is what keeps an ack
//!   record from going while the event it acks is still on disk (which would resurrect
//!   that event at the next open), and a subscription's latest progress record from
//!   going while it still matters (a subscription with no record left is past every
//!   removed segment: recovery starts it after them).
//!
//! The active segment is never touched.

use std::sync::atomic::Ordering;

use super::config::EmbeddedConfig;
use super::index::STATE_EXPIRED;
use super::writer::Links;
use crate::types::UnixMs;

/// One retention pass at `now`; see the module docs.
pub(crate) fn run(config: &EmbeddedConfig, links: &Links, active_base: u64, now: UnixMs) {
    let pending_cutoff = now - config.retention_pending.as_millis() as i64;
    let acked_cutoff = now - config.retention_acked.as_millis() as i64;
    let mut removable = Vec::new();
    {
        let mut guard = links.index.lock();
        let index = &mut *guard;
        let mut expired_to = 0;
        for seg in index.segments.iter_mut() {
            if seg.base_seq == active_base
                || seg.pending == 0
                || seg.received_last >= pending_cutoff
            {
                continue;
            }
            let (lo, hi) = (seg.base_seq, seg.end_seq());
            let mut expired = 0;
            for inbox in index.inboxes.values_mut() {
                for s in inbox.remove_range(lo, hi) {
                    seg.states[(s - lo) as usize] = STATE_EXPIRED;
                    expired += 1;
                }
            }
            seg.pending = 0;
            expired_to = expired_to.max(hi);
            links
                .counters
                .pending_expired
                .fetch_add(expired, Ordering::Relaxed);
        }
        // What subscriptions had not delivered there expires with it.
        if expired_to > 0 {
            index.deliveries.forget_before(expired_to);
        }
        let floor = index.deliveries.floor().unwrap_or(u64::MAX);
        while index.segments.len() > 1 {
            let seg = &index.segments[0];
            if seg.pending > 0
                || seg.end_seq() > floor
                || seg.received_last.max(seg.settled_last) >= acked_cutoff
            {
                break;
            }
            removable.push(index.segments.remove(0).path);
        }
        if !removable.is_empty() {
            let first = index.segments.first().map_or(0, |s| s.base_seq);
            index.deliveries.forget_before(first);
        }
    }
    if removable.is_empty() {
        return;
    }
    // Outside the index lock: unlinking touches the file system, and an in-flight read
    // of a removed segment keeps its open file (see `SegmentMeta::file`).
    for path in &removable {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an expired segment");
        }
        let checkpoint = super::sidecar::path_for(path);
        if let Err(e) = std::fs::remove_file(&checkpoint) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %checkpoint.display(), error = %e, "could not remove an expired segment's checkpoint");
            }
        }
    }
    if let Err(e) = super::fsutil::sync_dir(&config.dir) {
        tracing::warn!(error = %e, "could not sync the data directory after retention");
    }
    links
        .counters
        .segments_purged
        .fetch_add(removable.len() as u64, Ordering::Relaxed);
}
