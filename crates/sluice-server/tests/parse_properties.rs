//! Random and mangled ingest bodies against the parsers (proptest).
//!
//! The parsers are the first code to touch what the network sends, so they must answer
//! every input with an event or a problem, never a panic. The batch parser also has a
//! fast path (one pass over a whole JSON array) that must give exactly the answer of the
//! plain path (split the array, then parse each item): only the plain path's answers
//! are checked by hand in the unit tests, so here the two are compared on inputs nobody
//! wrote by hand. The properties:
//!
//! - the one-pass batch parse equals splitting and parsing item by item;
//! - an accepted event's payload is valid JSON, byte for byte a slice of the body;
//! - a malformed-JSON problem names a byte offset inside the body;
//! - every refusal is a 400 (malformed JSON), a 413 (a payload over the limit) or a
//!   422 (validation): the codes a client can act on by fixing the body.
//!
//! proptest shrinks any failure to a small body; keep its seeds in
//! `proptest-regressions/`.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_server::envelope::{parse_batch, parse_event, split_batch, ItemPath};
use sluice_server::problem::{Code, Problem};
use sluice_store::{NewEvent, TenantId};

/// Small enough that generated payloads cross it both ways.
const MAX_PAYLOAD_BYTES: usize = 48;

/// Values a field may hold: valid ones, and each kind of wrong one.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#""order.created""#.to_owned()),
        Just(r#""a b""#.to_owned()),
        Just(r#""""#.to_owned()),
        Just(r#""\u00e9t\u00e9 \"q\" \\ \n""#.to_owned()),
        Just(r#""2026-01-02T03:04:05.123Z""#.to_owned()),
        Just(r#""2026-02-30T03:04:05Z""#.to_owned()),
        Just(r#""2026-01-02T03:04:05+25:00""#.to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("-12.5e3".to_owned()),
        Just("{}".to_owned()),
        Just(r#"{"x":[1,2.50,"é",{"y":null}]}"#.to_owned()),
        Just("[1,2]".to_owned()),
        "[a-z.:_-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        "[ -~]{0,60}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        "[a-z]{0,70}".prop_map(|s| format!(r#"{{"pad":"{s}"}}"#)),
    ]
}

/// An event object: a random subset of the envelope's fields, sometimes an unknown one,
/// in random order.
fn event_object() -> impl Strategy<Value = String> {
    let field = |name: &'static str, present: f64| {
        proptest::option::weighted(present, value())
            .prop_map(move |v| v.map(|v| format!("\"{name}\":{v}")))
    };
    (
        field("event_type", 0.8),
        field("payload", 0.8),
        field("source", 0.3),
        field("occurred_at", 0.3),
        field("idempotency_key", 0.15),
        field("extra", 0.05),
        any::<u64>(),
    )
        .prop_map(|(a, b, c, d, e, f, order)| {
            let mut fields: Vec<String> = [a, b, c, d, e, f].into_iter().flatten().collect();
            let n = fields.len().max(1) as u64;
            fields.rotate_left((order % n) as usize);
            format!("{{{}}}", fields.join(","))
        })
}

/// A well-formed event whose fields are all of the right type, with a payload of any
/// size around the limit: what the batch parser's fast path takes.
fn well_typed_event() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("order.created"),
            Just("a b"),
            Just(""),
            Just("x\\u0041")
        ],
        "[a-z \"]{0,50}",
        proptest::option::of(prop_oneof![Just("2026-01-02T03:04:05Z"), Just("soon")]),
    )
        .prop_map(|(event_type, pad, occurred_at)| {
            let pad = serde_json::to_string(&pad).unwrap_or_default();
            let occurred_at =
                occurred_at.map_or(String::new(), |t| format!(r#","occurred_at":"{t}""#));
            format!(r#"{{"event_type":"{event_type}","payload":{{"pad":{pad}}}{occurred_at}}}"#)
        })
}

/// An item of a batch: mostly event objects, sometimes something else entirely.
fn item() -> impl Strategy<Value = String> {
    prop_oneof![6 => well_typed_event(), 6 => event_object(), 1 => value()]
}

/// A change to well-formed text: the ways a body arrives broken.
#[derive(Debug, Clone)]
enum Mangle {
    None,
    Truncate(usize),
    Replace(usize, u8),
    Insert(usize, u8),
}

fn mangle() -> impl Strategy<Value = Mangle> {
    let byte = prop_oneof![
        Just(b'"'),
        Just(b'\\'),
        Just(b'\n'),
        Just(b','),
        Just(b'}'),
        Just(b']'),
        Just(0xff),
        Just(0xc3),
        Just(0x00),
        any::<u8>(),
    ];
    prop_oneof![
        4 => Just(Mangle::None),
        1 => any::<usize>().prop_map(Mangle::Truncate),
        2 => (any::<usize>(), byte.clone()).prop_map(|(at, b)| Mangle::Replace(at, b)),
        2 => (any::<usize>(), byte).prop_map(|(at, b)| Mangle::Insert(at, b)),
    ]
}

fn apply(text: String, how: &Mangle) -> Bytes {
    let mut bytes = text.into_bytes();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *how {
        Mangle::None => {}
        Mangle::Truncate(i) => bytes.truncate(at(i, bytes.len())),
        Mangle::Replace(i, b) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes[i] = b;
        }
        Mangle::Replace(..) => {}
        Mangle::Insert(i, b) => {
            let i = at(i, bytes.len() + 1);
            bytes.insert(i, b);
        }
    }
    Bytes::from(bytes)
}

/// The plain path: split the array, then parse each item on its own. Written out here
/// rather than borrowed from the library (whose fallback does the same) so that the fast
/// path is compared with an oracle the library cannot change under it.
fn item_by_item(body: &Bytes, ndjson: bool) -> Result<Vec<Result<NewEvent, Problem>>, Problem> {
    let items = split_batch(body, ndjson)?;
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            parse_event(
                body,
                item,
                TenantId(1),
                None,
                MAX_PAYLOAD_BYTES,
                ItemPath::Item(i),
            )
        })
        .collect())
}

/// What every answer must satisfy, accepted or refused.
fn check_answer(body: &Bytes, answer: &Result<NewEvent, Problem>) -> Result<(), TestCaseError> {
    match answer {
        Ok(event) => {
            let payload = &event.payload;
            prop_assert!(
                serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok(),
                "accepted a payload that is not JSON: {payload:?}"
            );
            prop_assert!(payload.len() <= MAX_PAYLOAD_BYTES);
            let inside = body.as_ptr_range();
            let range = payload.as_ptr_range();
            prop_assert!(
                inside.start <= range.start && range.end <= inside.end,
                "the payload must be the body's own bytes, not a copy"
            );
        }
        Err(problem) => check_problem(body, problem)?,
    }
    Ok(())
}

/// A batch's answer: a problem for the whole body, or an answer per item.
fn check_batch(
    body: &Bytes,
    answer: &Result<Vec<Result<NewEvent, Problem>>, Problem>,
) -> Result<(), TestCaseError> {
    match answer {
        Ok(answers) => answers.iter().try_for_each(|a| check_answer(body, a)),
        Err(problem) => check_problem(body, problem),
    }
}

fn check_problem(body: &Bytes, problem: &Problem) -> Result<(), TestCaseError> {
    match problem.code {
        Code::MalformedJson => {
            let offset = problem.offset;
            prop_assert!(
                offset.is_some_and(|o| o <= body.len()),
                "a malformed-JSON problem must name a byte in the body: {offset:?} of {}",
                body.len()
            );
        }
        Code::ValidationFailed | Code::PayloadTooLarge => {}
        other => prop_assert!(
            false,
            "a body can only be malformed, too large or invalid, got {other:?}"
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn single_events_get_an_event_or_a_problem(object in item(), how in mangle()) {
        let body = apply(object, &how);
        let answer = parse_event(&body, &body, TenantId(1), None, MAX_PAYLOAD_BYTES, ItemPath::Body);
        check_answer(&body, &answer)?;
    }

    #[test]
    fn one_pass_batches_agree_with_item_by_item_parsing(
        items in proptest::collection::vec(item(), 0..6),
        how in mangle(),
    ) {
        let body = apply(format!("[{}]", items.join(",")), &how);
        let one_pass = parse_batch(&body, false, TenantId(1), MAX_PAYLOAD_BYTES);
        prop_assert_eq!(&one_pass, &item_by_item(&body, false));
        check_batch(&body, &one_pass)?;
    }

    #[test]
    fn ndjson_batches_answer_every_line(
        items in proptest::collection::vec(item(), 0..6),
        how in mangle(),
    ) {
        let body = apply(items.join("\n"), &how);
        let answer = parse_batch(&body, true, TenantId(1), MAX_PAYLOAD_BYTES);
        prop_assert_eq!(&answer, &item_by_item(&body, true));
        check_batch(&body, &answer)?;
    }
}
