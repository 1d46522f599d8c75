//! Reading records back: the blocking half of `get`, `list` and `read_log`.
//!
//! The index is consulted under its lock for locations only; the reads happen after it
//! is released, and never wait for the disk on an async worker: an async worker stuck on
//! a read stalls every connection it serves. So [`read`] first reads from the page cache
//! only (`RWF_NOWAIT`, on the caller's worker: a hit costs a microsecond or two), and
//! only on a miss moves the read to tokio's blocking pool. Always using the pool cost
//! two thread wake-ups per read: the crash test's 190,000 reads went from 3 s to 16 s.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use std::sync::atomic::Ordering;

use super::codec::{self, Record, RECORD_HEADER_LEN};
use super::counters::Counters;
use super::error::EngineError;
use super::index::Location;
use super::segment::{self, ReadMode};
use crate::error::StoreError;
use crate::event_id::EventId;
use crate::types::{EventState, LogEvent, Sequence, StoredEvent, TenantId};

/// Reads `data` with `read`: from the page cache at once if it is all there, else on
/// the blocking pool (see the module docs).
pub(crate) async fn read<D, T, F>(counters: &Counters, data: D, read: F) -> Result<T, StoreError>
where
    D: Send + 'static,
    T: Send + 'static,
    F: Fn(&D, ReadMode) -> Result<T, EngineError> + Send + 'static,
{
    match read(&data, ReadMode::Cached) {
        Err(EngineError::NotCached) => {
            counters.reads_uncached.fetch_add(1, Ordering::Relaxed);
            blocking(move || read(&data, ReadMode::Wait)).await
        }
        other => other.map_err(StoreError::from),
    }
}

/// Runs a blocking call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(read).await {
        Ok(result) => result.map_err(StoreError::from),
        Err(e) => Err(StoreError::Unavailable(format!(
            "a read on the blocking pool failed: {e}"
        ))),
    }
}

/// One event to read for an inbox answer: where it is and the state to report.
pub(crate) struct Wanted {
    pub(crate) seq: Sequence,
    pub(crate) location: Location,
    pub(crate) delivery_count: u32,
    pub(crate) state: EventState,
}

/// Reads the records of `wanted` into events of `tenant`. A record of another tenant
/// is left out (the index said it was this tenant's: it never is, but a read must not
/// return another tenant's event on anyone's word).
pub(crate) fn read_events(
    salt: u16,
    tenant: TenantId,
    wanted: &[Wanted],
    mode: ReadMode,
) -> Result<Vec<StoredEvent>, EngineError> {
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let l = &w.location;
        let bytes = segment::read_record(&l.file, &l.path, l.offset, mode)?;
        if let Some(e) = decode_event(salt, tenant, w.seq, &w.location, &bytes)? {
            out.push(StoredEvent {
                id: e.id,
                tenant: e.tenant,
                event_type: e.event_type,
                source: e.source,
                occurred_at: e.occurred_at,
                received_at: e.received_at,
                payload: e.payload,
                delivery_count: w.delivery_count,
                state: w.state,
            });
        }
    }
    Ok(out)
}

/// Decodes the event record at the start of `bytes`, expected to be `seq`. `None` when
/// it belongs to another tenant; an error when it is not that event at all (the index
/// and the log disagree: corruption).
fn decode_event(
    salt: u16,
    tenant: TenantId,
    seq: Sequence,
    location: &Location,
    bytes: &Bytes,
) -> Result<Option<LogEvent>, EngineError> {
    let corrupt = |reason: String| EngineError::Corrupt {
        path: location.path.clone(),
        offset: location.offset,
        reason,
    };
    let Ok(Record::Event(e)) = codec::read_record(bytes) else {
        return Err(corrupt(
            "index points at a record that is not an event".into(),
        ));
    };
    if e.seq != seq {
        return Err(corrupt(format!(
            "index points at sequence {} instead of {}",
            e.seq.0, seq.0
        )));
    }
    if e.tenant != tenant {
        return Ok(None);
    }
    let slice = |field: &[u8]| bytes.slice_ref(field);
    Ok(Some(LogEvent {
        id: EventId::new(e.received_at, e.seq, salt),
        tenant: e.tenant,
        event_type: slice(e.event_type),
        source: e.source.map(slice),
        occurred_at: e.occurred_at.map(slice),
        received_at: e.received_at,
        payload: slice(e.payload),
    }))
}

/// A stretch of one segment to read in one `pread`: the records of consecutive
/// sequences, with whatever settle records lie between them.
pub(crate) struct Span {
    pub(crate) file: Arc<std::fs::File>,
    pub(crate) path: PathBuf,
    /// Where the stretch starts (the first wanted record).
    pub(crate) start: u64,
    /// Where it ends (the record after the last wanted one, or the segment's end).
    pub(crate) end: u64,
    /// The wanted records: sequence and offset.
    pub(crate) records: Vec<(Sequence, u64)>,
}

/// Bytes one span reads at most; a longer run of records is cut into several spans.
pub(crate) const SPAN_BYTES_MAX: u64 = 1 << 20;

/// Reads spans and returns `tenant`'s events of type `event_type` (any when `None`),
/// in order.
pub(crate) fn read_spans(
    salt: u16,
    tenant: TenantId,
    event_type: Option<&[u8]>,
    spans: &[Span],
    mode: ReadMode,
) -> Result<Vec<LogEvent>, EngineError> {
    let mut out = Vec::new();
    for span in spans {
        // Spans are built from the index's own offsets; an inverted one would be a bug
        // in building them, not damage on disk.
        assert!(span.end >= span.start, "span ends before it starts");
        let len = span.end - span.start;
        let bytes = segment::read_span(&span.file, &span.path, span.start, len, mode)?;
        for &(seq, offset) in &span.records {
            let rel = (offset - span.start) as usize;
            let location = Location {
                file: span.file.clone(),
                path: span.path.clone(),
                offset,
                state: 0,
                acked_count: 0,
            };
            let record = bytes.slice(rel..);
            let len = codec::record_len(&record).map_err(|reason| EngineError::Corrupt {
                path: span.path.clone(),
                offset,
                reason: reason.into(),
            })?;
            let record = record.slice(..(RECORD_HEADER_LEN + len).min(record.len()));
            if let Some(e) = decode_event(salt, tenant, seq, &location, &record)? {
                if event_type.is_none_or(|t| t == &e.event_type[..]) {
                    out.push(e);
                }
            }
        }
    }
    Ok(out)
}
