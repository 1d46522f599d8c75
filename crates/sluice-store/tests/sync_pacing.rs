//! `sync_interval_min`: under concurrent load, syncs start at least that far apart and
//! the commands that arrive meanwhile share them; a lone client is never held back.
//!
//! The floor is set far above any sync's own duration (40 ms, 1 s), so the bounds below
//! hold on a slow machine as well as a fast one: slowness only means fewer syncs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_store::embedded::{EmbeddedConfig, EmbeddedStore};
use sluice_store::{NewEvent, Store, TenantId};

fn config(dir: &Path, floor: Duration) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::new(dir);
    c.segment_bytes = 1 << 20;
    c.sync_interval_min = floor;
    c
}

fn event(n: usize) -> NewEvent {
    NewEvent {
        tenant: TenantId(1),
        event_type: Bytes::from_static(b"order.created"),
        source: None,
        occurred_at: None,
        idempotency: None,
        payload: Bytes::from(format!(r#"{{"n":{n}}}"#)),
    }
}

#[test]
fn concurrent_appends_share_syncs_that_start_a_floor_apart() {
    const FLOOR: Duration = Duration::from_millis(40);
    const CLIENTS: usize = 16;
    const ROUNDS: usize = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(config(dir.path(), FLOOR)).expect("open"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    rt.block_on(async {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let store = store.clone();
                tokio::spawn(async move {
                    for r in 0..ROUNDS {
                        store
                            .append(vec![event(c * ROUNDS + r)])
                            .await
                            .expect("append");
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.expect("client");
        }
    });
    let elapsed = started.elapsed();
    let stats = rt.block_on(store.stats());
    assert_eq!(stats.events_appended, (CLIENTS * ROUNDS) as u64);
    // Each sync after a group commit of two or more commands starts a floor after the
    // one before it. A sync after a lone command is not paced; allow a few of those
    // (the first commits, before the clients pile up).
    let paced_most = (elapsed.as_secs_f64() / FLOOR.as_secs_f64()).floor() as u64 + 1;
    assert!(
        stats.commits <= paced_most + 3,
        "{} syncs in {elapsed:?}: more than one per {FLOOR:?}",
        stats.commits
    );
    assert!(
        stats.commits < (CLIENTS * ROUNDS) as u64 / 4,
        "{} syncs for {} appends: the waits did not batch",
        stats.commits,
        CLIENTS * ROUNDS
    );
}

#[test]
fn a_lone_client_is_not_held_back_by_the_floor() {
    // Waiting could batch nothing: the client's next append only comes after this one
    // is answered. Five appends under a 1 s floor would take 4 s if it applied.
    const FLOOR: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(config(dir.path(), FLOOR)).expect("open");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    rt.block_on(async {
        for n in 0..5 {
            store.append(vec![event(n)]).await.expect("append");
        }
    });
    let elapsed = started.elapsed();
    assert_eq!(
        rt.block_on(store.stats()).commits,
        5,
        "one sync per sequential append"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "five sequential appends took {elapsed:?}: the floor held a lone client back"
    );
}

/// `interval` durability's promise: a power loss loses at most one interval. So the
/// timed sync must also happen while commands keep arriving, not only once the commit
/// queue goes idle (which a steady producer never lets happen).
#[test]
fn interval_mode_syncs_on_time_under_a_steady_stream() {
    const EVERY: Duration = Duration::from_millis(20);
    const RUN: Duration = Duration::from_millis(600);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), Duration::from_millis(1));
    c.durability = sluice_store::embedded::Durability::Interval(EVERY);
    let store = EmbeddedStore::open(c).expect("open");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let before = rt.block_on(store.stats()).commits;
    let started = Instant::now();
    let mut appended = 0;
    rt.block_on(async {
        // One producer, back to back: the next command is queued microseconds after the
        // last answer, well inside the writer's 1 ms idle wait.
        while started.elapsed() < RUN {
            store.append(vec![event(appended)]).await.expect("append");
            appended += 1;
        }
    });
    let syncs = rt.block_on(store.stats()).commits - before;
    let elapsed = started.elapsed();
    // One sync per interval is due; allow for a slow machine, but not for none.
    let due = (elapsed.as_millis() / EVERY.as_millis()) as u64;
    assert!(
        syncs >= due / 4,
        "{syncs} syncs in {elapsed:?} of steady appends ({appended} of them), {due} were due"
    );
}
