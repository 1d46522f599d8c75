//! The on-disk format, byte for byte. Nothing else in the crate knows these layouts.
//!
//! ```text
//! segment  := header batch* zero-fill
//! header   := magic "SLUICE01" | version u32 | salt u16 | 0u16 | base_seq u64 | 0u32 | crc u32
//! batch    := magic u32 | body_len u32 | records u32 | crc u32 | body
//!             crc = crc32c(first 12 header bytes ++ every record's 8-byte header)
//! record   := len u32 | crc u32 | kind u8 | fields      (len and crc cover kind ++ fields)
//! event    := kind=1 | seq u64 | tenant u32 | received_at i64 | flags u8
//!             | type_len u16 | type | [source_len u16 | source] | [occurred_len u16 | occurred]
//!             | [key_hash 16 | fingerprint 16] | payload_len u32 | payload
//! settle   := kind=2 (ack), 3 (delete), 6 (dead-letter) or 7 (requeue)
//!             | tenant u32 | at i64 | count u32 | seq u64 * count
//!             (of the tenant's default inbox; a delete is always the log's)
//!           | kind=8 | how u8 (2, 6 or 7, as above) | consumer u32
//!             | tenant u32 | at i64 | count u32 | seq u64 * count
//!             (of a named consumer)
//! control  := kind=4 (deliveries) or 5 (replay) | fields (see `control`)
//! ```
//!
//! All integers are little-endian. One batch is one group commit: it is written with one
//! `pwrite`, and it is valid only if its header checksum and every record checksum
//! match; that is how recovery tells a torn final write (drop it) from damage in the
//! middle of the log (refuse to open). The batch checksum covers the record headers,
//! which hold the record checksums, so every byte is covered while payload bytes are
//! checksummed once, not twice, on the commit path. A single event read by offset is
//! verified by its own record checksum without reading its batch.

use crate::types::{ConsumerId, Sequence, Settle, TenantId, UnixMs};

/// Bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SLUICE01";
/// Format version written in the segment header.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the segment header; the first batch starts here.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Marks the start of a batch frame.
pub const BATCH_MAGIC: u32 = 0x3143_4253; // "SBC1" read as little-endian bytes
/// Length of a batch frame header.
pub const BATCH_HEADER_LEN: usize = 16;
/// Length of a record header (length + checksum).
pub const RECORD_HEADER_LEN: usize = 8;
/// A record longer than this is garbage, not data: it bounds what a corrupt length field
/// can make a reader allocate.
pub const RECORD_LEN_MAX: usize = 256 << 20;

const KIND_EVENT: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_DELETE: u8 = 3;
/// A subscription's delivery record (see `control`).
pub const KIND_DELIVERIES: u8 = 4;
/// A subscription's replay request (see `control`).
pub const KIND_REPLAY: u8 = 5;
const KIND_DEAD: u8 = 6;
const KIND_REQUEUE: u8 = 7;
const KIND_CONSUMER_SETTLE: u8 = 8;

/// The kind byte of a settle (the `how` byte of a named consumer's).
pub fn settle_kind(how: Settle) -> u8 {
    match how {
        Settle::Ack => KIND_ACK,
        Settle::Delete => KIND_DELETE,
        Settle::Dead => KIND_DEAD,
        Settle::Requeue => KIND_REQUEUE,
    }
}

/// Whether a settle is written as a named consumer's (kind 8) rather than the tenant's:
/// a delete is the log's, whoever asks, so it is always the tenant's. The log and the
/// sidecar both encode by this rule, and both decoders refuse a named delete.
pub fn is_named_settle(how: Settle, inbox: crate::types::InboxKey) -> bool {
    inbox.consumer != ConsumerId::DEFAULT && how != Settle::Delete
}

/// The settle a kind (or `how`) byte names, if it names one.
pub fn settle_of_kind(kind: u8) -> Option<Settle> {
    match kind {
        KIND_ACK => Some(Settle::Ack),
        KIND_DELETE => Some(Settle::Delete),
        KIND_DEAD => Some(Settle::Dead),
        KIND_REQUEUE => Some(Settle::Requeue),
        _ => None,
    }
}

const FLAG_SOURCE: u8 = 1;
const FLAG_OCCURRED_AT: u8 = 2;
const FLAG_IDEMPOTENCY: u8 = 4;

/// The fixed header of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The store's id salt (see [`crate::EventId`]).
    pub salt: u16,
    /// Sequence of the first event this segment may hold.
    pub base_seq: Sequence,
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..14].copy_from_slice(&self.salt.to_le_bytes());
        out[16..24].copy_from_slice(&self.base_seq.0.to_le_bytes());
        let crc = crc32c::crc32c(&out[..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a header.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, &'static str> {
        if bytes.len() < SEGMENT_HEADER_LEN {
            return Err("file shorter than a segment header");
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err("not a Sluice segment (bad magic)");
        }
        if crc32c::crc32c(&bytes[..28]) != le_u32(bytes, 28) {
            return Err("segment header checksum mismatch");
        }
        if le_u32(bytes, 8) != FORMAT_VERSION {
            return Err("unsupported segment format version");
        }
        Ok(SegmentHeader {
            salt: u16::from_le_bytes([bytes[12], bytes[13]]),
            base_seq: Sequence(le_u64(bytes, 16)),
        })
    }
}

/// The idempotency data an event record carries: hashes, never the raw key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyHashes {
    /// Hash of (tenant, key).
    pub key_hash: [u8; 16],
    /// The client's content fingerprint.
    pub fingerprint: [u8; 16],
}

/// An event record, borrowing its variable-length fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecord<'a> {
    /// Its sequence.
    pub seq: Sequence,
    /// Its owner.
    pub tenant: TenantId,
    /// Receive time.
    pub received_at: UnixMs,
    /// Event type.
    pub event_type: &'a [u8],
    /// Optional source.
    pub source: Option<&'a [u8]>,
    /// Optional producer timestamp.
    pub occurred_at: Option<&'a [u8]>,
    /// Optional idempotency hashes.
    pub idempotency: Option<IdempotencyHashes>,
    /// The payload.
    pub payload: &'a [u8],
}

/// An ack or delete record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleRecord<'a> {
    /// Ack or delete.
    pub how: Settle,
    /// Owner of the events.
    pub tenant: TenantId,
    /// Whose inbox ([`ConsumerId::DEFAULT`] for the tenant's own).
    pub consumer: ConsumerId,
    /// When it happened.
    pub at: UnixMs,
    /// The sequences, as raw little-endian u64s.
    seqs: &'a [u8],
}

impl<'a> SettleRecord<'a> {
    /// The settled sequences.
    pub fn seqs(&self) -> impl Iterator<Item = Sequence> + 'a {
        self.seqs.chunks_exact(8).map(|c| Sequence(le_u64(c, 0)))
    }
}

/// A control record: consumer state (delivery records, replay requests), kept as its
/// kind and raw fields, which `control` decodes. Recovery and checkpoints carry it as
/// is, so there is one decoder for the log and the checkpoint alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord<'a> {
    /// [`KIND_DELIVERIES`] or [`KIND_REPLAY`].
    pub kind: u8,
    /// The fields after the kind byte.
    pub fields: &'a [u8],
}

/// Any record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// An event.
    Event(EventRecord<'a>),
    /// An ack or delete.
    Settle(SettleRecord<'a>),
    /// Consumer state.
    Control(ControlRecord<'a>),
}

/// Appends batches to a reusable buffer. The writer owns one and reuses its
/// allocation for every group commit.
#[derive(Debug, Default)]
pub struct BatchEncoder {
    buf: Vec<u8>,
    records: u32,
    /// Running checksum of the record headers, in order.
    headers_crc: u32,
}

impl BatchEncoder {
    /// Starts a new batch, dropping whatever the buffer held.
    pub fn begin(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; BATCH_HEADER_LEN]);
        self.records = 0;
        self.headers_crc = 0;
    }

    /// Bytes so far, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the batch holds no record yet.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends an event record; returns its offset from the start of the batch.
    pub fn push_event(&mut self, e: &EventRecord<'_>) -> usize {
        let start = self.open_record(KIND_EVENT);
        let mut flags = 0;
        if e.source.is_some() {
            flags |= FLAG_SOURCE;
        }
        if e.occurred_at.is_some() {
            flags |= FLAG_OCCURRED_AT;
        }
        if e.idempotency.is_some() {
            flags |= FLAG_IDEMPOTENCY;
        }
        let b = &mut self.buf;
        b.extend_from_slice(&e.seq.0.to_le_bytes());
        b.extend_from_slice(&e.tenant.0.to_le_bytes());
        b.extend_from_slice(&e.received_at.to_le_bytes());
        b.push(flags);
        put_short(b, e.event_type);
        if let Some(s) = e.source {
            put_short(b, s);
        }
        if let Some(s) = e.occurred_at {
            put_short(b, s);
        }
        if let Some(h) = e.idempotency {
            b.extend_from_slice(&h.key_hash);
            b.extend_from_slice(&h.fingerprint);
        }
        b.extend_from_slice(&(e.payload.len() as u32).to_le_bytes());
        b.extend_from_slice(e.payload);
        self.close_record(start)
    }

    /// Appends an ack or delete record; returns its offset from the start of the batch.
    pub fn push_settle(
        &mut self,
        how: Settle,
        inbox: crate::types::InboxKey,
        at: UnixMs,
        seqs: &[Sequence],
    ) -> usize {
        let tenant = inbox.tenant;
        let start = if is_named_settle(how, inbox) {
            let start = self.open_record(KIND_CONSUMER_SETTLE);
            self.buf.push(settle_kind(how));
            self.buf.extend_from_slice(&inbox.consumer.0.to_le_bytes());
            start
        } else {
            self.open_record(settle_kind(how))
        };
        let b = &mut self.buf;
        b.extend_from_slice(&tenant.0.to_le_bytes());
        b.extend_from_slice(&at.to_le_bytes());
        b.extend_from_slice(&(seqs.len() as u32).to_le_bytes());
        for s in seqs {
            b.extend_from_slice(&s.0.to_le_bytes());
        }
        self.close_record(start)
    }

    /// Appends a control record (its fields already encoded); returns its offset from
    /// the start of the batch.
    pub fn push_control(&mut self, kind: u8, fields: &[u8]) -> usize {
        let start = self.open_record(kind);
        self.buf.extend_from_slice(fields);
        self.close_record(start)
    }

    /// Completes the batch header and returns the bytes to write.
    pub fn finish(&mut self) -> &[u8] {
        let body_len = (self.buf.len() - BATCH_HEADER_LEN) as u32;
        self.buf[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
        self.buf[4..8].copy_from_slice(&body_len.to_le_bytes());
        self.buf[8..12].copy_from_slice(&self.records.to_le_bytes());
        let crc = batch_crc(&self.buf[..12], self.headers_crc);
        self.buf[12..16].copy_from_slice(&crc.to_le_bytes());
        &self.buf
    }

    fn open_record(&mut self, kind: u8) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
        self.buf.push(kind);
        start
    }

    fn close_record(&mut self, start: usize) -> usize {
        let body = &self.buf[start + RECORD_HEADER_LEN..];
        // The reader refuses a record longer than RECORD_LEN_MAX as garbage: writing
        // one would make valid data unreadable. The HTTP layer's limits keep records
        // far below it; this is the trust boundary's own check (one compare a record).
        assert!(
            !body.is_empty() && body.len() <= RECORD_LEN_MAX,
            "record of {} bytes is outside the format's bounds",
            body.len()
        );
        let len = body.len() as u32;
        let crc = crc32c::crc32c(body);
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.headers_crc = crc32c::crc32c_append(self.headers_crc, &self.buf[start..start + 8]);
        self.records += 1;
        start
    }
}

/// The batch checksum: the header's first 12 bytes, then the running checksum of the
/// record headers (mixed in as 4 bytes, so the value is order- and content-sensitive).
fn batch_crc(header12: &[u8], headers_crc: u32) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(header12), &headers_crc.to_le_bytes())
}

fn put_short(buf: &mut Vec<u8>, field: &[u8]) {
    // A longer field would be written with a truncated length, and every field after it
    // misread. Validation bounds these fields (type 256 bytes, source 1 KiB).
    assert!(
        field.len() <= u16::MAX as usize,
        "short field of {} bytes",
        field.len()
    );
    buf.extend_from_slice(&(field.len() as u16).to_le_bytes());
    buf.extend_from_slice(field);
}

/// What [`read_batch`] found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchRead<'a> {
    /// A valid batch: its body and total length (header included).
    Batch {
        /// The records, back to back.
        body: &'a [u8],
        /// How many records the header promises.
        records: u32,
        /// Header plus body.
        frame_len: usize,
    },
    /// Zero fill: the end of written data (pre-allocated space, or a clean end).
    End,
    /// Something that is neither; the reason says what check failed.
    Damaged(&'static str),
}

/// Reads the batch frame at `pos` of a segment's bytes.
pub fn read_batch(bytes: &[u8], pos: usize) -> BatchRead<'_> {
    let rest = &bytes[pos.min(bytes.len())..];
    if rest.is_empty() {
        return BatchRead::End;
    }
    if rest.len() < BATCH_HEADER_LEN {
        return if rest.iter().all(|&b| b == 0) {
            BatchRead::End
        } else {
            BatchRead::Damaged("truncated batch header")
        };
    }
    if rest[..BATCH_HEADER_LEN].iter().all(|&b| b == 0) {
        return BatchRead::End;
    }
    if le_u32(rest, 0) != BATCH_MAGIC {
        return BatchRead::Damaged("bad batch magic");
    }
    let body_len = le_u32(rest, 4) as usize;
    if body_len > rest.len() - BATCH_HEADER_LEN {
        return BatchRead::Damaged("batch extends past the end of the file");
    }
    let body = &rest[BATCH_HEADER_LEN..BATCH_HEADER_LEN + body_len];
    // Every record must be whole and match its checksum, and the record headers must
    // match the batch checksum.
    let mut headers_crc = 0u32;
    let mut pos = 0usize;
    let mut count = 0u32;
    while pos < body.len() {
        let Ok(len) = record_len(&body[pos..]) else {
            return BatchRead::Damaged("record length out of bounds");
        };
        let end = pos + RECORD_HEADER_LEN + len;
        if end > body.len() {
            return BatchRead::Damaged("record extends past its batch");
        }
        if crc32c::crc32c(&body[pos + RECORD_HEADER_LEN..end]) != le_u32(body, pos + 4) {
            return BatchRead::Damaged("record checksum mismatch");
        }
        headers_crc = crc32c::crc32c_append(headers_crc, &body[pos..pos + RECORD_HEADER_LEN]);
        count += 1;
        pos = end;
    }
    if batch_crc(&rest[..12], headers_crc) != le_u32(rest, 12) {
        return BatchRead::Damaged("batch checksum mismatch");
    }
    if count != le_u32(rest, 8) {
        return BatchRead::Damaged("batch record count mismatch");
    }
    BatchRead::Batch {
        body,
        records: count,
        frame_len: BATCH_HEADER_LEN + body_len,
    }
}

/// Finds the first valid batch that starts after `pos`, if any. Recovery uses it to
/// decide whether damage is a torn tail (nothing valid follows) or corruption.
pub fn find_valid_batch_after(bytes: &[u8], pos: usize) -> Option<usize> {
    let magic = BATCH_MAGIC.to_le_bytes();
    let mut at = pos + 1;
    while at + BATCH_HEADER_LEN <= bytes.len() {
        let window = &bytes[at..];
        let hit = window.windows(4).position(|w| w == magic)?;
        at += hit;
        if matches!(read_batch(bytes, at), BatchRead::Batch { .. }) {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// Splits a batch body into `(offset within body, record)` pairs. Checksums are not
/// re-checked here: [`read_batch`] verified every record before handing out the body.
pub fn records(body: &[u8]) -> impl Iterator<Item = Result<(usize, Record<'_>), &'static str>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= body.len() {
            return None;
        }
        let start = pos;
        let result = (|| {
            if body.len() - pos < RECORD_HEADER_LEN {
                return Err("truncated record header");
            }
            let len = le_u32(body, pos) as usize;
            let end = pos + RECORD_HEADER_LEN + len;
            if len == 0 || end > body.len() {
                return Err("record length out of bounds");
            }
            let record = decode_record(&body[pos + RECORD_HEADER_LEN..end])?;
            pos = end;
            Ok((start, record))
        })();
        if result.is_err() {
            pos = body.len();
        }
        Some(result)
    })
}

/// Checks a single record read by offset (`bytes` starts at its header) and decodes it.
pub fn read_record(bytes: &[u8]) -> Result<Record<'_>, &'static str> {
    let len = record_len(bytes)?;
    if bytes.len() < RECORD_HEADER_LEN + len {
        return Err("record extends past what was read");
    }
    let body = &bytes[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len];
    if crc32c::crc32c(body) != le_u32(bytes, 4) {
        return Err("record checksum mismatch");
    }
    decode_record(body)
}

/// The body length a record header announces, checked against [`RECORD_LEN_MAX`].
pub fn record_len(header: &[u8]) -> Result<usize, &'static str> {
    if header.len() < RECORD_HEADER_LEN {
        return Err("truncated record header");
    }
    let len = le_u32(header, 0) as usize;
    if len == 0 || len > RECORD_LEN_MAX {
        return Err("record length out of bounds");
    }
    Ok(len)
}

fn decode_record(body: &[u8]) -> Result<Record<'_>, &'static str> {
    let mut r = Reader {
        bytes: body,
        pos: 1,
    };
    match body[0] {
        KIND_EVENT => {
            let seq = Sequence(r.u64()?);
            let tenant = TenantId(r.u32()?);
            let received_at = r.u64()? as i64;
            let flags = r.take(1)?[0];
            let event_type = r.short()?;
            let source = if flags & FLAG_SOURCE != 0 {
                Some(r.short()?)
            } else {
                None
            };
            let occurred_at = if flags & FLAG_OCCURRED_AT != 0 {
                Some(r.short()?)
            } else {
                None
            };
            let idempotency = if flags & FLAG_IDEMPOTENCY != 0 {
                let mut key_hash = [0u8; 16];
                let mut fingerprint = [0u8; 16];
                key_hash.copy_from_slice(r.take(16)?);
                fingerprint.copy_from_slice(r.take(16)?);
                Some(IdempotencyHashes {
                    key_hash,
                    fingerprint,
                })
            } else {
                None
            };
            let payload_len = r.u32()? as usize;
            let payload = r.take(payload_len)?;
            r.done()?;
            Ok(Record::Event(EventRecord {
                seq,
                tenant,
                received_at,
                event_type,
                source,
                occurred_at,
                idempotency,
                payload,
            }))
        }
        KIND_ACK | KIND_DELETE | KIND_DEAD | KIND_REQUEUE | KIND_CONSUMER_SETTLE => {
            let (how, consumer) = if body[0] == KIND_CONSUMER_SETTLE {
                let how = settle_of_kind(r.take(1)?[0])
                    .filter(|h| *h != Settle::Delete)
                    .ok_or("unknown settle kind in a consumer's settle record")?;
                (how, ConsumerId(r.u32()?))
            } else {
                // The arm's kinds all name a settle.
                (
                    settle_of_kind(body[0]).ok_or("unknown settle kind")?,
                    ConsumerId::DEFAULT,
                )
            };
            let tenant = TenantId(r.u32()?);
            let at = r.u64()? as i64;
            let count = r.u32()? as usize;
            let seqs = r.take(count.checked_mul(8).ok_or("settle count overflows")?)?;
            r.done()?;
            Ok(Record::Settle(SettleRecord {
                how,
                tenant,
                consumer,
                at,
                seqs,
            }))
        }
        KIND_DELIVERIES | KIND_REPLAY => Ok(Record::Control(ControlRecord {
            kind: body[0],
            fields: &body[1..],
        })),
        _ => Err("unknown record kind"),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(n).ok_or("field length overflows")?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or("field runs past the record")?;
        self.pos = end;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(le_u32(self.take(4)?, 0))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(le_u64(self.take(8)?, 0))
    }
    fn short(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.take(2)?;
        let n = u16::from_le_bytes([n[0], n[1]]) as usize;
        self.take(n)
    }
    fn done(&self) -> Result<(), &'static str> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err("trailing bytes in record")
        }
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Settle;

    fn sample(seq: u64) -> EventRecord<'static> {
        EventRecord {
            seq: Sequence(seq),
            tenant: TenantId(3),
            received_at: 1_700_000_000_123,
            event_type: b"order.created",
            source: Some(b"shop"),
            occurred_at: None,
            idempotency: Some(IdempotencyHashes {
                key_hash: [7; 16],
                fingerprint: [9; 16],
            }),
            payload: br#"{"a":1}"#,
        }
    }

    #[test]
    fn batch_round_trip() {
        let mut enc = BatchEncoder::default();
        enc.begin();
        let first = enc.push_event(&sample(1));
        let second = enc.push_settle(
            Settle::Ack,
            TenantId(3).into(),
            5,
            &[Sequence(1), Sequence(9)],
        );
        let named = crate::types::InboxKey {
            tenant: TenantId(3),
            consumer: ConsumerId(4),
        };
        enc.push_settle(Settle::Dead, named, 6, &[Sequence(2)]);
        let bytes = enc.finish().to_vec();
        let BatchRead::Batch {
            body,
            records: n,
            frame_len,
        } = read_batch(&bytes, 0)
        else {
            panic!("batch did not read back");
        };
        assert_eq!(frame_len, bytes.len());
        assert_eq!(n, 3);
        let all: Vec<_> = records(body).collect::<Result<_, _>>().unwrap();
        assert_eq!(all[0], (first - BATCH_HEADER_LEN, Record::Event(sample(1))));
        let Record::Settle(s) = all[1].1 else {
            panic!("expected a settle record")
        };
        assert_eq!(all[1].0, second - BATCH_HEADER_LEN);
        assert_eq!(s.seqs().collect::<Vec<_>>(), vec![Sequence(1), Sequence(9)]);
        assert_eq!((s.how, s.consumer), (Settle::Ack, ConsumerId::DEFAULT));
        let Record::Settle(s) = all[2].1 else {
            panic!("expected a consumer's settle record")
        };
        assert_eq!(
            (s.how, s.tenant, s.consumer, s.at),
            (Settle::Dead, TenantId(3), ConsumerId(4), 6)
        );
        assert_eq!(s.seqs().collect::<Vec<_>>(), vec![Sequence(2)]);
        assert_eq!(
            read_record(&bytes[first..]).unwrap(),
            Record::Event(sample(1))
        );
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let mut enc = BatchEncoder::default();
        enc.begin();
        enc.push_event(&sample(1));
        let bytes = enc.finish().to_vec();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                !matches!(read_batch(&bad, 0), BatchRead::Batch { .. }),
                "flip at {i} went unnoticed"
            );
        }
    }

    #[test]
    fn header_round_trip_and_zero_fill_is_end() {
        let h = SegmentHeader {
            salt: 0xABCD,
            base_seq: Sequence(77),
        };
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        assert_eq!(read_batch(&[0u8; 64], 0), BatchRead::End);
        assert_eq!(read_batch(&[0u8; 5], 0), BatchRead::End);
    }
}
