//! Engine benchmarks. Performance is never asserted in tests; it is measured here.
//!
//! - `append/engine/B`: durable append of B events of 512-byte payloads per group
//!   commit, against two raw `pwrite` + `fdatasync` loops writing the same bytes in the
//!   same run (`bench/engine.sh` prints the ratios; target: engine ≥ 80 % of raw at
//!   B ≥ 128):
//!   - `append/raw_append/B`: appending into fresh `fallocate`d space, as any log must;
//!   - `append/raw_overwrite/B`: overwriting already-written blocks, the cheapest sync
//!     the disk offers (no extent changes to journal): the strictest reference.
//! - `inbox/list_100`: listing 100 pending events.
//! - `inbox/ack_100`: acking 100 events in one durable request.
//! - `open/1M` (and `open/10M` with `SLUICE_BENCH_OPEN_10M=1`): recovery time.
//! - `consumers/append_nosync/N`: appending batches of 1,024 events (no sync: the CPU
//!   alone) to a tenant with N named consumers that take every event, N = 0 and 10;
//!   and, printed before it, the resident memory each pending event costs each
//!   consumer (RSS growth over 200,000 events with 10 consumers, less the same with 0,
//!   divided by 2,000,000 entries).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_store::embedded::{fsutil, Durability, EmbeddedConfig, EmbeddedStore};
use sluice_store::{AppendOutcome, InboxQuery, NewEvent, Settle, Store, TenantId};

const PAYLOAD_BYTES: usize = 512;
/// Bytes one event occupies in the log besides its payload (record header, fields and
/// the batch header share), so the raw loop writes what the engine writes.
const RECORD_OVERHEAD: usize = 8 + 1 + 8 + 4 + 8 + 1 + 2 + 10 + 4;

fn event(n: usize) -> NewEvent {
    let mut payload = format!(r#"{{"n":{n},"pad":""#).into_bytes();
    payload.resize(PAYLOAD_BYTES - 2, b'x');
    payload.extend_from_slice(b"\"}");
    NewEvent {
        tenant: TenantId(1),
        event_type: Bytes::from_static(b"bench.event"),
        source: None,
        occurred_at: None,
        idempotency: None,
        payload: Bytes::from(payload),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn bench_append(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("append");
    group.measurement_time(Duration::from_secs(4));
    for b in [1usize, 16, 128, 1024] {
        group.throughput(Throughput::Elements(b as u64));
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("open");
        let batch: Vec<NewEvent> = (0..b).map(event).collect();
        group.bench_with_input(BenchmarkId::new("engine", b), &b, |bench, _| {
            bench.iter(|| rt.block_on(store.append(batch.clone())).expect("append"));
        });
        store.close();

        // The engine's CPU cost alone: the same path without the sync.
        let cpu_dir = tempfile::tempdir().expect("tempdir");
        let mut cpu_config = EmbeddedConfig::new(cpu_dir.path());
        cpu_config.durability = Durability::None;
        let store = EmbeddedStore::open(cpu_config).expect("open");
        group.bench_with_input(BenchmarkId::new("engine_nosync", b), &b, |bench, _| {
            bench.iter(|| rt.block_on(store.append(batch.clone())).expect("append"));
        });
        store.close();

        let raw_dir = tempfile::tempdir().expect("tempdir");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(raw_dir.path().join("raw"))
            .expect("raw file");
        // The strictest honest reference: data blocks already written (zero-filled
        // in setup, untimed), so each fdatasync flushes data only. The engine's
        // segments are zero-filled ahead of time for the same reason.
        let capacity = 64u64 << 20;
        fsutil::preallocate(&file, capacity).expect("preallocate");
        let zeros = vec![0u8; 1 << 20];
        for i in 0..capacity >> 20 {
            file.write_all_at(&zeros, i << 20).expect("zero fill");
        }
        file.sync_all().expect("sync");
        let bytes = vec![7u8; b * (PAYLOAD_BYTES + RECORD_OVERHEAD) + 16];
        let mut pos = 0u64;
        group.bench_with_input(BenchmarkId::new("raw_overwrite", b), &b, |bench, _| {
            bench.iter(|| {
                if pos + bytes.len() as u64 > capacity {
                    pos = 0;
                }
                file.write_all_at(&bytes, pos).expect("write");
                file.sync_data().expect("fdatasync");
                pos += bytes.len() as u64;
            });
        });

        // Fresh space each time: a new fallocated file whenever one fills up, like the
        // engine's segment roll-over.
        let mut file_no = 0;
        let new_file = |n: usize| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(raw_dir.path().join(format!("append-{n}")))
                .expect("raw file");
            fsutil::preallocate(&f, capacity).expect("preallocate");
            f
        };
        let mut append_file = new_file(file_no);
        let mut pos = 0u64;
        group.bench_with_input(BenchmarkId::new("raw_append", b), &b, |bench, _| {
            bench.iter(|| {
                if pos + bytes.len() as u64 > capacity {
                    let _ = std::fs::remove_file(raw_dir.path().join(format!("append-{file_no}")));
                    file_no += 1;
                    append_file = new_file(file_no);
                    pos = 0;
                }
                append_file.write_all_at(&bytes, pos).expect("write");
                append_file.sync_data().expect("fdatasync");
                pos += bytes.len() as u64;
            });
        });
    }
    group.finish();
}

fn bench_inbox(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("open");
    for chunk in 0..50 {
        let events = (0..1000).map(|i| event(chunk * 1000 + i)).collect();
        rt.block_on(store.append(events)).expect("append");
    }
    let mut group = c.benchmark_group("inbox");
    group.throughput(Throughput::Elements(100));
    group.bench_function("list_100", |b| {
        let q = InboxQuery {
            tenant: TenantId(1),
            consumer: sluice_store::ConsumerId::DEFAULT,
            limit: 100,
            after: None,
            event_type: None,
            lease_ms: None,
            max_deliveries: None,
        };
        b.iter(|| {
            let page = rt.block_on(store.list(q.clone())).expect("list");
            assert_eq!(page.events.len(), 100);
        });
    });
    group.bench_function("ack_100", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let events = (0..100).map(event).collect();
                let ids: Vec<_> = rt
                    .block_on(store.append(events))
                    .expect("append")
                    .into_iter()
                    .map(|o| match o {
                        AppendOutcome::Created { id, .. } => id,
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect();
                let started = Instant::now();
                rt.block_on(store.settle(TenantId(1), ids, Settle::Ack))
                    .expect("ack");
                spent += started.elapsed();
            }
            spent
        });
    });
    group.finish();
    store.close();
}

fn bench_open(c: &mut Criterion) {
    let rt = runtime();
    let mut sizes = vec![1_000_000usize];
    if std::env::var_os("SLUICE_BENCH_OPEN_10M").is_some() {
        sizes.push(10_000_000);
    }
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    for total in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = EmbeddedConfig::new(dir.path());
        config.durability = Durability::None; // building the fixture, not measuring it
        let store = EmbeddedStore::open(config.clone()).expect("open");
        let batch: Vec<NewEvent> = (0..1000).map(event).collect();
        for _ in 0..total / 1000 {
            rt.block_on(store.append(batch.clone())).expect("append");
        }
        rt.block_on(store.sync()).expect("sync");
        store.close();
        let label = format!("{}M", total / 1_000_000);
        group.bench_function(label, |b| {
            b.iter(|| EmbeddedStore::open(config.clone()).expect("open").close());
        });
    }
    group.finish();
}

/// A store (no sync) whose tenant 1 has `n` named consumers taking every event.
fn with_consumers(rt: &tokio::runtime::Runtime, n: usize) -> (tempfile::TempDir, EmbeddedStore) {
    use sluice_store::{CatalogChange, CatalogOps, ConsumerStart, NewConsumer, TenantLimits};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = EmbeddedConfig::new(dir.path());
    config.durability = Durability::None;
    let store = EmbeddedStore::open(config).expect("open");
    rt.block_on(async {
        let tenant = store
            .create_tenant("bench", TenantLimits::default())
            .await
            .expect("tenant");
        assert_eq!(tenant.id, TenantId(1));
        for i in 0..n {
            let change = CatalogChange::CreateConsumer(NewConsumer {
                tenant: tenant.id,
                name: format!("c{i}"),
                event_types: Vec::new(),
                max_deliveries: None,
                start: ConsumerStart::New,
            });
            store.change_catalog(change).await.expect("consumer");
        }
    });
    (dir, store)
}

/// This process's resident set, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn bench_consumers(c: &mut Criterion) {
    let rt = runtime();
    const EVENTS: usize = 200_000;
    let batch: Vec<NewEvent> = (0..1000).map(event).collect();
    let mut growth = Vec::new();
    for n in [0usize, 10] {
        let (_dir, store) = with_consumers(&rt, n);
        let before = rss_bytes();
        for _ in 0..EVENTS / 1000 {
            rt.block_on(store.append(batch.clone())).expect("append");
        }
        growth.push(rss_bytes().saturating_sub(before) as f64);
        store.close();
    }
    eprintln!(
        "consumers/ram: {:.1} bytes of RSS per pending event per named consumer ({} events, 10 consumers; {:.1} MB with 0, {:.1} MB with 10)",
        (growth[1] - growth[0]) / (EVENTS * 10) as f64,
        EVENTS,
        growth[0] / 1e6,
        growth[1] / 1e6,
    );
    let mut group = c.benchmark_group("consumers");
    group.throughput(Throughput::Elements(1024));
    let batch: Vec<NewEvent> = (0..1024).map(event).collect();
    for n in [0usize, 10] {
        let (_dir, store) = with_consumers(&rt, n);
        group.bench_with_input(BenchmarkId::new("append_nosync", n), &n, |bench, _| {
            bench.iter(|| rt.block_on(store.append(batch.clone())).expect("append"));
        });
        store.close();
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_append,
    bench_inbox,
    bench_open,
    bench_consumers
);
criterion_main!(benches);
