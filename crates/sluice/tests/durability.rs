//! Crash, overload, leases and shutdown, against the real binary.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use common::{event, runtime, Http, Server};

#[test]
fn events_acknowledged_before_sigkill_are_all_there_after_restart() {
    let mut s = Server::start(&[]);
    let key = s.key().to_owned();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    runtime().block_on(async {
        let http = Http::h1();
        let mut producers = Vec::new();
        for p in 0..16 {
            let (http, url, key, acked) = (
                http.clone(),
                s.url("/v1/events"),
                key.clone(),
                acked.clone(),
            );
            producers.push(tokio::spawn(async move {
                let auth = format!("Bearer {key}");
                for n in 0.. {
                    let req = http.clone();
                    let body = event("crash.test", p * 1_000_000 + n);
                    // Requests in flight at the kill fail at the connection level; they
                    // were never acknowledged, so they end the producer.
                    let sent = tokio::spawn({
                        let url = url.clone();
                        let auth = auth.clone();
                        async move {
                            req.send(
                                "POST",
                                &url,
                                &[
                                    ("authorization", &auth),
                                    ("content-type", "application/json"),
                                ],
                                body,
                            )
                            .await
                        }
                    })
                    .await;
                    match sent {
                        Ok(r) if r.status == 201 => acked
                            .lock()
                            .expect("acked")
                            .push(r.json()["event_id"].as_str().expect("id").to_owned()),
                        _ => break,
                    }
                }
            }));
        }
        // Kill once the producers have had a few hundred events acknowledged.
        loop {
            if acked.lock().expect("acked").len() >= 300 {
                break;
            }
            tokio::task::yield_now().await;
        }
        s.kill();
        for p in producers {
            let _ = p.await;
        }
    });
    let acked = acked.lock().expect("acked").clone();
    let restarted = Server::start_in(&s.dir.clone(), &[]);
    assert!(
        restarted.key.is_none(),
        "a restart must not create a new default key"
    );
    runtime().block_on(async {
        let http = Http::h1();
        let mut stored = HashSet::new();
        let mut cursor = String::new();
        loop {
            let page = http
                .call(
                    &restarted,
                    &key,
                    "GET",
                    &format!("/v1/inbox?limit=1000&cursor={cursor}"),
                    "",
                )
                .await
                .json();
            for e in page["events"].as_array().expect("events") {
                stored.insert(e["event_id"].as_str().expect("id").to_owned());
            }
            if page["has_more"] != true {
                break;
            }
            cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
        }
        let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged events lost: {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        );
    });
}

#[test]
fn eight_leasing_pollers_never_share_an_event_and_ack_each_once() {
    const EVENTS: usize = 10_000;
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        for chunk in 0..EVENTS / 500 {
            let items: Vec<String> = (0..500).map(|i| event("lease.test", chunk * 500 + i)).collect();
            let r = http.call(&s, &key, "POST", "/v1/events/batch", &format!("[{}]", items.join(","))).await;
            assert_eq!(r.status, 201);
        }
        let handed: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let acked_count: Arc<Mutex<usize>> = Arc::default();
        let mut pollers = Vec::new();
        for poller in 0..8 {
            let (http, url, ack_url, key, handed, acked_count) =
                (http.clone(), s.url("/v1/inbox?limit=50&lease_seconds=300"), s.url("/v1/inbox/ack"), key.clone(), handed.clone(), acked_count.clone());
            pollers.push(tokio::spawn(async move {
                let auth = format!("Bearer {key}");
                loop {
                    let page = http.send("GET", &url, &[("authorization", &auth)], "").await.json();
                    let ids: Vec<String> = page["events"].as_array().expect("events").iter().map(|e| e["event_id"].as_str().expect("id").to_owned()).collect();
                    if ids.is_empty() {
                        break;
                    }
                    {
                        let mut handed = handed.lock().expect("handed");
                        for id in &ids {
                            // The lease (300 s) outlives the test: a second hand-out is a bug.
                            if let Some(other) = handed.insert(id.clone(), poller) {
                                panic!("{id} handed to pollers {other} and {poller} under a live lease");
                            }
                        }
                    }
                    let body = serde_json::json!({ "event_ids": ids }).to_string();
                    let r = http.send("POST", &ack_url, &[("authorization", &auth), ("content-type", "application/json")], body).await.json();
                    for result in r["results"].as_array().expect("results") {
                        assert_eq!(result["status"], "acked", "each event is acked exactly once");
                    }
                    *acked_count.lock().expect("count") += ids.len();
                }
            }));
        }
        for p in pollers {
            p.await.expect("poller");
        }
        assert_eq!(handed.lock().expect("handed").len(), EVENTS);
        assert_eq!(*acked_count.lock().expect("count"), EVENTS);
        let rest = http.call(&s, &key, "GET", "/v1/inbox", "").await.json();
        assert_eq!(rest["events"].as_array().expect("events").len(), 0);
    });
}

#[test]
fn a_full_commit_queue_sheds_load_with_503_and_retry_after() {
    // One queue slot and a slow disk: concurrent producers must overflow the queue.
    let s = Server::start(&["--commit-queue-depth", "1", "--commit-delay", "300ms"]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let calls: Vec<_> = (0..24)
            .map(|i| {
                let (http, url, auth) =
                    (http.clone(), s.url("/v1/events"), format!("Bearer {key}"));
                tokio::spawn(async move {
                    http.send(
                        "POST",
                        &url,
                        &[
                            ("authorization", &auth),
                            ("content-type", "application/json"),
                        ],
                        event("o", i),
                    )
                    .await
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for c in calls {
            let r = c.await.expect("task");
            if r.status == 503 {
                let p = r.problem(503, "overloaded");
                assert!(r.header("retry-after").is_some(), "{p}");
            }
            statuses.push(r.status);
        }
        assert!(
            statuses.contains(&201),
            "some requests must get through: {statuses:?}"
        );
        assert!(
            statuses.contains(&503),
            "a one-slot queue under 24 concurrent requests must overflow: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 503),
            "{statuses:?}"
        );
        let m = http.send("GET", &s.url("/metrics"), &[], "").await;
        assert!(!String::from_utf8_lossy(&m.body).contains("sluice_store_overloaded_total 0"));
    });
}

/// Shutdown tells open connections to close: an idle keep-alive connection and one
/// in the middle of a request do not hold the server for its 30 s grace period (the
/// log would say "grace period over"), and the request in flight is answered.
#[test]
fn sigterm_closes_idle_connections_and_answers_the_one_in_flight() {
    use std::io::{Read, Write};
    let mut s = Server::start(&[]);
    let key = s.key().to_owned();
    let post = |body: &str| {
        format!(
            "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let body = event("idle", 1);
    // Served once, then left open and idle.
    let mut idle = std::net::TcpStream::connect(s.addr).expect("connect");
    idle.write_all(post(&body).as_bytes()).expect("write");
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).expect("answer");
    assert_eq!(&answer, b"HTTP/1.1 201");
    // A request in flight when the signal comes: its head asks for `100 Continue`,
    // which the server sends once its handler has begun reading the body.
    let mut busy = std::net::TcpStream::connect(s.addr).expect("connect");
    let request = post(&body).replacen("host: x\r\n", "host: x\r\nexpect: 100-continue\r\n", 1);
    let (head, tail) = request.split_at(request.find("\r\n\r\n").expect("head") + 4);
    busy.write_all(head.as_bytes()).expect("write");
    let mut continued = Vec::new();
    while !continued.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        busy.read_exact(&mut byte).expect("100 Continue");
        continued.push(byte[0]);
    }
    assert!(continued.starts_with(b"HTTP/1.1 100"), "{continued:?}");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    s.wait_for_log("shutting down", std::time::Duration::from_secs(10));
    busy.write_all(tail.as_bytes())
        .expect("the rest of the body");
    let mut rest = Vec::new();
    let _ = busy.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 201"), "in flight: {text}");
    // The idle connection is closed by the server (the read ends), not left to the
    // grace period; all it held was the rest of its one answer.
    let mut end = Vec::new();
    idle.read_to_end(&mut end).expect("read");
    let end = String::from_utf8_lossy(&end);
    assert!(end.ends_with("\"}") && !end.contains("HTTP/1.1"), "{end}");
    let status = s.child.wait().expect("wait");
    assert!(status.success(), "exit status {status:?}\n{}", s.log_text());
    assert!(
        !s.log_text().contains("grace period over"),
        "{}",
        s.log_text()
    );
}

#[test]
fn sigterm_drains_syncs_and_exits_zero() {
    let mut s = Server::start(&["--durability", "interval", "--fsync-interval", "1h"]);
    let key = s.key().to_owned();
    let id = runtime().block_on(async {
        let http = Http::h1();
        let r = http
            .call(&s, &key, "POST", "/v1/events", &event("term", 1))
            .await;
        r.json()["event_id"].as_str().expect("id").to_owned()
    });
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", s.log_text());
    assert!(s.log_text().contains("shutdown complete"));
    let again = Server::start_in(&s.dir.clone(), &[]);
    runtime().block_on(async {
        let r = Http::h1()
            .call(&again, &key, "GET", &format!("/v1/events/{id}"), "")
            .await;
        assert_eq!(r.status, 200);
    });
}
