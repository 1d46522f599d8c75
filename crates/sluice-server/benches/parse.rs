//! Request-parser benchmarks. Performance is never asserted in tests; it is measured here.
//!
//! - `parse/single/envelope`: one ~400-byte event through `parse_event`, the hot path of
//!   `POST /v1/events` (borrowed envelope, payload kept as a slice of the body);
//! - `parse/single/dom`: the same body into a `serde_json::Value`, the reference a
//!   DOM-building server pays; the ratio shows what borrowing saves;
//! - `parse/single/envelope_keyed`: `envelope` with an Idempotency-Key, so with the
//!   canonical fingerprint (a parse and a sorted write of the payload, and SHA-256);
//! - `parse/batch_100/envelope`: `parse_batch` of 100 events (one pass), the hot path of
//!   `POST /v1/events/batch`, against `parse/batch_100/two_pass` (`split_batch`, then
//!   `parse_event` per item: the path for keyed or invalid items) and
//!   `parse/batch_100/dom`;
//! - `answer/batch_100`: writing the 207/201 answer of a 100-event batch (index, status,
//!   id and receive time per item) with the response writer.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_server::envelope::{parse_batch, parse_event, split_batch, ItemPath};
use sluice_server::json::JsonWriter;
use sluice_store::{EventId, Sequence, TenantId};

const PAYLOAD_MAX: usize = 1 << 20;

fn event() -> String {
    format!(
        r#"{{"event_type":"order.created","source":"bench","occurred_at":"2026-11-22T10:00:00.123Z","payload":{{"user":12345,"items":[1,2,3],"pad":"{}"}}}}"#,
        "x".repeat(270)
    )
}

fn single(c: &mut Criterion) {
    let body = Bytes::from(event());
    let mut group = c.benchmark_group("parse/single");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("envelope", |b| {
        b.iter(|| {
            parse_event(&body, &body, TenantId(1), None, PAYLOAD_MAX, ItemPath::Body)
                .map(|e| e.payload.len())
        })
    });
    group.bench_function("dom", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(&body).map(|v| v.is_object()))
    });
    // With an Idempotency-Key: the canonical fingerprint's cost on top of `envelope`.
    group.bench_function("envelope_keyed", |b| {
        b.iter(|| {
            parse_event(
                &body,
                &body,
                TenantId(1),
                Some("order-42"),
                PAYLOAD_MAX,
                ItemPath::Body,
            )
            .map(|e| e.payload.len())
        })
    });
    group.finish();
}

fn batch(c: &mut Criterion) {
    let body = Bytes::from(format!("[{}]", vec![event(); 100].join(",")));
    let mut group = c.benchmark_group("parse/batch_100");
    group.throughput(Throughput::Elements(100));
    group.bench_function("envelope", |b| {
        b.iter(|| {
            let events = parse_batch(&body, false, TenantId(1), PAYLOAD_MAX).map_err(|_| ())?;
            Ok::<_, ()>(events.iter().filter(|e| e.is_ok()).count())
        })
    });
    group.bench_function("two_pass", |b| {
        b.iter(|| {
            let items = split_batch(&body, false).map_err(|_| ())?;
            let mut bytes = 0;
            for (i, item) in items.iter().enumerate() {
                let event = parse_event(
                    &body,
                    item,
                    TenantId(1),
                    None,
                    PAYLOAD_MAX,
                    ItemPath::Item(i),
                )
                .map_err(|_| ())?;
                bytes += event.payload.len();
            }
            Ok::<_, ()>(bytes)
        })
    });
    group.bench_function("dom", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(&body).map(|v| v.is_array()))
    });
    group.finish();
}

fn answer(c: &mut Criterion) {
    let received_at = 1_795_388_000_123;
    let ids: Vec<EventId> = (0..100)
        .map(|i| EventId::new(received_at, Sequence(1_000_000 + i), 0x5a5a))
        .collect();
    let mut group = c.benchmark_group("answer");
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_100", |b| {
        b.iter(|| {
            let mut w = JsonWriter::with_capacity(64 * ids.len() + 64);
            w.begin_object();
            w.key("results");
            w.begin_array();
            let mut buf = [0u8; 30];
            for (i, id) in ids.iter().enumerate() {
                w.begin_object();
                w.field_u64("index", i as u64);
                w.field_u64("status", 201);
                w.field_str("event_id", id.encode(&mut buf));
                w.field_timestamp("received_at", received_at);
                w.end_object();
            }
            w.end_array();
            w.end_object();
            w.finish().len()
        })
    });
    group.finish();
}

criterion_group!(benches, single, batch, answer);
criterion_main!(benches);
