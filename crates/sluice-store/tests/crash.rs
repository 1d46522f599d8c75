//! Kill -9 under load: no acknowledged event may be lost, no idempotency key may map to
//! two events, and the log must verify.
//!
//! The test binary re-runs itself as the child (`crash_child`, ignored in normal runs).
//! The child appends from many concurrent tasks and prints a line for every completion
//! it observes; the parent SIGKILLs it at a random moment and then checks every printed
//! completion against the reopened store. Rounds accumulate in one directory, so later
//! rounds also recover from earlier kills.
//!
//! `SLUICE_CRASH_ROUNDS` sets the number of rounds (default 12; the full run uses 50).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use sluice_store::embedded::{verify::verify_dir, EmbeddedConfig, EmbeddedStore};
use sluice_store::{AppendOutcome, EventId, IdempotencyKey, InboxQuery, NewEvent, Store, TenantId};

const TENANT: TenantId = TenantId(1);
const TASKS: usize = 16;
const KEYS: u64 = 40;

fn config(dir: &std::path::Path) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::new(dir);
    // Small segments so that kills also land during segment roll-over.
    c.segment_bytes = 256 << 10;
    // Every commit through the overlapped sync, the newer path (the default syncs small
    // commits on the writer; the server's kill test covers that one).
    c.sync_overlap_min_bytes = 0;
    c
}

fn plain_payload(round: u64, task: usize, n: u64) -> Vec<u8> {
    format!(
        r#"{{"round":{round},"task":{task},"n":{n},"pad":"{}"}}"#,
        "x".repeat(200)
    )
    .into_bytes()
}

fn keyed_payload(key: u64) -> Vec<u8> {
    format!(r#"{{"key":"k{key}"}}"#).into_bytes()
}

#[test]
#[ignore = "child process of crash_test_kill_9_loses_nothing"]
fn crash_child() {
    let dir = std::env::var("SLUICE_CRASH_DIR").expect("run by the crash test");
    let round: u64 = std::env::var("SLUICE_CRASH_ROUND")
        .expect("round")
        .parse()
        .expect("round");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store = Arc::new(EmbeddedStore::open(config(dir.as_ref())).expect("child open"));
        let out = Arc::new(Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let store = store.clone();
            let out = out.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(round * 1000 + task as u64);
                for n in 0.. {
                    let keyed = rng.gen_bool(0.2);
                    let key = rng.gen_range(0..KEYS);
                    let event = NewEvent {
                        tenant: TENANT,
                        event_type: Bytes::from_static(b"crash.test"),
                        source: None,
                        occurred_at: None,
                        idempotency: keyed.then(|| IdempotencyKey {
                            key: Bytes::from(format!("k{key}")),
                            fingerprint: [key as u8; 16],
                        }),
                        payload: Bytes::from(if keyed {
                            keyed_payload(key)
                        } else {
                            plain_payload(round, task, n)
                        }),
                    };
                    // A batch of one or several, so kills land inside multi-event commits.
                    let copies = if !keyed && n % 5 == 0 { 3 } else { 1 };
                    let events: Vec<NewEvent> = (0..copies).map(|_| event.clone()).collect();
                    let outcomes = store.append(events).await.expect("append");
                    let mut line = String::new();
                    for o in outcomes {
                        match o {
                            AppendOutcome::Created { id, .. } if keyed => {
                                line += &format!("key {id} {key}\n")
                            }
                            AppendOutcome::Replayed { id, .. } => {
                                line += &format!("key {id} {key}\n")
                            }
                            AppendOutcome::Created { id, .. } => {
                                line += &format!("ok {id} {round} {task} {n}\n")
                            }
                            AppendOutcome::KeyReused { .. } => panic!("fingerprints are per key"),
                        }
                    }
                    let mut out = out.lock().expect("stdout");
                    out.write_all(line.as_bytes()).expect("stdout");
                    out.flush().expect("stdout");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    });
}

#[test]
fn crash_test_kill_9_loses_nothing() {
    let rounds: u64 = std::env::var("SLUICE_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test: {rounds} rounds, seed {seed} (SLUICE_CRASH_SEED to repeat)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut acked: Vec<(EventId, Vec<u8>)> = Vec::new();
    let mut key_ids: HashMap<u64, EventId> = HashMap::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SLUICE_CRASH_DIR", dir.path())
            .env("SLUICE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            // Only newline-terminated lines were fully observed; a line cut by the kill
            // could parse as a different event, so it is dropped.
            let mut lines = Vec::new();
            let mut reader = BufReader::new(stdout);
            loop {
                let mut buf = Vec::new();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if buf.last() != Some(&b'\n') => break,
                    Ok(_) => {}
                }
                buf.pop();
                // libtest prints its own banner first; progress means a completion.
                if buf.starts_with(b"ok ") || buf.starts_with(b"key ") {
                    let _ = first_tx.send(());
                }
                lines.push(String::from_utf8(buf).expect("utf-8 line"));
            }
            lines
        });
        // Wait until the child is committing, then let it run a random while.
        first_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child made no progress");
        std::thread::sleep(Duration::from_millis(rng.gen_range(1..300)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let lines = reader.join().expect("reader");

        let before = acked.len();
        for line in &lines {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["ok", id, r, t, n] => {
                    let id = EventId::parse(id).expect("id");
                    let payload = plain_payload(
                        r.parse().expect("r"),
                        t.parse().expect("t"),
                        n.parse().expect("n"),
                    );
                    acked.push((id, payload));
                }
                ["key", id, k] => {
                    let id = EventId::parse(id).expect("id");
                    let k: u64 = k.parse().expect("key");
                    let prior = *key_ids.entry(k).or_insert(id);
                    assert_eq!(
                        prior, id,
                        "round {round}: key k{k} answered with two event ids"
                    );
                    acked.push((id, keyed_payload(k)));
                }
                // A line cut by the kill was never fully observed.
                _ => {}
            }
        }
        assert!(
            acked.len() > before,
            "round {round}: no completion observed before the kill"
        );

        let report = verify_dir(dir.path()).expect("verify");
        assert!(
            !report.is_corrupt(),
            "round {round}: log corrupt after kill: {report:?}"
        );
        let store = EmbeddedStore::open(config(dir.path())).expect("reopen after kill");
        rt.block_on(async {
            for (id, payload) in &acked {
                let got = store.get(TENANT, *id).await.expect("get");
                let got =
                    got.unwrap_or_else(|| panic!("round {round}: acknowledged {id} is missing"));
                assert_eq!(
                    got.payload,
                    &payload[..],
                    "round {round}: {id} payload differs"
                );
            }
            // Every keyed event in the log is the one its key maps to: never two.
            let mut per_key: HashMap<Vec<u8>, EventId> = HashMap::new();
            let mut q = InboxQuery {
                tenant: TENANT,
                consumer: sluice_store::ConsumerId::DEFAULT,
                limit: 1000,
                after: None,
                event_type: None,
                lease_ms: None,
                max_deliveries: None,
            };
            loop {
                let page = store.list(q.clone()).await.expect("list");
                for e in &page.events {
                    if e.payload.starts_with(b"{\"key\"") {
                        if let Some(other) = per_key.insert(e.payload.to_vec(), e.id) {
                            panic!("round {round}: two events {other} and {} for one key", e.id);
                        }
                    }
                }
                if !page.has_more {
                    break;
                }
                q.after = page.next_cursor;
            }
        });
        store.close();
    }
    eprintln!(
        "crash test: {} acknowledged events all present after {rounds} kills",
        acked.len()
    );
}
