//! Torn tails and corruption, with the behaviour DESIGN.md and the engine docs promise:
//! - a damaged final batch in the active segment (nothing valid after it) is a torn
//!   write: it is cut off, everything before it survives, and writing resumes;
//! - damage anywhere else refuses to open, naming the file and byte offset;
//! - `repair` opens anyway, cutting the damaged segment at the damage.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::segments;
use rand::{Rng, SeedableRng};
use sluice_store::embedded::codec::{read_batch, BatchRead, SEGMENT_HEADER_LEN};
use sluice_store::embedded::verify::verify_dir;
use sluice_store::embedded::{EmbeddedConfig, EmbeddedStore, EngineError};
use sluice_store::{AppendOutcome, EventId, InboxQuery, NewEvent, Store, StoreError, TenantId};

const T: TenantId = TenantId(1);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn config(dir: &Path, segment_bytes: u64) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::new(dir);
    c.segment_bytes = segment_bytes;
    c
}

fn event(n: usize) -> NewEvent {
    NewEvent {
        tenant: T,
        event_type: Bytes::from_static(b"t"),
        source: None,
        occurred_at: None,
        idempotency: None,
        payload: Bytes::from(format!(r#"{{"n":{n},"pad":"{}"}}"#, "p".repeat(n % 97))),
    }
}

/// Writes `batches` group commits of 1–3 events each; returns the ids per commit.
fn populate(dir: &Path, segment_bytes: u64, batches: usize) -> Vec<Vec<EventId>> {
    let store = EmbeddedStore::open(config(dir, segment_bytes)).expect("open");
    let mut out = Vec::new();
    rt().block_on(async {
        for b in 0..batches {
            let events = (0..1 + b % 3).map(|i| event(b * 3 + i)).collect();
            let ids = store
                .append(events)
                .await
                .expect("append")
                .into_iter()
                .map(|o| match o {
                    AppendOutcome::Created { id, .. } => id,
                    other => panic!("unexpected {other:?}"),
                });
            out.push(ids.collect());
        }
    });
    store.close();
    out
}

/// `(start, end)` of every batch frame in a segment file.
fn frames(path: &Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(path).expect("read segment");
    let mut pos = SEGMENT_HEADER_LEN;
    let mut out = Vec::new();
    while let BatchRead::Batch { frame_len, .. } = read_batch(&bytes, pos) {
        out.push((pos, pos + frame_len));
        pos += frame_len;
    }
    out
}

fn all_ids(dir: &Path, segment_bytes: u64, repair: bool) -> Result<Vec<EventId>, EngineError> {
    let mut c = config(dir, segment_bytes);
    c.repair = repair;
    let store = EmbeddedStore::open(c)?;
    let ids = rt().block_on(async {
        let q = InboxQuery {
            tenant: T,
            consumer: sluice_store::ConsumerId::DEFAULT,
            limit: 1000,
            after: None,
            event_type: None,
            lease_ms: None,
            max_deliveries: None,
        };
        store
            .list(q)
            .await
            .expect("list")
            .events
            .iter()
            .map(|e| e.id)
            .collect()
    });
    store.close();
    Ok(ids)
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.path().join(entry.file_name())).expect("copy");
    }
    to
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset] ^= 0x5A;
    std::fs::write(path, bytes).expect("write");
}

fn seeded() -> rand::rngs::StdRng {
    let seed: u64 = std::env::var("SLUICE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (SLUICE_TEST_SEED to repeat)");
    rand::rngs::StdRng::seed_from_u64(seed)
}

#[test]
fn truncation_anywhere_keeps_every_whole_commit_before_it() {
    let mut rng = seeded();
    let original = tempfile::tempdir().expect("tempdir");
    let ids = populate(original.path(), 1 << 20, 30);
    let seg = &segments(original.path())[0];
    let frames = frames(seg);
    assert_eq!(frames.len(), ids.len());
    let data_end = frames.last().expect("frames").1;
    for _ in 0..40 {
        let cut = rng.gen_range(SEGMENT_HEADER_LEN..=data_end);
        let dir = copy_dir(original.path());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(seg.file_name().expect("name")))
            .expect("open");
        file.set_len(cut as u64).expect("truncate");
        drop(file);
        let expected: Vec<EventId> = frames
            .iter()
            .zip(&ids)
            .filter(|((_, end), _)| *end <= cut)
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        assert_eq!(
            all_ids(dir.path(), 1 << 20, false).expect("open after truncation"),
            expected,
            "cut at {cut}"
        );
        // Writing resumes, and the result survives another reopen.
        let more = populate(dir.path(), 1 << 20, 2);
        let mut after = expected.clone();
        after.extend(more.into_iter().flatten());
        assert_eq!(
            all_ids(dir.path(), 1 << 20, false).expect("reopen"),
            after,
            "cut at {cut}, after new writes"
        );
    }
}

#[test]
fn damaged_final_commit_is_a_torn_write() {
    let mut rng = seeded();
    let original = tempfile::tempdir().expect("tempdir");
    let ids = populate(original.path(), 1 << 20, 10);
    let seg = &segments(original.path())[0];
    let (start, end) = *frames(seg).last().expect("frames");
    for _ in 0..20 {
        let dir = copy_dir(original.path());
        flip(
            &dir.path().join(seg.file_name().expect("name")),
            rng.gen_range(start..end),
        );
        let expected: Vec<EventId> = ids[..ids.len() - 1].iter().flatten().copied().collect();
        assert_eq!(all_ids(dir.path(), 1 << 20, false).expect("open"), expected);
    }
}

#[test]
fn damage_before_valid_data_refuses_to_open_and_names_the_place() {
    let mut rng = seeded();
    let original = tempfile::tempdir().expect("tempdir");
    populate(original.path(), 1 << 20, 10);
    let seg = &segments(original.path())[0];
    let frames = frames(seg);
    for _ in 0..20 {
        let (start, end) = frames[rng.gen_range(0..frames.len() - 1)];
        let dir = copy_dir(original.path());
        let path = dir.path().join(seg.file_name().expect("name"));
        flip(&path, rng.gen_range(start..end));
        match all_ids(dir.path(), 1 << 20, false) {
            Err(EngineError::Corrupt {
                path: p, offset, ..
            }) => {
                assert_eq!(p, path);
                assert_eq!(offset, start as u64);
            }
            other => panic!("expected a corruption error, got {other:?}"),
        }
        let report = verify_dir(dir.path()).expect("verify");
        assert!(report.is_corrupt());
        assert_eq!(
            report.segments[0].damage.as_ref().map(|d| d.offset),
            Some(start as u64)
        );
    }
}

#[test]
fn corrupt_sealed_segment_is_reported_refused_without_checkpoint_and_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = populate(dir.path(), 2048, 60);
    let segs = segments(dir.path());
    assert!(
        segs.len() >= 3,
        "expected several segments, got {}",
        segs.len()
    );
    let victim = &segs[1];
    assert!(
        victim.with_extension("idx").exists(),
        "sealed segments get an index checkpoint"
    );
    let frames_before = frames(&segs[0]).len();
    let frames = frames(victim);
    let (start, _) = frames[frames.len() / 2];
    // Inside the first record's checksum: the batch and that record's read both fail.
    flip(victim, start + 20);
    let damaged_id = ids[frames_before + frames.len() / 2][0];

    // With its checkpoint the store opens, and the damage is never silent: the scrub
    // reports the file and offset, and reading the damaged event fails naming them.
    let store = EmbeddedStore::open(config(dir.path(), 2048)).expect("opens from checkpoints");
    let report = store.wait_for_scrub();
    assert_eq!(report.damage.len(), 1, "{report:?}");
    assert_eq!(report.damage[0].path, *victim);
    assert_eq!(report.damage[0].offset, start as u64);
    assert_eq!(store.gauges().corrupt_segments, 1);
    // Through the store boundary the error is neutral, with the file in its message.
    match rt().block_on(store.get(T, damaged_id)) {
        Err(StoreError::Corrupt(detail)) => {
            assert!(detail.contains(&victim.display().to_string()), "{detail}")
        }
        other => panic!("reading a damaged event must fail loudly, got {other:?}"),
    }
    store.close();

    // Without the checkpoint, opening refuses and names the place.
    std::fs::remove_file(victim.with_extension("idx")).expect("remove checkpoint");
    let err = all_ids(dir.path(), 2048, false).expect_err("must refuse");
    let message = err.to_string();
    assert!(message.contains(&victim.display().to_string()), "{message}");
    assert!(message.contains(&format!("offset {start}")), "{message}");

    let survivors = all_ids(dir.path(), 2048, true).expect("repair opens");
    let all: Vec<EventId> = ids.iter().flatten().copied().collect();
    // Everything except the events from the damaged batch to the end of that segment.
    assert!(survivors.len() < all.len());
    assert!(!survivors.contains(&damaged_id));
    assert!(survivors.iter().all(|id| all.contains(id)));
    assert_eq!(survivors.first(), all.first());
    assert_eq!(
        survivors.last(),
        all.last(),
        "later segments survive repair"
    );
    // Repaired means clean: a normal open now succeeds and loses nothing more.
    assert_eq!(
        all_ids(dir.path(), 2048, false).expect("normal open"),
        survivors
    );
}

#[test]
fn checkpoints_and_full_replay_rebuild_the_same_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = populate(dir.path(), 2048, 80);
    let with_checkpoints = all_ids(dir.path(), 2048, false).expect("open");
    for seg in segments(dir.path()) {
        let _ = std::fs::remove_file(seg.with_extension("idx"));
    }
    let replayed = all_ids(dir.path(), 2048, false).expect("open by replay");
    assert_eq!(with_checkpoints, replayed);
    assert_eq!(replayed, ids.into_iter().flatten().collect::<Vec<_>>());
    // Replay wrote the checkpoints back.
    let segs = segments(dir.path());
    assert!(segs[..segs.len() - 1]
        .iter()
        .all(|s| s.with_extension("idx").exists()));
}

#[test]
fn zeroed_header_before_valid_data_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path(), 1 << 20, 5);
    let seg = &segments(dir.path())[0];
    let (start, _) = frames(seg)[1];
    let mut bytes = std::fs::read(seg).expect("read");
    bytes[start..start + 16].fill(0);
    std::fs::write(seg, bytes).expect("write");
    assert!(matches!(
        all_ids(dir.path(), 1 << 20, false),
        Err(EngineError::Corrupt { .. })
    ));
}
