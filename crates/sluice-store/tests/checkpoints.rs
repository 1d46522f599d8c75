//! Index checkpoints (`<segment>.idx`) are built by the writer from what it commits,
//! not by reading sealed segments back. What it builds must be exactly what a read-back
//! derives, for every kind of record, and across a restart (the segment the store was
//! opened on is read back when sealed, since the writer did not see its start).

mod common;

use std::path::Path;

use bytes::Bytes;
use common::segments;
use sluice_store::embedded::codec::SegmentHeader;
use sluice_store::embedded::sidecar;
use sluice_store::embedded::{EmbeddedConfig, EmbeddedStore};
use sluice_store::{AppendOutcome, IdempotencyKey, NewEvent, Settle, Store, TenantId};

fn config(dir: &Path) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::new(dir);
    c.segment_bytes = 4096;
    c
}

fn event(n: usize) -> NewEvent {
    NewEvent {
        tenant: TenantId(1 + (n % 2) as u32),
        event_type: Bytes::from(format!("type.{}", n % 5)),
        source: n.is_multiple_of(4).then(|| Bytes::from_static(b"src")),
        occurred_at: None,
        idempotency: n.is_multiple_of(3).then(|| IdempotencyKey {
            key: Bytes::from(format!("key-{n}")),
            fingerprint: [n as u8; 16],
        }),
        payload: Bytes::from(format!(r#"{{"n":{n},"pad":"{}"}}"#, "p".repeat(n % 61))),
    }
}

/// Appends batches, acking and deleting some of what came before, then closes.
fn run_once(dir: &Path, first: usize) {
    let store = EmbeddedStore::open(config(dir)).expect("open");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut created = Vec::new();
        for b in first..first + 60 {
            let events: Vec<NewEvent> = (0..1 + b % 3).map(|i| event(b * 3 + i)).collect();
            let tenants: Vec<TenantId> = events.iter().map(|e| e.tenant).collect();
            let outcomes = store.append(events).await.expect("append");
            for (outcome, tenant) in outcomes.into_iter().zip(tenants) {
                if let AppendOutcome::Created { id, .. } = outcome {
                    created.push((tenant, id));
                }
            }
            if b.is_multiple_of(4) && created.len() > 2 {
                let (tenant, id) = created[created.len() - 3];
                store
                    .settle(
                        tenant,
                        vec![id],
                        if b.is_multiple_of(8) {
                            Settle::Delete
                        } else {
                            Settle::Ack
                        },
                    )
                    .await
                    .expect("settle");
            }
        }
    });
    store.close();
}

#[test]
fn checkpoints_built_in_memory_match_the_segments_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_once(dir.path(), 0);
    let after_first = segments(dir.path()).len();
    run_once(dir.path(), 1000);
    let segs = segments(dir.path());
    assert!(
        after_first > 3 && segs.len() > after_first + 3,
        "{after_first} then {}",
        segs.len()
    );
    for seg in &segs[..segs.len() - 1] {
        let bytes = std::fs::read(seg).expect("read segment");
        let header = SegmentHeader::decode(&bytes).expect("header");
        let idx = std::fs::read(seg.with_extension("idx"))
            .unwrap_or_else(|e| panic!("no checkpoint for {}: {e}", seg.display()));
        let checkpoint = sidecar::decode(&idx, header, bytes.len() as u64)
            .unwrap_or_else(|| panic!("checkpoint of {} does not match it", seg.display()));
        let read_back = sidecar::from_segment(&bytes).expect("segment undamaged");
        assert!(!read_back.events.is_empty(), "{}", seg.display());
        assert_eq!(checkpoint, read_back, "{}", seg.display());
    }
    // The workload wrote every kind of record the checkpoint holds.
    let all: Vec<_> = segs[..segs.len() - 1]
        .iter()
        .map(|s| sidecar::from_segment(&std::fs::read(s).expect("read")).expect("undamaged"))
        .collect();
    assert!(all
        .iter()
        .any(|s| s.events.iter().any(|e| e.idempotency.is_some())));
    assert!(all
        .iter()
        .any(|s| s.settles.iter().any(|x| x.how == Settle::Ack)));
    assert!(all
        .iter()
        .any(|s| s.settles.iter().any(|x| x.how == Settle::Delete)));
}
