//! What the shared log holds: one JetStream message per event, and one per change of
//! anything else (the catalog, inbox leases and settles, delivery state).
//!
//! Two encodings, told apart by the first byte:
//! - events are binary: a batch ([`BATCH_TAG`]) of event records, each [`EVENT_TAG`],
//!   then its fields, then the payload verbatim, so a read hands the payload out as a
//!   slice of the message, with no decoding. A batch is what concurrent appends of
//!   one tenant and type share: one publish, one Raft entry, one delivery to each node
//!   for many events (the group commit of this backend);
//! - every other record is JSON ([`Envelope`]): small, rare next to events, and
//!   readable with `nats stream get` when someone has to look.
//!
//! Each record carries its origin (node id and nonce): the node that proposed it waits
//! for its outcome by the nonce, and `Nats-Msg-Id` is made of both, so a publish retried
//! through a leader election is stored once.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::delivery::{Attempt, AttemptOutcome, Next, Settled};
use crate::event_id::EventId;
use crate::types::{InboxKey, NewEvent, Sequence, Settle, TenantId, UnixMs};

/// The first byte of an event record (a JSON record starts with `{`).
pub(crate) const EVENT_TAG: u8 = 0x01;

/// Largest field (type, source, time) an event record can carry: a `u16` length.
const FIELD_BYTES_MAX: usize = u16::MAX as usize;

/// Who proposed a record: the node, and the request on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Origin {
    pub(crate) node: u64,
    pub(crate) nonce: u64,
}

impl Origin {
    /// The `Nats-Msg-Id` of the record: the same for every retry of one publish.
    pub(crate) fn msg_id(self) -> String {
        format!("{:x}-{:x}", self.node, self.nonce)
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventRecord {
    pub(crate) origin: Origin,
    pub(crate) tenant: TenantId,
    /// The proposing node's clock; the model keeps receive times non-decreasing.
    pub(crate) received_at: UnixMs,
    pub(crate) event_type: Bytes,
    pub(crate) source: Option<Bytes>,
    pub(crate) occurred_at: Option<Bytes>,
    pub(crate) idempotency: Option<(Bytes, [u8; 16])>,
    pub(crate) payload: Bytes,
}

/// Why a message of the log could not be read: the log was written by something else,
/// or damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log record {seq}: {what}")]
pub(crate) struct BadRecord {
    pub(crate) seq: u64,
    pub(crate) what: String,
}

impl EventRecord {
    /// The record of `event`, as `origin` proposes it at `received_at`. `None` when a
    /// field is too long for its `u16` length (the HTTP layer's limits are far lower).
    pub(crate) fn encode(origin: Origin, received_at: UnixMs, event: &NewEvent) -> Option<Bytes> {
        let fields = [
            Some(&event.event_type),
            event.source.as_ref(),
            event.occurred_at.as_ref(),
            event.idempotency.as_ref().map(|k| &k.key),
        ];
        if fields.iter().flatten().any(|f| f.len() > FIELD_BYTES_MAX) {
            return None;
        }
        let mut b = BytesMut::with_capacity(64 + event.queued_bytes());
        b.put_u8(EVENT_TAG);
        b.put_u64(origin.node);
        b.put_u64(origin.nonce);
        b.put_u32(event.tenant.0);
        b.put_i64(received_at);
        put_field(&mut b, Some(&event.event_type));
        put_field(&mut b, event.source.as_ref());
        put_field(&mut b, event.occurred_at.as_ref());
        match &event.idempotency {
            Some(k) => {
                put_field(&mut b, Some(&k.key));
                b.put_slice(&k.fingerprint);
            }
            None => put_field(&mut b, None),
        }
        b.put_slice(&event.payload);
        Some(b.freeze())
    }

    /// Reads an event record (`body` starts with [`EVENT_TAG`]).
    pub(crate) fn decode(seq: u64, body: &Bytes) -> Result<EventRecord, BadRecord> {
        let bad = |what: &str| BadRecord {
            seq,
            what: what.to_owned(),
        };
        let mut b = body.clone();
        if b.remaining() < 1 + 8 + 8 + 4 + 8 || b.get_u8() != EVENT_TAG {
            return Err(bad("not an event record"));
        }
        let origin = Origin {
            node: b.get_u64(),
            nonce: b.get_u64(),
        };
        let tenant = TenantId(b.get_u32());
        let received_at = b.get_i64();
        let event_type = get_field(&mut b)
            .ok_or_else(|| bad("truncated type"))?
            .ok_or_else(|| bad("an event without a type"))?;
        let source = get_field(&mut b).ok_or_else(|| bad("truncated source"))?;
        let occurred_at = get_field(&mut b).ok_or_else(|| bad("truncated time"))?;
        let idempotency = match get_field(&mut b).ok_or_else(|| bad("truncated key"))? {
            Some(key) => {
                if b.remaining() < 16 {
                    return Err(bad("truncated fingerprint"));
                }
                let mut fp = [0u8; 16];
                b.copy_to_slice(&mut fp);
                Some((key, fp))
            }
            None => None,
        };
        Ok(EventRecord {
            origin,
            tenant,
            received_at,
            event_type,
            source,
            occurred_at,
            idempotency,
            payload: b,
        })
    }
}

/// The first byte of a batch: several event records in one message.
pub(crate) const BATCH_TAG: u8 = 0x02;

/// Events one batch message holds, at most: the low bits of an event's position in
/// the log are its index in its message (see [`position`]).
pub(crate) const BATCH_EVENTS_MAX: usize = 1 << BATCH_SHIFT;
const BATCH_SHIFT: u32 = 12;

/// An event's position in its partition's log: its message's stream sequence, then
/// its index in the message. Increasing in log order, unique in the partition.
pub(crate) fn position(msg_seq: u64, index: usize) -> u64 {
    debug_assert!(index < BATCH_EVENTS_MAX);
    debug_assert!(msg_seq < 1 << (64 - BATCH_SHIFT));
    (msg_seq << BATCH_SHIFT) | index as u64
}

/// The stream sequence of the message that holds the event at `position`, and the
/// event's index in it.
pub(crate) fn message_of(position: u64) -> (u64, usize) {
    (
        position >> BATCH_SHIFT,
        (position & (BATCH_EVENTS_MAX as u64 - 1)) as usize,
    )
}

/// The last position a message at `msg_seq` can hold.
pub(crate) fn last_position(msg_seq: u64) -> u64 {
    position(msg_seq, BATCH_EVENTS_MAX - 1)
}

/// A batch message: [`BATCH_TAG`], the count (`u32`), then each event record with its
/// length (`u32`) before it.
pub(crate) fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a Bytes>) -> Bytes {
    debug_assert!(records.len() <= BATCH_EVENTS_MAX);
    let count = records.len();
    let mut b = BytesMut::new();
    b.put_u8(BATCH_TAG);
    b.put_u32(count as u32);
    for r in records {
        b.put_u32(r.len() as u32);
        b.put_slice(r);
    }
    b.freeze()
}

/// The event records of a batch message, each a slice of `body` (no copy).
pub(crate) fn decode_batch(seq: u64, body: &Bytes) -> Result<Vec<Bytes>, BadRecord> {
    let bad = |what: &str| BadRecord {
        seq,
        what: what.to_owned(),
    };
    let mut b = body.clone();
    if b.remaining() < 5 || b.get_u8() != BATCH_TAG {
        return Err(bad("not a batch"));
    }
    let count = b.get_u32() as usize;
    if count == 0 || count > BATCH_EVENTS_MAX {
        return Err(bad("a batch of no events, or of too many"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        if b.remaining() < 4 {
            return Err(bad("truncated batch"));
        }
        let len = b.get_u32() as usize;
        if b.remaining() < len {
            return Err(bad("truncated batch"));
        }
        out.push(b.split_to(len));
    }
    if b.has_remaining() {
        return Err(bad("bytes after the batch's last event"));
    }
    Ok(out)
}

/// A field: its length plus one (0: absent), then its bytes.
fn put_field(b: &mut BytesMut, field: Option<&Bytes>) {
    match field {
        // `encode` checked every field's length against `FIELD_BYTES_MAX` first.
        Some(f) => {
            b.put_u32(f.len() as u32 + 1);
            b.put_slice(f);
        }
        None => b.put_u32(0),
    }
}

/// The field at `b`'s front; `None` when truncated.
fn get_field(b: &mut Bytes) -> Option<Option<Bytes>> {
    if b.remaining() < 4 {
        return None;
    }
    let n = b.get_u32() as usize;
    if n == 0 {
        return Some(None);
    }
    let len = n - 1;
    if b.remaining() < len {
        return None;
    }
    Some(Some(b.split_to(len)))
}

/// Every record but an event: who proposed it, when (by its clock), under which
/// catalog, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) origin: Origin,
    pub(crate) at: UnixMs,
    /// The catalog revision the proposer had applied. Every node applies the record
    /// only once its own catalog is at least as new, so a record about a consumer or a
    /// subscription never reaches a node that does not know it yet.
    pub(crate) rev: u64,
    pub(crate) op: Op,
}

impl Envelope {
    /// The JSON record.
    pub(crate) fn encode(&self) -> Bytes {
        // Serializing plain data (no maps with non-string keys, no custom impls that
        // fail) cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a JSON record.
    pub(crate) fn decode(seq: u64, body: &[u8]) -> Result<Envelope, BadRecord> {
        serde_json::from_slice(body).map_err(|e| BadRecord {
            seq,
            what: e.to_string(),
        })
    }
}

/// An inbox, as records name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InboxRef(pub(crate) u32, pub(crate) u32);

impl From<InboxKey> for InboxRef {
    fn from(k: InboxKey) -> Self {
        InboxRef(k.tenant.0, k.consumer.0)
    }
}

impl From<InboxRef> for InboxKey {
    fn from(r: InboxRef) -> Self {
        InboxKey {
            tenant: TenantId(r.0),
            consumer: crate::types::ConsumerId(r.1),
        }
    }
}

/// An event id, as records hold it: two numbers, since serde cannot buffer a `u128`
/// inside a tagged enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdRef(pub(crate) u64, pub(crate) u64);

impl From<EventId> for IdRef {
    fn from(id: EventId) -> Self {
        let bits = id.to_u128();
        IdRef((bits >> 64) as u64, bits as u64)
    }
}

impl From<IdRef> for EventId {
    fn from(r: IdRef) -> Self {
        EventId::from_u128((u128::from(r.0) << 64) | u128::from(r.1))
    }
}

/// How a settle record settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum How {
    Ack,
    Delete,
    Dead,
    Requeue,
}

impl From<Settle> for How {
    fn from(s: Settle) -> Self {
        match s {
            Settle::Ack => How::Ack,
            Settle::Delete => How::Delete,
            Settle::Dead => How::Dead,
            Settle::Requeue => How::Requeue,
        }
    }
}

/// A change other than an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    /// A leasing poll of an inbox.
    Lease {
        inbox: InboxRef,
        after: Option<u64>,
        limit: usize,
        event_type: Option<String>,
        lease_ms: u64,
        max_deliveries: Option<u32>,
    },
    /// Acks, deletes, dead-letters or requeues; with `leases`, acks under leases.
    Settle {
        inbox: InboxRef,
        ids: Vec<IdRef>,
        how: How,
        leases: Option<Vec<u32>>,
    },
    /// A nack (`extend: false`) or an extension of a lease.
    LeaseAction {
        inbox: InboxRef,
        id: IdRef,
        extend: bool,
        lease: Option<u32>,
        ms: u64,
    },
    /// A dispatcher's fetch of a subscription's next deliveries.
    Fetch(FetchRecord),
    /// How deliveries ended.
    SettleDeliveries { sub: u32, items: Vec<SettledRecord> },
    /// Events to deliver again.
    Replay { sub: u32, seqs: Vec<u64> },
    /// A node closing: the subscriptions it dispatched are free for another at once.
    Leave,
}

/// A fetch: which subscription, and how it reads the log, as the proposer's catalog
/// had it (so every node applies the fetch the same way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FetchRecord {
    pub(crate) sub: u32,
    pub(crate) tenant: u32,
    pub(crate) max: usize,
    pub(crate) event_types: Vec<String>,
    pub(crate) fifo: bool,
    pub(crate) max_in_flight: usize,
    /// The subscription's read position in the proposer's model.
    pub(crate) read_pos_hint: u64,
    /// How long the subscription stays the proposer's without another word from it;
    /// past that, another node's fetch takes it over and hands out again what was in
    /// flight (at-least-once, as after an embedded crash).
    pub(crate) owner_lease_ms: i64,
}

/// [`Settled`], as a record holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SettledRecord {
    pub(crate) seq: Option<u64>,
    pub(crate) replay: bool,
    /// 0: delivered; 1: retry at `retry_at`; 2: dead.
    pub(crate) next: u8,
    pub(crate) retry_at: UnixMs,
    pub(crate) event_id: IdRef,
    pub(crate) attempt: u32,
    pub(crate) started_at: UnixMs,
    pub(crate) latency_ms: u32,
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<String>,
    pub(crate) outcome: String,
}

impl From<&Settled> for SettledRecord {
    fn from(s: &Settled) -> Self {
        let (next, retry_at) = match s.next {
            Next::Delivered => (0, 0),
            Next::RetryAt(at) => (1, at),
            Next::Dead => (2, 0),
        };
        let a = &s.attempt;
        SettledRecord {
            seq: s.seq.map(|q| q.0),
            replay: s.replay,
            next,
            retry_at,
            event_id: IdRef::from(a.event_id),
            attempt: a.attempt,
            started_at: a.started_at,
            latency_ms: a.latency_ms,
            status: a.status,
            error: a.error.clone(),
            outcome: a.outcome.as_str().to_owned(),
        }
    }
}

impl SettledRecord {
    /// The settle, with the attempt serial the model assigns.
    pub(crate) fn settled(&self, serial: u64) -> Settled {
        Settled {
            seq: self.seq.map(Sequence),
            replay: self.replay,
            next: match self.next {
                0 => Next::Delivered,
                1 => Next::RetryAt(self.retry_at),
                _ => Next::Dead,
            },
            attempt: Attempt {
                serial,
                event_id: self.event_id.into(),
                attempt: self.attempt,
                started_at: self.started_at,
                latency_ms: self.latency_ms,
                status: self.status,
                error: self.error.clone(),
                outcome: AttemptOutcome::parse(&self.outcome).unwrap_or(AttemptOutcome::Failed),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::IdempotencyKey;

    #[test]
    fn events_round_trip_and_truncations_are_refused() {
        let event = NewEvent {
            tenant: TenantId(7),
            event_type: Bytes::from_static(b"order.created"),
            source: None,
            occurred_at: Some(Bytes::from_static(b"2026-01-01T00:00:00Z")),
            idempotency: Some(IdempotencyKey {
                key: Bytes::from_static(b"k1"),
                fingerprint: [9; 16],
            }),
            payload: Bytes::from_static(br#"{"a":1}"#),
        };
        let origin = Origin { node: 1, nonce: 2 };
        let body = EventRecord::encode(origin, 1234, &event).expect("fits");
        let back = EventRecord::decode(5, &body).expect("decodes");
        assert_eq!(back.origin, origin);
        assert_eq!(back.tenant, TenantId(7));
        assert_eq!(back.received_at, 1234);
        assert_eq!(back.event_type, event.event_type);
        assert_eq!(back.source, None);
        assert_eq!(back.occurred_at, event.occurred_at);
        assert_eq!(back.idempotency, Some((Bytes::from_static(b"k1"), [9; 16])));
        assert_eq!(back.payload, event.payload);
        for cut in 1..(body.len() - event.payload.len()) {
            assert!(
                EventRecord::decode(5, &body.slice(..cut)).is_err(),
                "a record cut at {cut} bytes decodes"
            );
        }
    }

    #[test]
    fn batches_round_trip_and_truncations_are_refused() {
        let records = [
            Bytes::from_static(b"one"),
            Bytes::from_static(b""),
            Bytes::from_static(b"three"),
        ];
        let body = encode_batch(records.iter());
        assert_eq!(decode_batch(1, &body).expect("decodes"), records.to_vec());
        for cut in 1..body.len() {
            assert!(decode_batch(1, &body.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut longer = BytesMut::from(&body[..]);
        longer.put_u8(0);
        assert!(decode_batch(1, &longer.freeze()).is_err());
        assert_eq!(message_of(position(77, 5)), (77, 5));
        assert!(position(77, BATCH_EVENTS_MAX - 1) < position(78, 0));
        assert_eq!(last_position(77), position(77, BATCH_EVENTS_MAX - 1));
    }

    #[test]
    fn envelopes_round_trip() {
        let e = Envelope {
            origin: Origin { node: 3, nonce: 4 },
            at: 99,
            rev: 5,
            op: Op::Settle {
                inbox: InboxRef(1, 0),
                ids: vec![IdRef::from(EventId::from_u128(u128::MAX))],
                how: How::Ack,
                leases: Some(vec![1]),
            },
        };
        assert_eq!(Envelope::decode(1, &e.encode()).expect("decodes"), e);
        assert!(Envelope::decode(1, b"{\"nope\":1}").is_err());
    }
}
