//! Control records: the durable state of the consumers that are not the inbox (the
//! subscriptions), written into the log beside the events, byte for byte here.
//!
//! ```text
//! deliveries := sub u32 | at i64 | cursor u64 | read_pos u64
//!               | last_success_at i64 | failing_since i64          (0: none)
//!               | pulled u32 | seq u64 * pulled                      (into the window)
//!               | replay_pulled u32 | seq u64 * replay_pulled       (out of the replay queue)
//!               | items u16 | item * items
//! item       := seq u64 (0: a test event) | flags u8 (1: replay) | next u8 (1 delivered,
//!               2 retry, 3 dead) | due_at i64 | event_id u128 | serial u64 | attempt u16
//!               | started_at i64 | latency_ms u32 | status u16 (0: none)
//!               | outcome u8 (1 delivered, 2 failed, 3 dead) | error_len u16 | error
//! replay     := sub u32 | at i64 | count u32 | seq u64 * count
//! ```
//!
//! The record's length and CRC are the log's (see `codec`); decoding checks every field
//! against its bounds, so a record that passed its checksum but not its structure is
//! reported as corruption, never half applied.

use crate::catalog::SubKey;
use crate::delivery::{Attempt, AttemptOutcome, Next, ATTEMPT_ERROR_BYTES_MAX};
use crate::event_id::EventId;
use crate::types::UnixMs;

use super::codec::{ControlRecord, KIND_DELIVERIES, KIND_REPLAY};

/// Items one deliveries record carries at most (the `u16` count).
pub(crate) const ITEMS_MAX: usize = u16::MAX as usize;

/// One settled attempt in a deliveries record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    /// The event's sequence; 0 for a test event (sequences start at 1).
    pub(crate) seq: u64,
    /// From a replay.
    pub(crate) replay: bool,
    /// What became of the delivery.
    pub(crate) next: Next,
    /// The attempt.
    pub(crate) attempt: Attempt,
}

/// A subscription's progress: what it pulled into its window, what it settled, and
/// where that leaves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Deliveries {
    pub(crate) sub: SubKey,
    pub(crate) at: UnixMs,
    /// Every matching event up to here is done, once this record applies.
    pub(crate) cursor: u64,
    /// Events up to here have been looked at (pulled, or skipped as not matching).
    pub(crate) read_pos: u64,
    pub(crate) last_success_at: Option<UnixMs>,
    pub(crate) failing_since: Option<UnixMs>,
    /// Events taken into the window, to be delivered.
    pub(crate) pulled: Vec<u64>,
    /// Events taken out of the replay queue, to be delivered again.
    pub(crate) replay_pulled: Vec<u64>,
    /// Attempts settled.
    pub(crate) items: Vec<Item>,
}

/// A replay request: events to deliver again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplayRequest {
    pub(crate) sub: SubKey,
    pub(crate) at: UnixMs,
    pub(crate) seqs: Vec<u64>,
}

/// A decoded control record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Control {
    Deliveries(Deliveries),
    Replay(ReplayRequest),
}

fn opt_ms(v: Option<UnixMs>) -> i64 {
    v.unwrap_or(0)
}

fn ms_opt(v: i64) -> Option<UnixMs> {
    (v != 0).then_some(v)
}

impl Control {
    /// The record kind.
    pub(crate) fn kind(&self) -> u8 {
        match self {
            Control::Deliveries(_) => KIND_DELIVERIES,
            Control::Replay(_) => KIND_REPLAY,
        }
    }

    /// An upper bound of the encoded size, for the commit queue's byte budget and the
    /// segment's room.
    pub(crate) fn bound_bytes(&self) -> usize {
        match self {
            Control::Deliveries(d) => {
                64 + 8 * (d.pulled.len() + d.replay_pulled.len())
                    + d.items.len() * (80 + crate::delivery::ATTEMPT_ERROR_BYTES_MAX)
            }
            Control::Replay(r) => 32 + 8 * r.seqs.len(),
        }
    }

    /// Encodes the fields (after the kind byte).
    pub(crate) fn encode(&self, b: &mut Vec<u8>) {
        match self {
            Control::Deliveries(d) => {
                assert!(d.items.len() <= ITEMS_MAX, "too many items in one record");
                b.extend_from_slice(&d.sub.0.to_le_bytes());
                b.extend_from_slice(&d.at.to_le_bytes());
                b.extend_from_slice(&d.cursor.to_le_bytes());
                b.extend_from_slice(&d.read_pos.to_le_bytes());
                b.extend_from_slice(&opt_ms(d.last_success_at).to_le_bytes());
                b.extend_from_slice(&opt_ms(d.failing_since).to_le_bytes());
                for list in [&d.pulled, &d.replay_pulled] {
                    b.extend_from_slice(&(list.len() as u32).to_le_bytes());
                    for s in list {
                        b.extend_from_slice(&s.to_le_bytes());
                    }
                }
                b.extend_from_slice(&(d.items.len() as u16).to_le_bytes());
                for item in &d.items {
                    let (next, due_at) = match item.next {
                        Next::Delivered => (1u8, 0i64),
                        Next::RetryAt(at) => (2, at),
                        Next::Dead => (3, 0),
                    };
                    let a = &item.attempt;
                    b.extend_from_slice(&item.seq.to_le_bytes());
                    b.push(u8::from(item.replay));
                    b.push(next);
                    b.extend_from_slice(&due_at.to_le_bytes());
                    b.extend_from_slice(&a.event_id.to_u128().to_le_bytes());
                    b.extend_from_slice(&a.serial.to_le_bytes());
                    b.extend_from_slice(&(a.attempt.min(u16::MAX as u32) as u16).to_le_bytes());
                    b.extend_from_slice(&a.started_at.to_le_bytes());
                    b.extend_from_slice(&a.latency_ms.to_le_bytes());
                    b.extend_from_slice(&a.status.unwrap_or(0).to_le_bytes());
                    b.push(match a.outcome {
                        AttemptOutcome::Delivered => 1,
                        AttemptOutcome::Failed => 2,
                        AttemptOutcome::Dead => 3,
                    });
                    let error = a.error.as_deref().unwrap_or("");
                    let error = truncate(error, ATTEMPT_ERROR_BYTES_MAX);
                    b.extend_from_slice(&(error.len() as u16).to_le_bytes());
                    b.extend_from_slice(error.as_bytes());
                }
            }
            Control::Replay(r) => {
                b.extend_from_slice(&r.sub.0.to_le_bytes());
                b.extend_from_slice(&r.at.to_le_bytes());
                b.extend_from_slice(&(r.seqs.len() as u32).to_le_bytes());
                for s in &r.seqs {
                    b.extend_from_slice(&s.to_le_bytes());
                }
            }
        }
    }

    /// Decodes a control record's fields.
    pub(crate) fn decode(record: ControlRecord<'_>) -> Result<Control, &'static str> {
        let mut r = Fields {
            b: record.fields,
            at: 0,
        };
        let control = match record.kind {
            KIND_DELIVERIES => {
                let sub = SubKey(r.u32()?);
                let at = r.i64()?;
                let cursor = r.u64()?;
                let read_pos = r.u64()?;
                let last_success_at = ms_opt(r.i64()?);
                let failing_since = ms_opt(r.i64()?);
                let pulled = r.seqs()?;
                let replay_pulled = r.seqs()?;
                let count = r.u16()? as usize;
                let mut items = Vec::with_capacity(count.min(record.fields.len() / 60));
                for _ in 0..count {
                    let seq = r.u64()?;
                    let replay = match r.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err("bad item flags"),
                    };
                    let next_kind = r.u8()?;
                    let due_at = r.i64()?;
                    let next = match next_kind {
                        1 => Next::Delivered,
                        2 => Next::RetryAt(due_at),
                        3 => Next::Dead,
                        _ => return Err("bad item outcome"),
                    };
                    let event_id = EventId::from_u128(r.u128()?);
                    let serial = r.u64()?;
                    let attempt = u32::from(r.u16()?);
                    let started_at = r.i64()?;
                    let latency_ms = r.u32()?;
                    let status = match r.u16()? {
                        0 => None,
                        s => Some(s),
                    };
                    let outcome = match r.u8()? {
                        1 => AttemptOutcome::Delivered,
                        2 => AttemptOutcome::Failed,
                        3 => AttemptOutcome::Dead,
                        _ => return Err("bad attempt outcome"),
                    };
                    let len = r.u16()? as usize;
                    if len > ATTEMPT_ERROR_BYTES_MAX {
                        return Err("attempt error too long");
                    }
                    let error = std::str::from_utf8(r.take(len)?)
                        .map_err(|_| "attempt error is not UTF-8")?;
                    items.push(Item {
                        seq,
                        replay,
                        next,
                        attempt: Attempt {
                            serial,
                            event_id,
                            attempt,
                            started_at,
                            latency_ms,
                            status,
                            error: (!error.is_empty()).then(|| error.to_owned()),
                            outcome,
                        },
                    });
                }
                Control::Deliveries(Deliveries {
                    sub,
                    at,
                    cursor,
                    read_pos,
                    last_success_at,
                    failing_since,
                    pulled,
                    replay_pulled,
                    items,
                })
            }
            KIND_REPLAY => {
                let sub = SubKey(r.u32()?);
                let at = r.i64()?;
                let seqs = r.seqs()?;
                Control::Replay(ReplayRequest { sub, at, seqs })
            }
            _ => return Err("unknown control record kind"),
        };
        if r.at != record.fields.len() {
            return Err("trailing bytes in a control record");
        }
        Ok(control)
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Fields<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or("field length overflows")?;
        let out = self
            .b
            .get(self.at..end)
            .ok_or("field runs past the record")?;
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(a))
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(self.u64()? as i64)
    }
    fn u128(&mut self) -> Result<u128, &'static str> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        Ok(u128::from_le_bytes(a))
    }
    fn seqs(&mut self) -> Result<Vec<u64>, &'static str> {
        let n = self.u32()? as usize;
        let bytes = self.take(n.checked_mul(8).ok_or("count overflows")?)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Sequence;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let d = Control::Deliveries(Deliveries {
            sub: SubKey(3),
            at: 1_700_000_000_000,
            cursor: 10,
            read_pos: 20,
            last_success_at: Some(5),
            failing_since: None,
            pulled: vec![11, 12],
            replay_pulled: vec![2],
            items: vec![Item {
                seq: 11,
                replay: false,
                next: Next::RetryAt(99),
                attempt: Attempt {
                    serial: 7,
                    event_id: EventId::new(1, Sequence(11), 2),
                    attempt: 1,
                    started_at: 1,
                    latency_ms: 15,
                    status: Some(503),
                    error: Some("é".repeat(200)),
                    outcome: AttemptOutcome::Failed,
                },
            }],
        });
        let mut fields = Vec::new();
        d.encode(&mut fields);
        let decoded = Control::decode(ControlRecord {
            kind: KIND_DELIVERIES,
            fields: &fields,
        })
        .expect("decodes");
        let Control::Deliveries(got) = &decoded else {
            panic!("{decoded:?}")
        };
        // The error was cut to its bound, on a character boundary.
        let error = got.items[0].attempt.error.as_deref().expect("error");
        assert!(error.len() <= ATTEMPT_ERROR_BYTES_MAX && error.chars().all(|c| c == 'é'));
        let mut cut = fields.clone();
        cut.pop();
        assert!(Control::decode(ControlRecord {
            kind: KIND_DELIVERIES,
            fields: &cut
        })
        .is_err());
        let r = Control::Replay(ReplayRequest {
            sub: SubKey(1),
            at: 2,
            seqs: vec![3, 4],
        });
        let mut fields = Vec::new();
        r.encode(&mut fields);
        assert_eq!(
            Control::decode(ControlRecord {
                kind: KIND_REPLAY,
                fields: &fields
            }),
            Ok(r)
        );
    }
}
