//! Index checkpoints: one `<segment>.idx` per sealed segment.
//!
//! Opening a store must not read every payload ever written: at 10 M events of ~600
//! bytes that is 6 GB, several seconds even from the page cache. So each segment gets a
//! sidecar with exactly what recovery derives from it (each event's offset, tenant,
//! receive time, type and idempotency hashes, and the segment's ack and delete records),
//! about 20 bytes per event: the writer builds it in memory as it commits
//! ([`SidecarBuilder`]) and a background thread writes it when the segment is sealed. Recovery loads sealed
//! segments from their sidecars and replays only the active segment in full.
//!
//! A sidecar is trusted only if its own checksum matches and it names the segment's
//! base sequence, salt and exact length; otherwise (missing, damaged, stale) recovery
//! walks the segment instead and writes a fresh sidecar. `sluice check` ignores sidecars
//! and verifies every byte of every segment.
//!
//! ```text
//! sidecar := magic "SLUICEIX" | version u32 | salt u16 | 0u16 | base_seq u64 | data_len u64
//!            | types u32 | (len u16 | bytes)* | events u32 | event* | settles u32 | settle*
//!            | crc u32 (of everything before it)
//! event   := offset u32 | tenant u32 | received_at i64 | type u16 | has_key u8 | [key 16 | fp 16]
//! settle  := kind u8 | [consumer u32, for kind 8 + how (a named consumer's)]
//!            | tenant u32 | at i64 | count u32 | seq u64 * count
//!            (kinds as in the log's settle records, see `codec`)
//! control := kind u8 | len u32 | fields        (a control record, as in the log)
//! ```

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::codec::{self, IdempotencyHashes, Record, SegmentHeader};
use super::index::TypeInterner;
use super::scan;
use crate::types::{ConsumerId, InboxKey, Sequence, Settle, TenantId, UnixMs};

const MAGIC: &[u8; 8] = b"SLUICEIX";
/// Version 2 added the control records; a version 1 sidecar is stale (recovery walks
/// its segment and writes a new one).
const VERSION: u32 = 2;

/// A named consumer's settle is its kind byte plus this (so 8 + 2 for an ack), followed
/// by the consumer: kinds below it keep their version 2 meaning, so no version bump.
const NAMED_SETTLE_BASE: u8 = 8;

/// One event as recovery needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedEvent {
    /// Record offset in the segment.
    pub offset: u32,
    /// Owner.
    pub tenant: TenantId,
    /// Receive time.
    pub received_at: UnixMs,
    /// Index into [`Sidecar::types`].
    pub type_index: u16,
    /// Idempotency hashes, if the event had a key.
    pub idempotency: Option<IdempotencyHashes>,
}

/// One ack or delete record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedSettle {
    /// Ack or delete.
    pub how: Settle,
    /// Whose inbox.
    pub inbox: InboxKey,
    /// When.
    pub at: UnixMs,
    /// Which.
    pub seqs: Vec<Sequence>,
}

/// What recovery needs from one sealed segment, in log order within each list. Events
/// and settles of one segment are applied events first: a settle can only refer to an
/// event written before it, and events of the same segment come before their settles in
/// the log, so the order is preserved where it matters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sidecar {
    /// Event type names used in this segment.
    pub types: Vec<Vec<u8>>,
    /// Events, in sequence order.
    pub events: Vec<IndexedEvent>,
    /// Ack and delete records, in log order.
    pub settles: Vec<IndexedSettle>,
    /// Control records (kind, fields), in log order.
    pub controls: Vec<(u8, Vec<u8>)>,
}

/// The sidecar path of a segment.
pub fn path_for(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// A sidecar built alongside the log, by the writer, from what it commits: sealing a
/// segment then needs no read-back. Reading and checking a sealed 64 MiB segment cost
/// 200–300 ms of background CPU per roll-over (every third of a second under batch
/// ingest), and the group commit stalled behind it. [`from_segment`] stays for what the
/// writer did not see: a segment that already held data when the store was opened.
#[derive(Debug, Default)]
pub struct SidecarBuilder {
    sidecar: Sidecar,
    /// Type names to their index in `sidecar.types`: ids are handed out in order, so an
    /// id equal to the number of types so far is a new type.
    type_ids: TypeInterner,
    /// The segment held records before this builder saw any, or used more event types
    /// than the format holds: no sidecar from memory.
    incomplete: bool,
}

impl SidecarBuilder {
    /// A builder for a segment the writer has seen from its first record (`complete`),
    /// or one it has not.
    pub fn new(complete: bool) -> SidecarBuilder {
        SidecarBuilder {
            incomplete: !complete,
            ..SidecarBuilder::default()
        }
    }

    /// Adds a committed event, in sequence order.
    pub fn event(
        &mut self,
        offset: u32,
        tenant: TenantId,
        received_at: UnixMs,
        event_type: &[u8],
        idempotency: Option<IdempotencyHashes>,
    ) {
        if self.incomplete {
            return;
        }
        let id = self.type_ids.intern(event_type);
        let Ok(type_index) = u16::try_from(id) else {
            // Type indexes are u16: such a segment gets no sidecar.
            self.incomplete = true;
            return;
        };
        if usize::from(type_index) == self.sidecar.types.len() {
            self.sidecar.types.push(event_type.to_vec());
        }
        self.sidecar.events.push(IndexedEvent {
            offset,
            tenant,
            received_at,
            type_index,
            idempotency,
        });
    }

    /// Adds a committed ack or delete record, in log order.
    pub fn settle(&mut self, settle: IndexedSettle) {
        if !self.incomplete {
            self.sidecar.settles.push(settle);
        }
    }

    /// Adds a committed control record, in log order.
    pub fn control(&mut self, kind: u8, fields: Vec<u8>) {
        if !self.incomplete {
            self.sidecar.controls.push((kind, fields));
        }
    }

    /// The sidecar of the segment just sealed (`None` if it could not be built here),
    /// leaving the builder empty for the next segment, which it sees from the start.
    pub fn finish(&mut self) -> Option<Sidecar> {
        let done = std::mem::replace(self, SidecarBuilder::new(true));
        (!done.incomplete).then_some(done.sidecar)
    }
}

/// Builds a sidecar by walking a sealed segment's bytes. `None` if the segment is
/// damaged (recovery will report it).
pub fn from_segment(bytes: &[u8]) -> Option<Sidecar> {
    // The writer's own builder, fed from the log instead of from commits: the two
    // ways to a sidecar cannot disagree.
    let mut builder = SidecarBuilder::new(true);
    let walk = scan::walk(bytes, |offset, record| match record {
        Record::Event(e) => builder.event(
            offset as u32,
            e.tenant,
            e.received_at,
            e.event_type,
            e.idempotency,
        ),
        Record::Settle(s) => builder.settle(IndexedSettle {
            how: s.how,
            inbox: InboxKey {
                tenant: s.tenant,
                consumer: s.consumer,
            },
            at: s.at,
            seqs: s.seqs().collect(),
        }),
        Record::Control(c) => builder.control(c.kind, c.fields.to_vec()),
    });
    if walk.damage.is_some() {
        return None;
    }
    builder.finish()
}

/// Encodes a sidecar for the segment with this header and data length.
pub fn encode(sidecar: &Sidecar, header: SegmentHeader, data_len: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + sidecar.events.len() * 24);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&header.salt.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&header.base_seq.0.to_le_bytes());
    b.extend_from_slice(&data_len.to_le_bytes());
    b.extend_from_slice(&(sidecar.types.len() as u32).to_le_bytes());
    for t in &sidecar.types {
        b.extend_from_slice(&(t.len() as u16).to_le_bytes());
        b.extend_from_slice(t);
    }
    b.extend_from_slice(&(sidecar.events.len() as u32).to_le_bytes());
    for e in &sidecar.events {
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&e.tenant.0.to_le_bytes());
        b.extend_from_slice(&e.received_at.to_le_bytes());
        b.extend_from_slice(&e.type_index.to_le_bytes());
        match &e.idempotency {
            Some(h) => {
                b.push(1);
                b.extend_from_slice(&h.key_hash);
                b.extend_from_slice(&h.fingerprint);
            }
            None => b.push(0),
        }
    }
    b.extend_from_slice(&(sidecar.settles.len() as u32).to_le_bytes());
    for s in &sidecar.settles {
        if codec::is_named_settle(s.how, s.inbox) {
            b.push(NAMED_SETTLE_BASE + codec::settle_kind(s.how));
            b.extend_from_slice(&s.inbox.consumer.0.to_le_bytes());
        } else {
            b.push(codec::settle_kind(s.how));
        }
        b.extend_from_slice(&s.inbox.tenant.0.to_le_bytes());
        b.extend_from_slice(&s.at.to_le_bytes());
        b.extend_from_slice(&(s.seqs.len() as u32).to_le_bytes());
        for q in &s.seqs {
            b.extend_from_slice(&q.0.to_le_bytes());
        }
    }
    b.extend_from_slice(&(sidecar.controls.len() as u32).to_le_bytes());
    for (kind, fields) in &sidecar.controls {
        b.push(*kind);
        b.extend_from_slice(&(fields.len() as u32).to_le_bytes());
        b.extend_from_slice(fields);
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a sidecar, checking that it belongs to the segment with this header and
/// data length. `None` for anything that does not match exactly.
pub fn decode(bytes: &[u8], header: SegmentHeader, data_len: u64) -> Option<Sidecar> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut r = Cursor { b: body, at: 0 };
    if r.take(8)? != MAGIC || r.u32()? != VERSION || r.u16()? != header.salt {
        return None;
    }
    r.u16()?;
    if r.u64()? != header.base_seq.0 || r.u64()? != data_len {
        return None;
    }
    let mut sidecar = Sidecar::default();
    for _ in 0..r.u32()? {
        let n = r.u16()? as usize;
        sidecar.types.push(r.take(n)?.to_vec());
    }
    let events = r.u32()? as usize;
    sidecar.events.reserve(events.min(body.len() / 19));
    for _ in 0..events {
        let offset = r.u32()?;
        let tenant = TenantId(r.u32()?);
        let received_at = r.u64()? as i64;
        let type_index = r.u16()?;
        if type_index as usize >= sidecar.types.len() {
            return None;
        }
        let idempotency = match r.take(1)?[0] {
            0 => None,
            1 => Some(IdempotencyHashes {
                key_hash: r.take(16)?.try_into().ok()?,
                fingerprint: r.take(16)?.try_into().ok()?,
            }),
            _ => return None,
        };
        sidecar.events.push(IndexedEvent {
            offset,
            tenant,
            received_at,
            type_index,
            idempotency,
        });
    }
    for _ in 0..r.u32()? {
        let kind = r.take(1)?[0];
        let (how, consumer) = match kind.checked_sub(NAMED_SETTLE_BASE) {
            Some(how) => (
                codec::settle_of_kind(how).filter(|h| *h != Settle::Delete)?,
                ConsumerId(r.u32()?),
            ),
            None => (codec::settle_of_kind(kind)?, ConsumerId::DEFAULT),
        };
        let tenant = TenantId(r.u32()?);
        let at = r.u64()? as i64;
        let count = r.u32()? as usize;
        let mut seqs = Vec::with_capacity(count.min(body.len() / 8));
        for _ in 0..count {
            seqs.push(Sequence(r.u64()?));
        }
        sidecar.settles.push(IndexedSettle {
            how,
            inbox: InboxKey { tenant, consumer },
            at,
            seqs,
        });
    }
    for _ in 0..r.u32()? {
        let kind = r.take(1)?[0];
        let len = r.u32()? as usize;
        sidecar.controls.push((kind, r.take(len)?.to_vec()));
    }
    (r.at == body.len()).then_some(sidecar)
}

/// Sidecars are written in steps of this size (see [`write`]).
const WRITE_STEP: usize = 256 << 10;

/// Writes a sidecar atomically (temporary file, sync, rename). The directory is not
/// synced: a sidecar lost in a crash is rebuilt at the next open.
pub fn write(segment: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = path_for(segment);
    let tmp = path.with_extension("idx.tmp");
    let file = std::fs::File::create(&tmp)?;
    // In steps written back as they go, so no burst of dirty pages is left for a
    // commit's fdatasync to wait behind (see `fsutil::write_back`).
    let mut at = 0;
    for chunk in bytes.chunks(WRITE_STEP) {
        file.write_all_at(chunk, at)?;
        super::fsutil::write_back(&file, at, chunk.len() as u64)?;
        at += chunk.len() as u64;
    }
    file.sync_data()?;
    std::fs::rename(&tmp, &path)
}

/// Builds and writes the sidecar of a sealed segment file (the background thread's
/// job). A segment removed by retention in the meantime is not an error.
pub fn build_for(segment: &Path) -> std::io::Result<()> {
    let bytes = match std::fs::read(segment) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let header = SegmentHeader::decode(&bytes)
        .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidData, reason))?;
    let sidecar = from_segment(&bytes).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "segment is damaged")
    })?;
    write(segment, &encode(&sidecar, header, bytes.len() as u64))
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::codec::{BatchEncoder, EventRecord, SEGMENT_HEADER_LEN};

    fn segment() -> (Vec<u8>, SegmentHeader) {
        let header = SegmentHeader {
            salt: 7,
            base_seq: Sequence(10),
        };
        let mut bytes = header.encode().to_vec();
        let mut enc = BatchEncoder::default();
        enc.begin();
        for (i, ty) in [&b"a"[..], b"b", b"a"].iter().enumerate() {
            enc.push_event(&EventRecord {
                seq: Sequence(10 + i as u64),
                tenant: TenantId(1),
                received_at: 1000 + i as i64,
                event_type: ty,
                source: None,
                occurred_at: None,
                idempotency: (i == 1).then_some(IdempotencyHashes {
                    key_hash: [1; 16],
                    fingerprint: [2; 16],
                }),
                payload: b"{}",
            });
        }
        enc.push_settle(Settle::Ack, TenantId(1).into(), 2000, &[Sequence(10)]);
        let named = InboxKey {
            tenant: TenantId(1),
            consumer: ConsumerId(3),
        };
        enc.push_settle(Settle::Requeue, named, 2001, &[Sequence(11)]);
        bytes.extend_from_slice(enc.finish());
        assert!(bytes.len() > SEGMENT_HEADER_LEN);
        (bytes, header)
    }

    #[test]
    fn round_trips_and_rejects_anything_stale_or_damaged() {
        let (bytes, header) = segment();
        let sidecar = from_segment(&bytes).expect("sidecar");
        assert_eq!(sidecar.events.len(), 3);
        assert_eq!(sidecar.types, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(sidecar.events[2].type_index, 0);
        assert!(sidecar.events[1].idempotency.is_some());
        assert_eq!(sidecar.settles[0].seqs, vec![Sequence(10)]);
        assert_eq!(sidecar.settles[1].inbox.consumer, ConsumerId(3));
        assert_eq!(sidecar.settles[1].how, Settle::Requeue);
        let len = bytes.len() as u64;
        let encoded = encode(&sidecar, header, len);
        assert_eq!(decode(&encoded, header, len), Some(sidecar));
        assert_eq!(decode(&encoded, header, len + 1), None, "stale length");
        assert_eq!(
            decode(&encoded, SegmentHeader { salt: 8, ..header }, len),
            None,
            "other store"
        );
        for i in 0..encoded.len() {
            let mut bad = encoded.clone();
            bad[i] ^= 1;
            assert_eq!(decode(&bad, header, len), None, "flip at {i}");
        }
    }

    /// Type indexes are u16: 65,536 types fit, the 65,537th leaves the segment without
    /// a sidecar; repeated types keep their first index.
    #[test]
    fn builder_indexes_types_in_order_up_to_the_u16_limit() {
        let add = |b: &mut SidecarBuilder, ty: &[u8]| b.event(0, TenantId(1), 0, ty, None);
        let mut full = SidecarBuilder::new(true);
        for n in 0..=u16::MAX as u32 {
            add(&mut full, &n.to_le_bytes());
        }
        add(&mut full, &7u32.to_le_bytes());
        let mut over = SidecarBuilder::new(true);
        for n in 0..=u16::MAX as u32 + 1 {
            add(&mut over, &n.to_le_bytes());
        }
        let sidecar = full.finish().expect("65,536 types fit");
        assert_eq!(sidecar.types.len(), 65_536);
        assert_eq!(sidecar.events.last().map(|e| e.type_index), Some(7));
        assert_eq!(sidecar.types[7], 7u32.to_le_bytes().to_vec());
        assert!(
            over.finish().is_none(),
            "the 65,537th type must drop the sidecar"
        );
    }
}
