//! Opening a data directory: replay the log into the indexes, cut a torn tail, and
//! refuse (or, in repair mode, cut) damage anywhere else.
//!
//! The rules, in order:
//! - a `.seg` file always has a valid header (segments are created under a temporary
//!   name and renamed), so a bad header is corruption;
//! - damage in the **last** segment that no valid batch follows is a torn final write:
//!   that batch was never acknowledged (its sync never returned), so it is cut off;
//! - any other damage is corruption: opening fails with the file and the byte offset,
//!   unless `repair` is set, which cuts the segment at the damage and says so;
//! - sealed segments with a matching index checkpoint ([`super::sidecar`]) are loaded
//!   from it without reading their payloads; only the active segment is always walked
//!   and verified in full before the store opens. The checkpointed segments are then
//!   verified by a background scrub ([`super::scrub`]): damage there is reported with
//!   its file and offset (log, metric, readiness), every read of a damaged record fails
//!   with the same, and `repair` walks everything. Verifying all of them before opening
//!   would read every payload ever stored, which is what the checkpoints exist to avoid
//!   (10 M events must open in under 5 s).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::codec::{ControlRecord, Record, SegmentHeader, SEGMENT_HEADER_LEN};
use super::config::EmbeddedConfig;
use super::control::Control;
use super::error::EngineError;
use super::fsutil;
use super::idempotency::IdempotencyIndex;
use super::index::{Index, SegmentMeta};
use super::scan;
use super::segment;
use super::sidecar::{self, Sidecar};
use crate::types::{Sequence, UnixMs};

/// The writer's starting point.
#[derive(Debug)]
pub struct Recovered {
    /// Rebuilt shared indexes.
    pub index: Index,
    /// Rebuilt dedup index.
    pub idempotency: IdempotencyIndex,
    /// The next sequence to assign.
    pub next_seq: Sequence,
    /// The latest receive time seen, so ids stay time-ordered across restarts.
    pub last_ms: UnixMs,
    /// The store's id salt.
    pub salt: u16,
    /// The active (last) segment: its file, path, write position and capacity.
    pub active: (Arc<File>, PathBuf, u64, u64),
    /// What recovery did that an operator should hear about.
    pub notes: Vec<String>,
    /// Sealed segments loaded from index checkpoints, so not verified yet: the
    /// background scrub verifies them.
    pub unverified: Vec<PathBuf>,
}

/// Opens (creating if needed) the log in `config.dir`. The catalog's named consumers
/// are in the index before the log is replayed, so each event goes into their queues
/// as it did when it was committed, and their settle records find it there.
pub fn recover(
    config: &EmbeddedConfig,
    consumers: &[crate::catalog::Consumer],
) -> Result<Recovered, EngineError> {
    let dir = &config.dir;
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let mut segments = segment::list(dir)?;
    let now = config.clock.now_ms();
    if segments.is_empty() {
        let header = SegmentHeader {
            salt: rand::random(),
            base_seq: Sequence(1),
        };
        let (_, path) = segment::create(dir, header, config.segment_bytes)?;
        segments.push((header.base_seq, path));
    }

    let mut index = Index::default();
    for c in consumers {
        let filter = crate::feed::TypeFilter::of_patterns(&c.event_types);
        let start = c.start_after.0;
        let slot = super::index::ConsumerSlot::new(c.id, start, start + 1, filter);
        index.add_consumer(c.tenant, slot);
    }
    let mut idempotency = IdempotencyIndex::new(config.dedup_window.as_millis() as i64);
    let mut notes = Vec::new();
    let mut salt = None;
    let mut last_ms = 0;
    let mut unverified = Vec::new();
    let count = segments.len();

    for (i, (base, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == count;
        // Sealed segments load from their index checkpoint when it matches exactly;
        // repair walks everything, so that it finds and cuts all damage.
        if !is_last && !config.repair {
            if let Some((header, sidecar, len)) = load_sidecar(path)? {
                push_segment(
                    &mut index,
                    &mut salt,
                    path,
                    *base,
                    header,
                    sidecar.events.len(),
                    len,
                )?;
                apply_sidecar(
                    &mut index,
                    &mut idempotency,
                    &mut last_ms,
                    base.0,
                    &sidecar,
                    now,
                )
                .map_err(|reason| corrupt(&sidecar::path_for(path), 0, reason))?;
                unverified.push(path.clone());
                continue;
            }
        }
        let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
        let header = SegmentHeader::decode(&bytes).map_err(|reason| corrupt(path, 0, reason))?;
        let file = push_segment(&mut index, &mut salt, path, *base, header, 0, 0)?;

        let mut order_error = None;
        let mut control_error = None;
        let walk = scan::walk(&bytes, |offset, record| {
            if order_error.is_some() || control_error.is_some() {
                return;
            }
            match record {
                Record::Event(e) => {
                    let expected = index.segments.last().map_or(0, |s| s.end_seq());
                    if e.seq.0 != expected {
                        order_error = Some(offset);
                        return;
                    }
                    index.add_event(e.seq, e.tenant, e.event_type, offset as u32, e.received_at);
                    last_ms = last_ms.max(e.received_at);
                    if let Some(h) = e.idempotency {
                        if idempotency.is_live(e.received_at, now) {
                            idempotency.insert(h.key_hash, e.seq, e.received_at, h.fingerprint);
                        }
                    }
                }
                Record::Settle(s) => {
                    for seq in s.seqs() {
                        let inbox = crate::types::InboxKey {
                            tenant: s.tenant,
                            consumer: s.consumer,
                        };
                        index.apply_settle(inbox, seq, s.how, s.at);
                    }
                }
                Record::Control(c) => match Control::decode(c) {
                    Ok(control) => index.deliveries.apply(&control),
                    Err(reason) => control_error = Some((offset, reason)),
                },
            }
        });
        if let Some(offset) = order_error {
            return Err(corrupt(path, offset, "event sequence out of order"));
        }
        if let Some((offset, reason)) = control_error {
            return Err(corrupt(path, offset, reason));
        }

        let mut end = walk.end;
        if let Some(d) = walk.damage {
            let torn_tail = is_last && !d.valid_batch_follows;
            if !torn_tail && !config.repair {
                return Err(corrupt(path, d.offset, d.reason));
            }
            notes.push(format!(
                "{}: {} at byte {}; {} (the bytes from there on are discarded)",
                path.display(),
                d.reason,
                d.offset,
                if torn_tail {
                    "torn final write cut off"
                } else {
                    "repair: segment truncated"
                },
            ));
            // Zero everything from the damage on, so that a later open finds clean
            // zero fill there rather than the old bytes.
            let reserve = if is_last {
                config.segment_bytes.max(d.offset)
            } else {
                d.offset
            };
            file.set_len(d.offset)
                .and_then(|()| {
                    if is_last {
                        fsutil::preallocate(&file, reserve)
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| file.sync_all())
                .map_err(|e| EngineError::io(path, e))?;
            end = d.offset;
        }
        if let Some(seg) = index.segments.last_mut() {
            seg.bytes = end;
        }
        // A sealed segment without a usable checkpoint gets one now (best effort: the
        // next open simply walks it again if this fails).
        if !is_last && end == bytes.len() as u64 {
            if let (Ok(header), Some(sidecar)) =
                (SegmentHeader::decode(&bytes), sidecar::from_segment(&bytes))
            {
                if let Err(e) = sidecar::write(path, &sidecar::encode(&sidecar, header, end)) {
                    tracing::warn!(path = %path.display(), error = %e, "could not write an index checkpoint");
                }
            }
        }
    }

    // Invariant: the list is never empty (a first segment was created above), and every
    // segment's header names the salt.
    let last = index
        .segments
        .last()
        .ok_or_else(|| corrupt(dir, 0, "no segment after recovery"))?;
    let salt = salt.ok_or_else(|| corrupt(dir, 0, "no segment header named the store's salt"))?;
    let capacity = last
        .file
        .metadata()
        .map_err(|e| EngineError::io(&last.path, e))?
        .len()
        .max(config.segment_bytes);
    let next_seq = Sequence(last.end_seq());
    // Deliveries that were in flight at the crash are handed out again, and nothing the
    // log no longer holds is waited for.
    let first = index.segments[0].base_seq;
    for state in index.deliveries.subs.values_mut() {
        state.recovered();
        state.forget_before(first);
    }
    let active = (last.file.clone(), last.path.clone(), last.bytes, capacity);
    Ok(Recovered {
        index,
        idempotency,
        next_seq,
        last_ms,
        salt,
        active,
        notes,
        unverified,
    })
}

/// Checks a segment's header against its file name, the store's salt and the previous
/// segment, then starts its entry in the index. Sequences continue from the previous
/// segment; a gap is allowed only where an operator's repair cut events out.
fn push_segment(
    index: &mut Index,
    salt: &mut Option<u16>,
    path: &Path,
    base: Sequence,
    header: SegmentHeader,
    events_hint: usize,
    bytes: u64,
) -> Result<Arc<File>, EngineError> {
    if header.base_seq != base {
        return Err(corrupt(
            path,
            0,
            "segment header disagrees with its file name",
        ));
    }
    if *salt.get_or_insert(header.salt) != header.salt {
        return Err(corrupt(
            path,
            0,
            "segment belongs to another store (salt differs)",
        ));
    }
    if index
        .segments
        .last()
        .is_some_and(|prev| base.0 < prev.end_seq())
    {
        return Err(corrupt(path, 0, "segment overlaps the previous one"));
    }
    let file = Arc::new(segment::open(path)?);
    index.segments.push(SegmentMeta::new(
        base.0,
        path.to_path_buf(),
        file.clone(),
        events_hint,
        bytes,
    ));
    Ok(file)
}

/// Reads a sealed segment's header and its sidecar; `None` when there is no sidecar or
/// it does not match the segment exactly (then the segment is walked instead).
fn load_sidecar(path: &Path) -> Result<Option<(SegmentHeader, Sidecar, u64)>, EngineError> {
    let Ok(bytes) = std::fs::read(sidecar::path_for(path)) else {
        return Ok(None);
    };
    let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let len = file.metadata().map_err(|e| EngineError::io(path, e))?.len();
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    if std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).is_err() {
        return Ok(None);
    }
    let Ok(header) = SegmentHeader::decode(&head) else {
        return Ok(None);
    };
    Ok(sidecar::decode(&bytes, header, len).map(|s| (header, s, len)))
}

/// Applies a checkpoint exactly as walking its segment would: events (which are
/// contiguous from the segment's base sequence), then its ack and delete records.
fn apply_sidecar(
    index: &mut Index,
    idempotency: &mut IdempotencyIndex,
    last_ms: &mut UnixMs,
    base: u64,
    sidecar: &Sidecar,
    now: UnixMs,
) -> Result<(), &'static str> {
    for (i, e) in sidecar.events.iter().enumerate() {
        let seq = Sequence(base + i as u64);
        let event_type = &sidecar.types[e.type_index as usize];
        index.add_event(seq, e.tenant, event_type, e.offset, e.received_at);
        *last_ms = (*last_ms).max(e.received_at);
        if let Some(h) = e.idempotency {
            if idempotency.is_live(e.received_at, now) {
                idempotency.insert(h.key_hash, seq, e.received_at, h.fingerprint);
            }
        }
    }
    for s in &sidecar.settles {
        for &seq in &s.seqs {
            index.apply_settle(s.inbox, seq, s.how, s.at);
        }
    }
    for (kind, fields) in &sidecar.controls {
        let record = ControlRecord {
            kind: *kind,
            fields,
        };
        index.deliveries.apply(&Control::decode(record)?);
    }
    Ok(())
}

fn corrupt(path: &Path, offset: u64, reason: &str) -> EngineError {
    EngineError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.to_owned(),
    }
}
