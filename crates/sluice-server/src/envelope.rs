//! Parsing and validating ingest bodies, without building a DOM.
//!
//! The envelope is read into borrowed [`RawValue`]s, so each field is a slice of the
//! request body; the payload is kept verbatim as a `Bytes` slice of that body (no copy,
//! no re-serialisation). Every field error is reported at once, with its JSON path.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use sluice_store::{IdempotencyKey, NewEvent, TenantId};

use crate::problem::{Code, FieldError, Problem};

/// Events one batch request may carry.
pub const BATCH_EVENTS_MAX: usize = 1000;
const SOURCE_BYTES_MAX: usize = 1024;
const IDEMPOTENCY_KEY_CHARS_MAX: usize = 255;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(borrow, default)]
    source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    occurred_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    idempotency_key: Option<&'a RawValue>,
}

/// The fast path's envelope: strings read as strings, so that validation does not
/// parse each string field a second time. Whatever it cannot read (a field of the
/// wrong type, say) is read again with [`Envelope`], which names the field in its
/// error; in a batch, one such item sends the whole batch item by item.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypedEnvelope<'a> {
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    idempotency_key: Option<&'a RawValue>,
}

/// An envelope's string field as validation sees it, whichever envelope read it.
enum Field<'a> {
    Absent,
    Str(Cow<'a, str>),
    NotAString,
}

impl<'a> Field<'a> {
    fn from_raw(raw: Option<&'a RawValue>) -> Field<'a> {
        match raw {
            None => Field::Absent,
            Some(raw) => string(raw).map_or(Field::NotAString, Field::Str),
        }
    }

    fn from_typed(s: Option<Cow<'a, str>>) -> Field<'a> {
        s.map_or(Field::Absent, Field::Str)
    }
}

/// The fields of one event, ready for [`validate`].
struct Fields<'a> {
    event_type: Field<'a>,
    payload: Option<&'a RawValue>,
    source: Field<'a>,
    occurred_at: Field<'a>,
    idempotency_key: Field<'a>,
}

impl<'a> From<Envelope<'a>> for Fields<'a> {
    fn from(e: Envelope<'a>) -> Self {
        Fields {
            event_type: Field::from_raw(e.event_type),
            payload: e.payload,
            source: Field::from_raw(e.source),
            occurred_at: Field::from_raw(e.occurred_at),
            idempotency_key: Field::from_raw(e.idempotency_key),
        }
    }
}

impl<'a> From<TypedEnvelope<'a>> for Fields<'a> {
    fn from(e: TypedEnvelope<'a>) -> Self {
        Fields {
            event_type: Field::Str(e.event_type),
            payload: Some(e.payload),
            source: Field::from_typed(e.source),
            occurred_at: Field::from_typed(e.occurred_at),
            idempotency_key: Field::from_raw(e.idempotency_key),
        }
    }
}

/// Where an event sits in its request, for field names in errors: the body itself, or
/// the n-th item of a batch (`[3].event_type`). A value, formatted only when an error is
/// reported, so the success path of a batch allocates nothing per item for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemPath {
    /// A single-event request.
    Body,
    /// Item `n` of a batch.
    Item(usize),
}

impl std::fmt::Display for ItemPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemPath::Body => Ok(()),
            ItemPath::Item(n) => write!(f, "[{n}]."),
        }
    }
}

/// Parses one event. `item` is a slice of `body` (the whole body for a single event).
pub fn parse_event(
    body: &Bytes,
    item: &[u8],
    tenant: TenantId,
    header_key: Option<&str>,
    max_payload_bytes: usize,
    path: ItemPath,
) -> Result<NewEvent, Problem> {
    // The typed envelope reads each string once; whatever it cannot read is read again
    // with the RawValue envelope, whose errors name the field (see `TypedEnvelope`).
    let fields = match read_checked_text::<TypedEnvelope<'_>>(item) {
        Some(typed) => typed.into(),
        None => serde_json::from_slice::<Envelope<'_>>(item)
            .map_err(|e| json_problem(&e, item, path))?
            .into(),
    };
    validate(
        fields,
        body,
        item,
        tenant,
        header_key,
        max_payload_bytes,
        path,
    )
}

/// Parses a batch body (a JSON array, or NDJSON) into one result per item, in order.
///
/// A JSON array is first read in one pass, every envelope at once: splitting the array
/// and then parsing each item scanned every byte twice (criterion: 94 µs for 100 events
/// against 61 µs for 100 single parses). That pass is used only when it tells the whole
/// story: it fails whole on any item serde rejects, and it does not keep each item's
/// bytes, which an idempotency key's fingerprint needs. Then the items are split and
/// parsed one by one, for per-item errors and fingerprints.
pub fn parse_batch(
    body: &Bytes,
    ndjson: bool,
    tenant: TenantId,
    max_payload_bytes: usize,
) -> Result<Vec<Result<NewEvent, Problem>>, Problem> {
    if !ndjson {
        if let Some(envelopes) = read_checked_text::<Vec<TypedEnvelope<'_>>>(body) {
            if envelopes.iter().all(|e| e.idempotency_key.is_none()) {
                check_batch_len(envelopes.len())?;
                return Ok(envelopes
                    .into_iter()
                    .enumerate()
                    .map(|(i, envelope)| {
                        // No key, so the item's own bytes (for a fingerprint) are never
                        // needed: the empty slice stands in for them.
                        validate(
                            envelope.into(),
                            body,
                            &[],
                            tenant,
                            None,
                            max_payload_bytes,
                            ItemPath::Item(i),
                        )
                    })
                    .collect());
            }
        }
    }
    let items = split_batch(body, ndjson)?;
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            parse_event(
                body,
                item,
                tenant,
                None,
                max_payload_bytes,
                ItemPath::Item(i),
            )
        })
        .collect())
}

/// Checks a parsed envelope's fields; `item` is the event's bytes, fingerprinted when it
/// carries an idempotency key.
fn validate(
    envelope: Fields<'_>,
    body: &Bytes,
    item: &[u8],
    tenant: TenantId,
    header_key: Option<&str>,
    max_payload_bytes: usize,
    path: ItemPath,
) -> Result<NewEvent, Problem> {
    let mut errors = Vec::new();
    let field = |name: &str| format!("{path}{name}");

    let event_type = match envelope.event_type {
        Field::Absent => {
            errors.push(FieldError::new(field("event_type"), "is required"));
            None
        }
        Field::Str(t) if crate::validate::event_type(&t) => Some(to_bytes(body, t)),
        Field::Str(_) => {
            errors.push(FieldError::new(
                field("event_type"),
                crate::validate::EVENT_TYPE_RULE,
            ));
            None
        }
        Field::NotAString => {
            errors.push(FieldError::new(field("event_type"), "must be a string"));
            None
        }
    };

    let payload = match envelope.payload {
        None => {
            errors.push(FieldError::new(field("payload"), "is required"));
            None
        }
        Some(raw) if !raw.get().starts_with('{') => {
            errors.push(FieldError::new(field("payload"), "must be a JSON object"));
            None
        }
        Some(raw) if raw.get().len() > max_payload_bytes => {
            return Err(Problem::new(
                Code::PayloadTooLarge,
                format!(
                    "{path}payload is {} bytes; this tenant's limit is {max_payload_bytes}",
                    raw.get().len()
                ),
            ));
        }
        Some(raw) => Some(body.slice_ref(raw.get().as_bytes())),
    };

    // Field names are passed as (path, name) and joined only when an error is reported:
    // the success path allocates nothing for them.
    let source = optional_string(envelope.source, (path, "source"), &mut errors, |s| {
        (s.len() <= SOURCE_BYTES_MAX)
            .then_some(())
            .ok_or("must be at most 1024 bytes")
    })
    .map(|s| to_bytes(body, s));

    let occurred_at = optional_string(
        envelope.occurred_at,
        (path, "occurred_at"),
        &mut errors,
        |s| {
            valid_rfc3339(s)
                .then_some(())
                .ok_or("must be an RFC 3339 timestamp, e.g. 2026-01-02T03:04:05Z")
        },
    )
    .map(|s| to_bytes(body, s));

    let body_key = optional_string(
        envelope.idempotency_key,
        (path, "idempotency_key"),
        &mut errors,
        valid_key,
    );
    let key = match (body_key, header_key) {
        (Some(b), Some(h)) if b != h => {
            errors.push(FieldError::new(
                field("idempotency_key"),
                "differs from the Idempotency-Key header; send one or make them equal",
            ));
            None
        }
        (Some(b), _) => Some(to_bytes(body, b)),
        (None, Some(h)) => match valid_key(h) {
            Ok(()) => Some(Bytes::copy_from_slice(h.as_bytes())),
            Err(message) => {
                errors.push(FieldError::new("Idempotency-Key", message));
                None
            }
        },
        (None, None) => None,
    };

    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let (Some(event_type), Some(payload)) = (event_type, payload) else {
        return Err(Problem::new(
            Code::Internal,
            "validation passed without required fields",
        ));
    };
    let idempotency = key.map(|key| IdempotencyKey {
        key,
        fingerprint: fingerprint_event(
            &event_type,
            source.as_deref(),
            occurred_at.as_deref(),
            &payload,
        )
        .unwrap_or_else(|| fingerprint(item)),
    });
    Ok(NewEvent {
        tenant,
        event_type,
        source,
        occurred_at,
        idempotency,
        payload,
    })
}

/// Reads JSON from `bytes` once they are checked to be UTF-8 as a whole (SIMD), as
/// text, so that serde_json does not check each string and raw value again: with
/// `from_slice` it ran `str::from_utf8` over every payload, ~10 % of a batch's
/// instructions. `None` on any failure; callers then read again with `from_slice`,
/// whose errors carry the byte position.
fn read_checked_text<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    let text = simdutf8::basic::from_utf8(bytes).ok()?;
    serde_json::from_str(text).ok()
}

/// The items of a batch body: a JSON array, or NDJSON (one event per line).
pub fn split_batch(body: &[u8], ndjson: bool) -> Result<Vec<&[u8]>, Problem> {
    let items: Vec<&[u8]> = if ndjson {
        body.split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .collect()
    } else {
        let raw: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                Problem::validation(vec![FieldError::new("", "must be a JSON array of events")])
            } else {
                json_problem(&e, body, ItemPath::Body)
            }
        })?;
        raw.into_iter().map(|r| r.get().as_bytes()).collect()
    };
    check_batch_len(items.len())?;
    Ok(items)
}

fn check_batch_len(len: usize) -> Result<(), Problem> {
    if len == 0 {
        return Err(Problem::validation(vec![FieldError::new(
            "",
            "the batch holds no events",
        )]));
    }
    if len > BATCH_EVENTS_MAX {
        return Err(Problem::validation(vec![FieldError::new(
            "",
            format!("the batch holds {len} events; the limit is {BATCH_EVENTS_MAX}"),
        )]));
    }
    Ok(())
}

/// A digest of what a client sent with an idempotency key, in canonical form: the
/// event's fields, with the payload parsed and written back with sorted keys and no
/// whitespace. So a retry from another serializer (other key order, other spacing) or
/// with the key moved between the header and the body replays, as Stripe's API does,
/// while any change of a value is still a different request. Computed only for keyed
/// events (its cost, a parse and a write of the payload, is in `benches/parse.rs`).
///
/// `None` only if the payload, already validated as JSON, fails to parse again: the
/// caller then falls back to the raw bytes.
pub fn fingerprint_event(
    event_type: &[u8],
    source: Option<&[u8]>,
    occurred_at: Option<&[u8]>,
    payload: &[u8],
) -> Option<[u8; 16]> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let canonical = serde_json::to_vec(&value).ok()?;
    let mut h = Sha256::new();
    h.update(b"sluice-fingerprint-v2");
    for part in [Some(event_type), source, occurred_at, Some(&canonical[..])] {
        match part {
            Some(p) => {
                h.update([1u8]);
                h.update((p.len() as u64).to_le_bytes());
                h.update(p);
            }
            None => h.update([0u8]),
        }
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    Some(out)
}

/// A digest of raw bytes (the fallback of [`fingerprint_event`]).
pub fn fingerprint(bytes: &[u8]) -> [u8; 16] {
    let digest = Sha256::digest(bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn json_problem(e: &serde_json::Error, input: &[u8], path: ItemPath) -> Problem {
    if e.is_data() {
        // Well-formed JSON of the wrong shape: name the field where serde can.
        let message = e.to_string();
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"));
        let error = match field {
            Some(f) if message.starts_with("unknown field") => FieldError::new(
                format!("{path}{f}"),
                "is not a known field (expected event_type, payload, source, occurred_at, idempotency_key)",
            ),
            Some(f) => FieldError::new(format!("{path}{f}"), strip_position(&message)),
            None => FieldError::new(
                path.to_string().trim_end_matches('.'),
                "must be a JSON object with event_type and payload",
            ),
        };
        return Problem::validation(vec![error]);
    }
    let offset = byte_offset(input, e.line(), e.column());
    let mut p = Problem::new(
        Code::MalformedJson,
        format!(
            "{path}body is not valid JSON at byte {offset}: {}",
            strip_position(&e.to_string())
        ),
    );
    p.offset = Some(offset);
    p
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// serde_json reports 1-based line and column; clients want a byte offset.
fn byte_offset(input: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        input
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(line - 2)
            .map_or(input.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(input.len())
}

fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'_, str>>(raw.get()).ok()
}

fn to_bytes(body: &Bytes, s: Cow<'_, str>) -> Bytes {
    match s {
        // Borrowed strings point into the body: share it instead of copying.
        Cow::Borrowed(b) => body.slice_ref(b.as_bytes()),
        Cow::Owned(o) => Bytes::from(o),
    }
}

fn optional_string<'a>(
    value: Field<'a>,
    (path, name): (ItemPath, &str),
    errors: &mut Vec<FieldError>,
    check: impl Fn(&str) -> Result<(), &'static str>,
) -> Option<Cow<'a, str>> {
    let field = || format!("{path}{name}");
    let s = match value {
        Field::Absent => return None,
        Field::Str(s) => s,
        Field::NotAString => {
            errors.push(FieldError::new(field(), "must be a string"));
            return None;
        }
    };
    match check(&s) {
        Ok(()) => Some(s),
        Err(message) => {
            errors.push(FieldError::new(field(), message));
            None
        }
    }
}

fn valid_key(key: &str) -> Result<(), &'static str> {
    let n = key.chars().count();
    if n == 0 || n > IDEMPOTENCY_KEY_CHARS_MAX {
        return Err("must be 1 to 255 characters");
    }
    Ok(())
}

/// RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, with real ranges.
pub fn valid_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + (d - b'0') as u32))
    };
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return false;
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return false;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &frac[digits..];
    }
    match rest {
        [b'Z'] | [b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let digits = [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit());
            digits && (h1 - b'0') * 10 + (h2 - b'0') <= 23 && (m1 - b'0') * 10 + (m2 - b'0') <= 59
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NewEvent, Problem> {
        let body = Bytes::copy_from_slice(json.as_bytes());
        parse_event(&body, &body, TenantId(1), None, 1 << 20, ItemPath::Body)
    }

    /// Splitting and parsing each item: the reference `parse_batch` must agree with.
    fn two_pass(body: &Bytes) -> Result<Vec<Result<NewEvent, Problem>>, Problem> {
        let items = split_batch(body, false)?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_event(body, item, TenantId(1), None, 64, ItemPath::Item(i)))
            .collect())
    }

    #[test]
    fn one_pass_batches_agree_with_item_by_item_parsing() {
        for (case, json) in [
            (
                "valid",
                r#"[{"event_type":"a","payload":{"x":1}}, {"event_type":"b","payload":{},"source":"s\"q"}]"#,
            ),
            (
                "bad type and big payload",
                r#"[{"event_type":"a b","payload":{}},{"event_type":"a","payload":{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}]"#,
            ),
            (
                "keyed: fingerprints need the items",
                r#"[{"event_type":"a","payload":{},"idempotency_key":"k1"},{"event_type":"a","payload":{}}]"#,
            ),
            (
                "unknown field",
                r#"[{"event_type":"a","payload":{}},{"event_type":"a","payload":{},"extra":1}]"#,
            ),
            (
                "strings with escapes, nulls and timestamps",
                r#"[{"event_type":"a\u0062","payload":{},"source":null,"occurred_at":"2026-01-02T03:04:05Z"},{"event_type":"c","payload":{},"source":"\u00e9t\u00e9","occurred_at":null}]"#,
            ),
            (
                "fields of the wrong type: the typed pass fails whole",
                r#"[{"event_type":5,"payload":{}},{"event_type":"a","payload":{},"source":7},{"event_type":"a","payload":{},"occurred_at":false}]"#,
            ),
            (
                "bad timestamp, payload not an object, payload missing",
                r#"[{"event_type":"a","payload":{},"occurred_at":"yesterday"},{"event_type":"a","payload":[1]},{"event_type":"a"}]"#,
            ),
            ("not objects", r#"[{"event_type":"a","payload":{}}, 7]"#),
            ("not an array", r#"{"event_type":"a","payload":{}}"#),
            ("malformed", r#"[{"event_type":"a","payload":{}"#),
            ("empty", "[]"),
        ] {
            let body = Bytes::copy_from_slice(json.as_bytes());
            let one_pass = parse_batch(&body, false, TenantId(1), 64);
            assert_eq!(one_pass, two_pass(&body), "{case}");
        }
        // Invalid UTF-8 fails the checked-text pass and gets serde_json's positioned
        // error, as before.
        let body = Bytes::from_static(b"[{\"event_type\":\"a\",\"payload\":{\"x\":\"\xff\"}}]");
        let one_pass = parse_batch(&body, false, TenantId(1), 64);
        assert!(one_pass.is_err(), "invalid UTF-8 must be refused");
        assert_eq!(one_pass, two_pass(&body), "invalid UTF-8");
        // The keyed item got its fingerprint from its own fields, in canonical form.
        let body =
            Bytes::from_static(br#"[{"event_type":"a","payload":{},"idempotency_key":"k1"}]"#);
        let events = parse_batch(&body, false, TenantId(1), 64).expect("parsed");
        let key = events[0]
            .as_ref()
            .expect("valid")
            .idempotency
            .as_ref()
            .expect("keyed");
        assert_eq!(
            key.fingerprint,
            fingerprint_event(b"a", None, None, b"{}").expect("fp")
        );
    }

    #[test]
    fn the_fingerprint_ignores_spelling_but_not_values() {
        let fp = |json: &str| {
            parse(json)
                .expect("valid")
                .idempotency
                .expect("keyed")
                .fingerprint
        };
        let a = fp(r#"{"event_type":"a","idempotency_key":"k","payload":{"x":1,"y":[1,2]}}"#);
        // Other key order, other whitespace, the key elsewhere in the object: the same.
        assert_eq!(
            a,
            fp(
                r#"{ "payload" : { "y" : [ 1 , 2 ] , "x" : 1 } , "event_type" : "a" , "idempotency_key" : "k" }"#
            )
        );
        // Any change of a value, a type or a field: different.
        for other in [
            r#"{"event_type":"a","idempotency_key":"k","payload":{"x":2,"y":[1,2]}}"#,
            r#"{"event_type":"a","idempotency_key":"k","payload":{"x":"1","y":[1,2]}}"#,
            r#"{"event_type":"a","idempotency_key":"k","payload":{"x":1,"y":[2,1]}}"#,
            r#"{"event_type":"b","idempotency_key":"k","payload":{"x":1,"y":[1,2]}}"#,
            r#"{"event_type":"a","idempotency_key":"k","source":"s","payload":{"x":1,"y":[1,2]}}"#,
        ] {
            assert_ne!(a, fp(other), "{other}");
        }
    }

    #[test]
    fn keeps_payload_verbatim_and_shares_the_body() {
        let json = r#"{"event_type":"a.b","payload":{ "x" : [1, 2.50, "é"] },"source":"s"}"#;
        let e = parse(json).expect("valid");
        assert_eq!(&e.payload[..], r#"{ "x" : [1, 2.50, "é"] }"#.as_bytes());
        assert_eq!(&e.event_type[..], b"a.b");
        assert_eq!(e.source.as_deref(), Some(&b"s"[..]));
    }

    #[test]
    fn reports_every_field_error() {
        let p = parse(
            r#"{"event_type":"bad type!","payload":[1],"occurred_at":"2026-02-30T00:00:00Z"}"#,
        )
        .expect_err("invalid");
        assert_eq!(p.code, Code::ValidationFailed);
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["event_type", "payload", "occurred_at"]);
        let p = parse(r#"{"event_type":"a","payload":{},"paylod":{}}"#).expect_err("unknown field");
        assert_eq!(p.errors[0].field, "paylod");
        let p = parse(r#"{"payload":{}}"#).expect_err("missing");
        assert_eq!(p.errors[0].field, "event_type");
    }

    #[test]
    fn malformed_json_names_the_byte() {
        let p = parse("{\"event_type\":\"a\",\n \"payload\": {oops}}").expect_err("malformed");
        assert_eq!(p.code, Code::MalformedJson);
        // The first byte of `oops`: line 2 starts at byte 19, and `o` is 13 further.
        assert_eq!(p.offset, Some(32));
    }

    #[test]
    fn rfc3339() {
        for ok in [
            "2026-01-02T03:04:05Z",
            "2024-02-29T23:59:60.123456+05:30",
            "2026-01-02t03:04:05-00:00",
        ] {
            assert!(valid_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2026-01-02",
            "2026-13-02T03:04:05Z",
            "2023-02-29T00:00:00Z",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T24:00:00Z",
        ] {
            assert!(!valid_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn batches_split_as_array_or_ndjson() {
        assert_eq!(
            split_batch(br#"[{"a":1}, {"b":2}]"#, false)
                .expect("array")
                .len(),
            2
        );
        assert_eq!(
            split_batch(b"{\"a\":1}\r\n\n{\"b\":2}\n", true)
                .expect("ndjson")
                .len(),
            2
        );
        assert_eq!(
            split_batch(b"[]", false).expect_err("empty").code,
            Code::ValidationFailed
        );
        assert_eq!(
            split_batch(b"[{", false).expect_err("malformed").code,
            Code::MalformedJson
        );
    }
}
