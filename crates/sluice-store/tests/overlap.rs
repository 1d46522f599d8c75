//! Commits staged while an earlier one is still syncing (the overlapped sync path).
//!
//! The writer stages and writes commit N+1 while commit N syncs. Commit N is not yet in
//! the index then, so what N+1 decides must also look at what N staged. This drives that
//! case deterministically: a slow sync (`commit_delay`) holds each commit in flight, and a
//! one-byte `batch_bytes_max` puts every command in a commit of its own.

use std::time::Duration;

use bytes::Bytes;
use sluice_store::embedded::{EmbeddedConfig, EmbeddedStore};
use sluice_store::{AppendOutcome, NewEvent, Settle, SettleOutcome, Store, TenantId};

const T: TenantId = TenantId(1);

fn event(n: usize) -> NewEvent {
    NewEvent {
        tenant: T,
        event_type: Bytes::from_static(b"overlap"),
        source: None,
        occurred_at: None,
        idempotency: None,
        payload: Bytes::from(format!(r#"{{"n":{n}}}"#)),
    }
}

#[test]
fn an_ack_staged_while_the_same_ack_syncs_is_already_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = EmbeddedConfig::new(dir.path());
    // Small segments: the spare preparer's zero-fill is not what this test waits for.
    config.segment_bytes = 64 << 10;
    config.sync_overlap_min_bytes = 0;
    config.sync_interval_min = Duration::ZERO;
    config.batch_bytes_max = 1;
    config.commit_delay = Duration::from_millis(200);
    let store = EmbeddedStore::open(config.clone()).expect("open");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let id = rt.block_on(async {
        let id = match store.append(vec![event(0)]).await.expect("append")[..] {
            [AppendOutcome::Created { id, .. }] => id,
            ref other => panic!("unexpected {other:?}"),
        };
        // Queued in this order within microseconds, each command in a commit of its own:
        // whichever way the writer interleaves them, the second ack is staged while the
        // first one's commit is still syncing (it takes 200 ms).
        let (filler, first, second) = tokio::join!(
            store.append(vec![event(1)]),
            store.settle(T, vec![id], Settle::Ack),
            store.settle(T, vec![id], Settle::Ack),
        );
        assert!(matches!(
            filler.expect("filler")[..],
            [AppendOutcome::Created { .. }]
        ));
        assert_eq!(first.expect("first ack"), [SettleOutcome::Done]);
        assert_eq!(
            second.expect("second ack"),
            [SettleOutcome::AlreadyDone],
            "the second ack must see the first, still syncing, and not ack again"
        );
        id
    });
    // After a restart the ack is still there.
    drop(store);
    let store = EmbeddedStore::open(config).expect("reopen");
    let again = rt.block_on(store.settle(T, vec![id], Settle::Ack));
    assert_eq!(
        again.expect("ack after reopen"),
        [SettleOutcome::AlreadyDone]
    );
}
