//! Read-only checks of a data directory, for `sluice check` and `sluice inspect`.
//!
//! These never modify anything (no torn-tail truncation, no repair), so they are safe
//! to run on a copy or, for a quick look, beside a running server.

use std::path::{Path, PathBuf};

use super::codec::{Record, SegmentHeader};
use super::error::EngineError;
use super::scan::{self, Damage};
use super::segment;
use crate::types::{Settle, UnixMs};

/// What one segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// The file.
    pub path: PathBuf,
    /// Its first sequence (from its name; 0 when the header is unreadable).
    pub base_seq: u64,
    /// Size on disk, pre-allocated space included.
    pub file_bytes: u64,
    /// Bytes of valid data.
    pub data_bytes: u64,
    /// Valid batches (group commits).
    pub batches: u64,
    /// Event records.
    pub events: u64,
    /// Acked sequences recorded here.
    pub acks: u64,
    /// Deleted sequences recorded here.
    pub deletes: u64,
    /// Events moved to, or requeued from, the dead letters.
    pub dead_letter_moves: u64,
    /// Control records (subscription progress, replay requests).
    pub controls: u64,
    /// Oldest and newest receive time of its events.
    pub received_range: Option<(UnixMs, UnixMs)>,
    /// Payload bytes of its events.
    pub payload_bytes: u64,
    /// The header problem, or the first damaged batch.
    pub damage: Option<Damage>,
    /// Whether this is the last (active) segment, where a damaged final batch without
    /// valid data after it is a torn write that opening will cut off.
    pub is_last: bool,
}

impl SegmentReport {
    /// Whether opening the store would refuse this segment.
    pub fn is_corrupt(&self) -> bool {
        match &self.damage {
            None => false,
            Some(d) => !self.is_last || d.valid_batch_follows,
        }
    }
}

/// The whole directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirReport {
    /// Every segment, oldest first.
    pub segments: Vec<SegmentReport>,
}

impl DirReport {
    /// Total events stored.
    pub fn events(&self) -> u64 {
        self.segments.iter().map(|s| s.events).sum()
    }

    /// Whether any segment is corrupt (as opposed to a torn tail).
    pub fn is_corrupt(&self) -> bool {
        self.segments.iter().any(SegmentReport::is_corrupt)
    }
}

/// Reads every segment of `dir` and verifies every checksum.
pub fn verify_dir(dir: &Path) -> Result<DirReport, EngineError> {
    if !dir.is_dir() {
        return Err(EngineError::NotFound(format!(
            "data directory {}",
            dir.display()
        )));
    }
    let mut report = DirReport::default();
    let listed = segment::list_readonly(dir)?;
    let count = listed.len();
    for (i, (base, path)) in listed.into_iter().enumerate() {
        let bytes = std::fs::read(&path).map_err(|e| EngineError::io(&path, e))?;
        let mut seg = SegmentReport {
            path,
            base_seq: base.0,
            file_bytes: bytes.len() as u64,
            data_bytes: 0,
            batches: 0,
            events: 0,
            acks: 0,
            deletes: 0,
            dead_letter_moves: 0,
            controls: 0,
            received_range: None,
            payload_bytes: 0,
            damage: None,
            is_last: i + 1 == count,
        };
        if let Err(reason) = SegmentHeader::decode(&bytes) {
            seg.damage = Some(Damage {
                offset: 0,
                reason,
                valid_batch_follows: true,
            });
            report.segments.push(seg);
            continue;
        }
        let mut bad_control = None;
        let walk = scan::walk(&bytes, |offset, record| match record {
            Record::Event(e) => {
                seg.events += 1;
                seg.payload_bytes += e.payload.len() as u64;
                let (lo, hi) = seg.received_range.unwrap_or((e.received_at, e.received_at));
                seg.received_range = Some((lo.min(e.received_at), hi.max(e.received_at)));
            }
            Record::Settle(s) => {
                let n = s.seqs().count() as u64;
                match s.how {
                    Settle::Ack => seg.acks += n,
                    Settle::Delete => seg.deletes += n,
                    Settle::Dead | Settle::Requeue => seg.dead_letter_moves += n,
                }
            }
            Record::Control(c) => {
                seg.controls += 1;
                if let (Err(reason), None) = (super::control::Control::decode(c), &bad_control) {
                    bad_control = Some(Damage {
                        offset,
                        reason,
                        valid_batch_follows: true,
                    });
                }
            }
        });
        seg.data_bytes = walk.end;
        seg.batches = walk.batches;
        // A control record that passed its checksum but does not decode is damage too
        // (recovery would refuse it); the first damage found is the one reported.
        seg.damage = match (walk.damage, bad_control) {
            (Some(d), Some(c)) if c.offset < d.offset => Some(c),
            (Some(d), _) => Some(d),
            (None, c) => c,
        };
        report.segments.push(seg);
    }
    Ok(report)
}
