//! Push delivery survives kill -9: after each restart, every event that got a 2xx
//! reaches the receiver at least once, none is missing, and what is sent twice stays
//! within the deliveries that were in flight at the kill.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{runtime, Http, Server};
use serde_json::json;

const ROUNDS: usize = 3;
const EVENTS_PER_ROUND: usize = 150;
const MAX_IN_FLIGHT: usize = 16;

#[test]
fn kill_9_during_delivery_loses_nothing() {
    let tempdir = tempfile::tempdir().expect("tempdir");
    let dir = tempdir.path().join("data");
    let flags = [
        "--allow-private-targets",
        "--webhook-retry-schedule",
        "100ms",
        "--webhook-timeout",
        "2s",
    ];
    let mut s = Server::start_in(&dir, &flags);
    let key = s.key().to_owned();
    let http = Http::h1();
    let rt = runtime();
    let rx = rt.block_on(Receiver::start());
    // Slow enough that deliveries are in flight when the kill comes.
    rx.answer(|_| Answer {
        status: 200,
        retry_after: None,
        delay: Duration::from_millis(40),
    });
    rt.block_on(async {
        let r = http
            .call(
                &s,
                &key,
                "POST",
                "/v1/subscriptions",
                &json!({"target_url": rx.url("/hook"), "ordering": "none", "max_in_flight": MAX_IN_FLIGHT})
                    .to_string(),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    });
    let mut acknowledged = Vec::new();
    for round in 0..ROUNDS {
        rt.block_on(async {
            for i in 0..EVENTS_PER_ROUND {
                let r = http
                    .call(&s, &key, "POST", "/v1/events", &common::event("t", i))
                    .await;
                assert_eq!(r.status, 201);
                acknowledged.push(r.json()["event_id"].as_str().expect("id").to_owned());
            }
            // Kill while deliveries of this round are still going out.
            let half = acknowledged.len() - EVENTS_PER_ROUND / 2;
            rx.wait_for(half, Duration::from_secs(30)).await;
        });
        s.kill();
        s = Server::start_in(&dir, &flags);
        eprintln!(
            "round {round}: killed and restarted after {} deliveries",
            rx.received().len()
        );
    }
    let got = rt.block_on(rx.wait_until(
        Duration::from_secs(60),
        "every acknowledged event",
        |r| {
            let seen: std::collections::HashSet<&str> = r.iter().map(|x| x.event_id()).collect();
            acknowledged.iter().all(|id| seen.contains(id.as_str()))
        },
    ));
    let mut times: HashMap<&str, usize> = HashMap::new();
    for r in &got {
        *times.entry(r.event_id()).or_default() += 1;
    }
    let twice = times.values().filter(|&&n| n > 1).count();
    // Each kill can catch at most max_in_flight deliveries between their send and
    // their durable settle (plus the settle batch being written): that many repeats.
    assert!(
        twice <= ROUNDS * MAX_IN_FLIGHT * 2,
        "{twice} events were delivered more than once"
    );
    assert!(
        times.keys().all(|id| acknowledged.iter().any(|a| a == id)),
        "an unknown event was delivered"
    );
    eprintln!(
        "{} acknowledged events all delivered across {ROUNDS} kills; {twice} delivered twice",
        acknowledged.len()
    );
    drop(s);
}
