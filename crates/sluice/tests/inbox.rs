//! The pull contract against the real binary: lease ids, nack, extension, counts kept
//! after an ack, long polling and the history listing.

mod common;

use std::time::{Duration, Instant};

use common::{event, runtime, tenant_key, Http, Server};
use serde_json::Value;

/// Ingests one event and answers its id.
async fn ingest(http: &Http, s: &Server, key: &str, body: &str) -> String {
    let r = http.call(s, key, "POST", "/v1/events", body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["event_id"].as_str().expect("id").to_owned()
}

/// One leasing poll; answers its items.
async fn lease(http: &Http, s: &Server, key: &str, query: &str) -> Vec<Value> {
    let r = http
        .call(s, key, "GET", &format!("/v1/inbox?{query}"), "")
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["events"].as_array().expect("events").clone()
}

#[test]
fn a_stale_lease_is_409_and_changes_nothing() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let id = ingest(&http, &s, &key, &event("job.run", 1)).await;
        let first = lease(&http, &s, &key, "lease_seconds=1").await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["delivery_count"], 1);
        let old = first[0]["lease_id"]
            .as_str()
            .expect("a leased item has a lease_id")
            .to_owned();
        assert!(old.starts_with("lse_"), "{old}");
        // A plain listing shows no lease ids: only the poll that took the lease has it.
        let plain = http.call(&s, &key, "GET", "/v1/inbox", "").await.json();
        assert!(plain["events"][0]["lease_id"].is_null());

        // The lease runs out; a long poll takes the event again the moment it does.
        let second = lease(&http, &s, &key, "lease_seconds=30&wait_seconds=10").await;
        assert_eq!(second.len(), 1, "the long poll waits out the first lease");
        assert_eq!(second[0]["event_id"], id.as_str());
        assert_eq!(second[0]["delivery_count"], 2);
        let current = second[0]["lease_id"].as_str().expect("lease id").to_owned();
        assert_ne!(current, old);

        // The first consumer's ack, nack and extension are refused and change nothing.
        let body = format!(r#"{{"lease_id":"{old}"}}"#);
        for (path, body) in [
            (format!("/v1/events/{id}/ack"), body.clone()),
            (format!("/v1/events/{id}/nack"), body.clone()),
            (
                format!("/v1/events/{id}/lease"),
                format!(r#"{{"lease_id":"{old}","lease_seconds":60}}"#),
            ),
        ] {
            let p = http
                .call(&s, &key, "POST", &path, &body)
                .await
                .problem(409, "lease_expired");
            assert!(
                p["detail"]
                    .as_str()
                    .expect("detail")
                    .contains("leased again"),
                "{p}"
            );
        }
        let got = http
            .call(&s, &key, "GET", &format!("/v1/events/{id}"), "")
            .await
            .json();
        assert_eq!(got["state"], "leased");
        assert_eq!(got["delivery_count"], 2);

        // An altered lease id, or one sent with another event, is not a lease at all.
        let mut altered = current.clone().into_bytes();
        let at = altered.len() - 3;
        altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        let other = ingest(&http, &s, &key, &event("job.other", 2)).await;
        for (target, lease_id) in [
            (&id, altered.as_str()),
            (&other, current.as_str()),
            (&id, "lse_x"),
        ] {
            http.call(
                &s,
                &key,
                "POST",
                &format!("/v1/events/{target}/ack"),
                &format!(r#"{{"lease_id":"{lease_id}"}}"#),
            )
            .await
            .problem(400, "invalid_lease");
        }

        // The current lease extends, nacks, and, leased again, acks; the count stays.
        let r = http
            .call(
                &s,
                &key,
                "POST",
                &format!("/v1/events/{id}/lease"),
                &format!(r#"{{"lease_id":"{current}","lease_seconds":60}}"#),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["state"], "leased");
        assert!(r.json()["lease_expires_at"].as_str().is_some());
        let r = http
            .call(
                &s,
                &key,
                "POST",
                &format!("/v1/events/{id}/nack"),
                &format!(r#"{{"lease_id":"{current}"}}"#),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["state"], "pending");
        let third = lease(&http, &s, &key, "lease_seconds=30&event_type=job.run").await;
        assert_eq!(third[0]["delivery_count"], 3);
        let last = third[0]["lease_id"].as_str().expect("lease id").to_owned();
        let r = http
            .call(
                &s,
                &key,
                "POST",
                &format!("/v1/events/{id}/ack"),
                &format!(r#"{{"lease_id":"{last}"}}"#),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let acked = http
            .call(&s, &key, "GET", &format!("/v1/events/{id}"), "")
            .await
            .json();
        assert_eq!(
            (acked["state"].as_str(), acked["delivery_count"].as_u64()),
            (Some("acked"), Some(3))
        );
        // Nothing to give back once acked; repeating the ack is still harmless.
        http.call(&s, &key, "POST", &format!("/v1/events/{id}/nack"), "")
            .await
            .problem(404, "not_found");
        assert_eq!(
            http.call(
                &s,
                &key,
                "POST",
                &format!("/v1/events/{id}/ack"),
                &format!(r#"{{"lease_id":"{last}"}}"#)
            )
            .await
            .status,
            200
        );

        // Refusals of the bodies and parameters.
        for (path, body) in [
            (
                format!("/v1/events/{other}/nack"),
                r#"{"delay_seconds":43201}"#.to_owned(),
            ),
            (
                format!("/v1/events/{other}/nack"),
                r#"{"delay":1}"#.to_owned(),
            ),
            (
                format!("/v1/events/{other}/lease"),
                format!(r#"{{"lease_id":"{current}"}}"#),
            ),
            (
                format!("/v1/events/{other}/lease"),
                format!(r#"{{"lease_id":"{current}","lease_seconds":0}}"#),
            ),
        ] {
            http.call(&s, &key, "POST", &path, &body)
                .await
                .problem(422, "validation_failed");
        }
        http.call(&s, &key, "GET", "/v1/inbox?wait_seconds=21", "")
            .await
            .problem(422, "validation_failed");
        http.call(
            &s,
            &key,
            "POST",
            "/v1/events/evt_01AAAAAAAAAAAAAAAAAAAAAAAA/nack",
            "",
        )
        .await
        .problem(404, "not_found");

        assert!(common::metric(&http, &s, "sluice_inbox_lease_expired_total").await >= 3);
        assert!(common::metric(&http, &s, "sluice_inbox_redelivered_total").await >= 2);
        assert!(common::metric(&http, &s, "sluice_inbox_nacked_total").await >= 1);
        assert!(common::metric(&http, &s, "sluice_inbox_acked_total").await >= 1);
    });
}

#[test]
fn a_nack_with_a_delay_hides_the_event_until_then() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let id = ingest(&http, &s, &key, &event("job.retry", 1)).await;
        let leased = lease(&http, &s, &key, "lease_seconds=30").await;
        let lease_id = leased[0]["lease_id"].as_str().expect("lease id").to_owned();
        let r = http
            .call(
                &s,
                &key,
                "POST",
                &format!("/v1/events/{id}/nack"),
                &format!(r#"{{"lease_id":"{lease_id}","delay_seconds":1}}"#),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let nacked = Instant::now();
        assert!(r.json()["visible_at"].as_str().is_some());
        assert!(
            lease(&http, &s, &key, "lease_seconds=30").await.is_empty(),
            "hidden during its delay"
        );
        // A plain listing still shows it.
        assert_eq!(
            http.call(&s, &key, "GET", "/v1/inbox", "").await.json()["events"]
                .as_array()
                .expect("events")
                .len(),
            1
        );
        let back = lease(&http, &s, &key, "lease_seconds=30&wait_seconds=10").await;
        assert_eq!(back[0]["event_id"], id.as_str());
        assert_eq!(back[0]["delivery_count"], 2);
        assert!(
            nacked.elapsed() >= Duration::from_millis(900),
            "back after {:?}",
            nacked.elapsed()
        );
    });
}

#[test]
fn a_long_poll_answers_within_50_ms_of_a_commit() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        // An idle long poll ends empty when its wait does.
        let started = Instant::now();
        assert!(lease(&http, &s, &key, "lease_seconds=30&wait_seconds=1")
            .await
            .is_empty());
        assert!(started.elapsed() >= Duration::from_millis(900));

        let other = tenant_key(&http, &s, "other", &["ingest", "consume"], None).await;
        for round in 0..5 {
            let poller = {
                let (http, url, key) = (
                    http.clone(),
                    s.url("/v1/inbox?lease_seconds=30&wait_seconds=20"),
                    key.clone(),
                );
                tokio::spawn(async move {
                    let r = http
                        .send(
                            "GET",
                            &url,
                            &[("authorization", &format!("Bearer {key}"))],
                            "",
                        )
                        .await;
                    (Instant::now(), r)
                })
            };
            // Parked: the server's own gauge says so (a condition, not a guess of time).
            let deadline = Instant::now() + Duration::from_secs(10);
            while common::metric(&http, &s, "sluice_inbox_long_polls_waiting").await < 1 {
                assert!(Instant::now() < deadline, "the long poll never parked");
                tokio::task::yield_now().await;
            }
            // Another tenant's commit does not answer it.
            ingest(&http, &s, &other, &event("noise", round)).await;
            let id = ingest(&http, &s, &key, &event("wake.up", round)).await;
            let committed = Instant::now();
            let (answered, r) = poller.await.expect("poller");
            assert_eq!(r.status, 200);
            let events = r.json()["events"].as_array().expect("events").clone();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0]["event_id"], id.as_str());
            let late = answered.saturating_duration_since(committed);
            assert!(
                late < Duration::from_millis(50),
                "round {round}: answered {late:?} after the commit"
            );
        }
        assert_eq!(
            common::metric(&http, &s, "sluice_inbox_long_polls_waiting").await,
            0
        );
    });
}

#[test]
fn the_history_lists_every_state_with_every_filter() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let mut ids = Vec::new();
        for (i, ty) in ["order.a", "order.a", "order.b", "order.a", "order.b"]
            .iter()
            .enumerate()
        {
            ids.push(ingest(&http, &s, &key, &event(ty, i)).await);
        }
        // ids[0] leased, ids[1] acked, ids[2] deleted; the rest pending.
        let leased = lease(&http, &s, &key, "lease_seconds=60&limit=1").await;
        assert_eq!(leased[0]["event_id"], ids[0].as_str());
        assert_eq!(
            http.call(&s, &key, "POST", &format!("/v1/events/{}/ack", ids[1]), "")
                .await
                .status,
            200
        );
        assert_eq!(
            http.call(&s, &key, "DELETE", &format!("/v1/events/{}", ids[2]), "")
                .await
                .status,
            204
        );

        let list = |q: &'static str| {
            let (http, s, key) = (&http, &s, &key);
            async move {
                let r = http
                    .call(s, key, "GET", &format!("/v1/events?{q}"), "")
                    .await;
                assert_eq!(r.status, 200, "{q}: {}", String::from_utf8_lossy(&r.body));
                r.json()
            }
        };
        let ids_of = |v: &Value| -> Vec<String> {
            v["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["event_id"].as_str().expect("id").to_owned())
                .collect()
        };
        let all = list("").await;
        assert_eq!(
            ids_of(&all),
            vec![
                ids[0].clone(),
                ids[1].clone(),
                ids[3].clone(),
                ids[4].clone()
            ]
        );
        let states: Vec<&str> = all["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["state"].as_str().expect("state"))
            .collect();
        assert_eq!(states, ["leased", "acked", "pending", "pending"]);
        assert_eq!(
            ids_of(&list("event_type=order.a").await),
            vec![ids[0].clone(), ids[1].clone(), ids[3].clone()]
        );
        assert_eq!(ids_of(&list("state=acked").await), vec![ids[1].clone()]);
        assert_eq!(ids_of(&list("state=leased").await), vec![ids[0].clone()]);
        assert_eq!(
            ids_of(&list("state=pending&event_type=order.b").await),
            vec![ids[4].clone()]
        );

        // Time bounds, against the receive times the listing itself reports.
        let times: Vec<String> = all["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["received_at"].as_str().expect("t").to_owned())
            .collect();
        let since = &times[2];
        let r = http
            .call(&s, &key, "GET", &format!("/v1/events?since={since}"), "")
            .await
            .json();
        let expected: Vec<String> = ids_of(&all)
            .into_iter()
            .zip(&times)
            .filter(|(_, t)| t.as_str() >= since.as_str())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ids_of(&r), expected);
        let until = &times[1];
        let r = http
            .call(&s, &key, "GET", &format!("/v1/events?until={until}"), "")
            .await
            .json();
        let expected: Vec<String> = ids_of(&all)
            .into_iter()
            .zip(&times)
            .filter(|(_, t)| t.as_str() <= until.as_str())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ids_of(&r), expected);

        // Pages: two, then the rest, by cursor.
        let first = list("limit=2").await;
        assert_eq!(ids_of(&first), ids_of(&all)[..2]);
        assert_eq!(first["has_more"], true);
        let cursor = first["next_cursor"].as_str().expect("cursor").to_owned();
        let rest = http
            .call(
                &s,
                &key,
                "GET",
                &format!("/v1/events?limit=10&cursor={cursor}"),
                "",
            )
            .await
            .json();
        assert_eq!(ids_of(&rest), ids_of(&all)[2..]);

        // Refusals: an altered cursor, an inbox cursor, bad filters; another tenant sees nothing.
        let mut altered = cursor.clone().into_bytes();
        altered[6] = if altered[6] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("ascii");
        http.call(&s, &key, "GET", &format!("/v1/events?cursor={altered}"), "")
            .await
            .problem(400, "invalid_cursor");
        let inbox_cursor = http
            .call(&s, &key, "GET", "/v1/inbox?limit=1", "")
            .await
            .json()["next_cursor"]
            .as_str()
            .expect("cursor")
            .to_owned();
        http.call(
            &s,
            &key,
            "GET",
            &format!("/v1/events?cursor={inbox_cursor}"),
            "",
        )
        .await
        .problem(400, "invalid_cursor");
        for q in ["state=gone", "since=yesterday", "limit=0", "sort=desc"] {
            http.call(&s, &key, "GET", &format!("/v1/events?{q}"), "")
                .await
                .problem(422, "validation_failed");
        }
        let other = tenant_key(&http, &s, "other", &["consume"], None).await;
        let r = http.call(&s, &other, "GET", "/v1/events", "").await;
        assert_eq!(r.json()["events"].as_array().expect("events").len(), 0);
    });
}

#[test]
fn max_deliveries_dead_letters_survive_kill_9_and_requeue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Server::start_in(dir.path(), &[]);
    let key = s.key().to_owned();
    let rt = runtime();
    let (poison, good) = rt.block_on(async {
        let http = Http::h1();
        // The consumer: the tenant's inbox, `default`, unlimited until set.
        let r = http.call(&s, &key, "GET", "/v1/consumers", "").await.json();
        assert_eq!(r["consumers"][0]["name"], "default");
        assert!(r["consumers"][0]["max_deliveries"].is_null());
        let r = http
            .call(
                &s,
                &key,
                "PATCH",
                "/v1/consumers/default",
                r#"{"max_deliveries":2}"#,
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["max_deliveries"], 2);
        for bad in [
            r#"{"max_deliveries":0}"#,
            r#"{"max_deliveries":"2"}"#,
            r#"{"retries":2}"#,
        ] {
            http.call(&s, &key, "PATCH", "/v1/consumers/default", bad)
                .await
                .problem(422, "validation_failed");
        }
        http.call(
            &s,
            &key,
            "PATCH",
            "/v1/consumers/billing",
            r#"{"max_deliveries":2}"#,
        )
        .await
        .problem(404, "not_found");
        http.call(&s, &key, "GET", "/v1/consumers/billing", "")
            .await
            .problem(404, "not_found");

        let poison = ingest(&http, &s, &key, &event("job.poison", 1)).await;
        let good = ingest(&http, &s, &key, &event("job.good", 2)).await;
        // Two deliveries of both; the good one is acked on its second.
        for round in 1..=2u64 {
            let items = lease(&http, &s, &key, "lease_seconds=1&wait_seconds=5").await;
            assert_eq!(items.len(), 2, "round {round}: {items:?}");
            assert!(items.iter().all(|e| e["delivery_count"] == round));
            if round == 2 {
                assert_eq!(
                    http.call(&s, &key, "POST", &format!("/v1/events/{good}/ack"), "")
                        .await
                        .status,
                    200
                );
            }
            // Wait the lease out: the next long poll returns when it has.
        }
        // The third poll finds the poison event due again and moves it to the dead letters.
        let third = lease(&http, &s, &key, "lease_seconds=1&wait_seconds=3").await;
        assert!(third.is_empty(), "{third:?}");
        let dead = http
            .call(&s, &key, "GET", "/v1/inbox/dead-letters", "")
            .await
            .json();
        let dead = dead["events"].as_array().expect("events").clone();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0]["event_id"], poison.as_str());
        assert_eq!(dead[0]["state"], "dead");
        assert_eq!(dead[0]["delivery_count"], 2);
        assert_eq!(
            http.call(&s, &key, "GET", &format!("/v1/events/{poison}"), "")
                .await
                .json()["state"],
            "dead"
        );
        assert_eq!(
            common::metric(&http, &s, "sluice_inbox_dead_lettered_total").await,
            1
        );
        let hist = http
            .call(&s, &key, "GET", "/v1/events?state=dead", "")
            .await
            .json();
        assert_eq!(hist["events"].as_array().expect("events").len(), 1);
        (poison, good)
    });

    // kill -9: the move to the dead letters was durable.
    s.kill();
    let s = Server::start_in(dir.path(), &[]);
    rt.block_on(async {
        let http = Http::h1();
        let dead = http
            .call(&s, &key, "GET", "/v1/inbox/dead-letters", "")
            .await
            .json();
        let ids: Vec<&str> = dead["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["event_id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, [poison.as_str()], "dead letters after kill -9");
        assert!(
            lease(&http, &s, &key, "lease_seconds=30").await.is_empty(),
            "a dead letter is not leased"
        );
        // The consumer setting survived too.
        assert_eq!(
            http.call(&s, &key, "GET", "/v1/consumers/default", "")
                .await
                .json()["max_deliveries"],
            2
        );

        // Requeue: only dead letters; a malformed id is not_found, not an error.
        let body = format!(r#"{{"event_ids":["{poison}","{good}","evt_nope"]}}"#);
        let r = http
            .call(&s, &key, "POST", "/v1/inbox/dead-letters/requeue", &body)
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let r = r.json();
        let statuses: Vec<&str> = r["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|x| x["status"].as_str().expect("status"))
            .collect();
        assert_eq!(statuses, ["requeued", "not_found", "not_found"]);
        assert_eq!(r["requeued"], 1);
        let back = lease(&http, &s, &key, "lease_seconds=30").await;
        assert_eq!(back.len(), 1);
        assert_eq!(back[0]["event_id"], poison.as_str());
        assert_eq!(
            back[0]["delivery_count"], 1,
            "a requeued event starts its count again"
        );
        assert!(http
            .call(&s, &key, "GET", "/v1/inbox/dead-letters", "")
            .await
            .json()["events"]
            .as_array()
            .expect("events")
            .is_empty());
        http.call(
            &s,
            &key,
            "GET",
            "/v1/inbox/dead-letters?cursor=cur_bogus",
            "",
        )
        .await
        .problem(400, "invalid_cursor");
        assert!(common::metric(&http, &s, "sluice_inbox_requeued_total").await >= 1);
        // Counted by the store since this start: the move happened before the kill.
        assert_eq!(
            common::metric(&http, &s, "sluice_inbox_dead_lettered_total").await,
            0
        );
        // The lag: one pending event, its age reported.
        let c = http.call(&s, &key, "GET", "/v1/consumers", "").await.json();
        assert_eq!(c["consumers"][0]["pending"], 1);
        assert!(c["consumers"][0]["oldest_pending_age_seconds"]
            .as_f64()
            .is_some());
    });
}

#[test]
fn a_bulk_ack_checks_each_lease() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let mut ids = Vec::new();
        for n in 0..4 {
            ids.push(ingest(&http, &s, &key, &event("bulk", n)).await);
        }
        let first = lease(&http, &s, &key, "lease_seconds=1").await;
        let stale = first[0]["lease_id"].as_str().expect("lease").to_owned();
        // ids[0]'s lease runs out and it is leased again (with ids[1..]).
        let again = lease(&http, &s, &key, "lease_seconds=30&wait_seconds=10&limit=10").await;
        assert_eq!(again.len(), 4, "{again:?}");
        let current: Vec<String> = again
            .iter()
            .map(|e| e["lease_id"].as_str().expect("lease").to_owned())
            .collect();
        let body = serde_json::json!({
            "event_ids": [ids[0], ids[1], ids[2], ids[3]],
            "lease_ids": [stale, current[1], null, current[0]],
        });
        let r = http
            .call(&s, &key, "POST", "/v1/inbox/ack", &body.to_string())
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let r = r.json();
        let statuses: Vec<&str> = r["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|x| x["status"].as_str().expect("status"))
            .collect();
        // stale: refused; current: acked; none: acked; another event's lease: invalid.
        assert_eq!(
            statuses,
            ["lease_expired", "acked", "acked", "invalid_lease"]
        );
        assert_eq!(r["acked"], 2);
        let state = |id: &str| {
            let (http, s, key, id) = (http.clone(), &s, key.clone(), id.to_owned());
            async move {
                http.call(s, &key, "GET", &format!("/v1/events/{id}"), "")
                    .await
                    .json()["state"]
                    .clone()
            }
        };
        assert_eq!(state(&ids[0]).await, "leased");
        assert_eq!(state(&ids[3]).await, "leased");
        assert_eq!(state(&ids[1]).await, "acked");
        // Leases must match the ids one to one, and only an ack takes them.
        let bad = serde_json::json!({"event_ids": [ids[0]], "lease_ids": []});
        let r = http
            .call(&s, &key, "POST", "/v1/inbox/ack", &bad.to_string())
            .await;
        assert_eq!(r.status, 200, "an empty lease list is no lease list");
        let bad = serde_json::json!({"event_ids": [ids[0], ids[3]], "lease_ids": [current[0]]});
        http.call(&s, &key, "POST", "/v1/inbox/ack", &bad.to_string())
            .await
            .problem(422, "validation_failed");
        let bad = serde_json::json!({"event_ids": [ids[0]], "lease_ids": [current[0]]});
        http.call(
            &s,
            &key,
            "POST",
            "/v1/inbox/dead-letters/requeue",
            &bad.to_string(),
        )
        .await
        .problem(422, "validation_failed");
    });
}
