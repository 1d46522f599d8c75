//! Named consumers against the real binary: independent inboxes over one log, created
//! and deleted over the API, each with its own leases, acks and dead letters, across a
//! kill -9.

mod common;

use common::{event, runtime, Http, Server};
use serde_json::Value;

/// Ingests one event and answers its id.
async fn ingest(http: &Http, s: &Server, key: &str, body: &str) -> String {
    let r = http.call(s, key, "POST", "/v1/events", body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["event_id"].as_str().expect("id").to_owned()
}

/// The ids a listing answers, in order.
async fn ids(http: &Http, s: &Server, key: &str, path: &str) -> Vec<String> {
    let r = http.call(s, key, "GET", path, "").await;
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id").to_owned())
        .collect()
}

/// One consumer from `GET /v1/consumers/{name}`.
async fn consumer(http: &Http, s: &Server, key: &str, name: &str) -> Value {
    let r = http
        .call(s, key, "GET", &format!("/v1/consumers/{name}"), "")
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[test]
fn named_consumers_are_independent_and_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Server::start_in(dir.path(), &[]);
    let key = s.key().to_owned();
    let rt = runtime();
    let (old, orders_new, other) = rt.block_on(async {
        let http = Http::h1();
        let old = ingest(&http, &s, &key, &event("order.created", 1)).await;
        let r = http
            .call(
                &s,
                &key,
                "POST",
                "/v1/consumers",
                r#"{"name":"billing","event_types":["order.*"],"start":"all","max_deliveries":1}"#,
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let created = r.json();
        assert_eq!(created["name"], "billing");
        assert_eq!(created["event_types"][0], "order.*");
        assert_eq!(created["pending"], 1, "start all takes the retained event");
        let r = http
            .call(&s, &key, "POST", "/v1/consumers", r#"{"name":"audit"}"#)
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["pending"], 0, "start new: nothing before it");

        let orders_new = ingest(&http, &s, &key, &event("order.paid", 2)).await;
        let other = ingest(&http, &s, &key, &event("user.joined", 3)).await;
        assert_eq!(
            ids(&http, &s, &key, "/v1/inbox?consumer=billing").await,
            [old.clone(), orders_new.clone()]
        );
        assert_eq!(
            ids(&http, &s, &key, "/v1/inbox?consumer=audit").await,
            [orders_new.clone(), other.clone()]
        );
        assert_eq!(ids(&http, &s, &key, "/v1/inbox").await.len(), 3);

        // An ack through one consumer leaves the others as they were.
        let r = http
            .call(
                &s,
                &key,
                "POST",
                &format!("/v1/events/{old}/ack?consumer=billing"),
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let state = |c: &str| format!("/v1/events/{old}?consumer={c}");
        let r = http
            .call(&s, &key, "GET", &state("billing"), "")
            .await
            .json();
        assert_eq!(r["state"], "acked");
        let r = http
            .call(&s, &key, "GET", &state("default"), "")
            .await
            .json();
        assert_eq!(r["state"], "pending");
        // An event a consumer does not take, and a consumer the tenant lacks: 404.
        http.call(
            &s,
            &key,
            "GET",
            &format!("/v1/events/{other}?consumer=billing"),
            "",
        )
        .await
        .problem(404, "not_found");
        http.call(&s, &key, "GET", "/v1/inbox?consumer=nobody", "")
            .await
            .problem(404, "not_found");

        // A lease in one consumer is refused by another.
        let r = http
            .call(
                &s,
                &key,
                "GET",
                "/v1/inbox?consumer=audit&lease_seconds=1",
                "",
            )
            .await
            .json();
        let leased = r["events"].as_array().expect("events").clone();
        assert_eq!(leased.len(), 2);
        let lease = leased[0]["lease_id"].as_str().expect("lease id").to_owned();
        let body = format!(r#"{{"lease_id":"{lease}"}}"#);
        http.call(
            &s,
            &key,
            "POST",
            &format!("/v1/events/{orders_new}/ack"),
            &body,
        )
        .await
        .problem(400, "invalid_lease");
        let r = http
            .call(
                &s,
                &key,
                "POST",
                &format!("/v1/events/{orders_new}/ack?consumer=audit"),
                &body,
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        // A cursor of one consumer's inbox does not page another's.
        let r = http
            .call(&s, &key, "GET", "/v1/inbox?consumer=audit&limit=1", "")
            .await
            .json();
        let cursor = r["next_cursor"].as_str().expect("cursor").to_owned();
        http.call(
            &s,
            &key,
            "GET",
            &format!("/v1/inbox?consumer=billing&cursor={cursor}"),
            "",
        )
        .await
        .problem(400, "invalid_cursor");

        // billing's max_deliveries is 1: its second lease of order.paid dead-letters it.
        let r = http
            .call(
                &s,
                &key,
                "GET",
                "/v1/inbox?consumer=billing&lease_seconds=1",
                "",
            )
            .await
            .json();
        assert_eq!(r["events"].as_array().expect("events").len(), 1);
        let r = http
            .call(
                &s,
                &key,
                "GET",
                "/v1/inbox?consumer=billing&lease_seconds=1&wait_seconds=3",
                "",
            )
            .await
            .json();
        assert!(r["events"].as_array().expect("events").is_empty(), "{r}");
        assert_eq!(
            ids(&http, &s, &key, "/v1/inbox/dead-letters?consumer=billing").await,
            [orders_new.as_str()]
        );
        assert!(ids(&http, &s, &key, "/v1/inbox/dead-letters")
            .await
            .is_empty());

        // The list shows every consumer with its own pending count; metrics label them.
        let list = http.call(&s, &key, "GET", "/v1/consumers", "").await.json();
        let names: Vec<&str> = list["consumers"]
            .as_array()
            .expect("consumers")
            .iter()
            .map(|c| c["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["default", "billing", "audit"]);
        let text = http.send("GET", &s.url("/metrics"), &[], "").await;
        let text = String::from_utf8_lossy(&text.body).into_owned();
        assert!(
            text.contains(
                r#"sluice_consumer_pending_events{tenant="default",consumer="billing"} 1"#
            ),
            "{text}"
        );
        (old, orders_new, other)
    });

    // kill -9: every consumer's acks, dead letters and definition were durable.
    s.kill();
    let s = Server::start_in(dir.path(), &[]);
    rt.block_on(async {
        let http = Http::h1();
        assert_eq!(consumer(&http, &s, &key, "billing").await["pending"], 1);
        assert_eq!(
            ids(&http, &s, &key, "/v1/inbox/dead-letters?consumer=billing").await,
            [orders_new.as_str()]
        );
        let r = http
            .call(
                &s,
                &key,
                "GET",
                &format!("/v1/events/{old}?consumer=billing"),
                "",
            )
            .await
            .json();
        assert_eq!(r["state"], "acked");
        assert_eq!(
            ids(&http, &s, &key, "/v1/inbox?consumer=audit").await,
            [other.as_str()]
        );
        assert_eq!(ids(&http, &s, &key, "/v1/inbox").await.len(), 3);

        // Requeue in billing; then delete it: it goes, the log and the others stay.
        let body = format!(r#"{{"event_ids":["{orders_new}"]}}"#);
        let r = http
            .call(
                &s,
                &key,
                "POST",
                "/v1/inbox/dead-letters/requeue?consumer=billing",
                &body,
            )
            .await
            .json();
        assert_eq!(r["requeued"], 1);
        let r = http
            .call(&s, &key, "DELETE", "/v1/consumers/billing", "")
            .await;
        assert_eq!(r.status, 204);
        http.call(&s, &key, "GET", "/v1/consumers/billing", "")
            .await
            .problem(404, "not_found");
        http.call(&s, &key, "DELETE", "/v1/consumers/default", "")
            .await
            .problem(409, "conflict");
        assert_eq!(ids(&http, &s, &key, "/v1/inbox").await.len(), 3);
        // A new consumer of the same name starts clean.
        let r = http
            .call(
                &s,
                &key,
                "POST",
                "/v1/consumers",
                r#"{"name":"billing","start":"all"}"#,
            )
            .await;
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["pending"], 3);
    });
}

#[test]
fn bad_consumer_requests_are_refused_clearly() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        for (body, field) in [
            (r#"{"name":"Billing"}"#, "name"),
            (r#"{"name":"default"}"#, "name"),
            (r#"{"name":""}"#, "name"),
            (r#"{"name":"x","start":"oldest"}"#, "start"),
            (r#"{"name":"x","max_deliveries":0}"#, "max_deliveries"),
            (r#"{"name":"x","event_types":["a..b*"]}"#, "event_types[0]"),
        ] {
            let p = http
                .call(&s, &key, "POST", "/v1/consumers", body)
                .await
                .problem(422, "validation_failed");
            assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
        }
        http.call(
            &s,
            &key,
            "POST",
            "/v1/consumers",
            r#"{"name":"x","extra":1}"#,
        )
        .await
        .problem(422, "validation_failed");
        let r = http
            .call(&s, &key, "POST", "/v1/consumers", r#"{"name":"x"}"#)
            .await;
        assert_eq!(r.status, 201);
        http.call(&s, &key, "POST", "/v1/consumers", r#"{"name":"x"}"#)
            .await
            .problem(409, "conflict");
        http.call(&s, &key, "DELETE", "/v1/consumers/nobody", "")
            .await
            .problem(404, "not_found");
    });
}
