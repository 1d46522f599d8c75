//! Every endpoint in scope and every refusal DESIGN.md names, against the real binary.

mod common;

use common::{event, runtime, tenant_key, Http, Server};

#[test]
fn quickstart_flow_ingest_inbox_ack_delete_batch() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    assert!(key.starts_with("sk_"));
    runtime().block_on(async {
        let http = Http::h1();
        let r = http.call(&s, &key, "POST", "/v1/events", r#"{"event_type":"order.created","payload":{"order_id":42, "items": [1,2]},"source":"shop","occurred_at":"2026-01-02T03:04:05+02:00"}"#).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let created = r.json();
        assert_eq!(created["status"], "received");
        let id = created["event_id"].as_str().expect("id").to_owned();
        assert!(created["received_at"].as_str().expect("ts").ends_with('Z'));
        assert!(r.header("x-request-id").is_some());
        assert!(r.header("ratelimit-limit").is_some() && r.header("ratelimit-remaining").is_some() && r.header("ratelimit-reset").is_some());

        let inbox = http.call(&s, &key, "GET", "/v1/inbox", "").await.json();
        let e = &inbox["events"][0];
        assert_eq!(e["event_id"], id.as_str());
        // Byte for byte as sent, not re-serialised.
        assert!(String::from_utf8_lossy(&http.call(&s, &key, "GET", "/v1/inbox", "").await.body).contains(r#""payload":{"order_id":42, "items": [1,2]}"#));
        assert_eq!(e["source"], "shop");
        assert_eq!(e["occurred_at"], "2026-01-02T03:04:05+02:00");
        assert_eq!(e["delivery_count"], 0);
        assert_eq!(inbox["has_more"], false);

        let got = http.call(&s, &key, "GET", &format!("/v1/events/{id}"), "").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.json()["state"], "pending");

        let ack = http.call(&s, &key, "POST", &format!("/v1/events/{id}/ack"), "").await;
        assert_eq!(ack.status, 200);
        assert_eq!(http.call(&s, &key, "POST", &format!("/v1/events/{id}/ack"), "").await.status, 200, "repeating an ack is harmless");
        assert_eq!(http.call(&s, &key, "GET", &format!("/v1/events/{id}"), "").await.json()["state"], "acked");
        assert_eq!(http.call(&s, &key, "GET", "/v1/inbox", "").await.json()["events"].as_array().expect("events").len(), 0);

        assert_eq!(http.call(&s, &key, "DELETE", &format!("/v1/events/{id}"), "").await.status, 204);
        http.call(&s, &key, "GET", &format!("/v1/events/{id}"), "").await.problem(404, "not_found");
        http.call(&s, &key, "DELETE", &format!("/v1/events/{id}"), "").await.problem(404, "not_found");

        let batch: Vec<String> = (0..5).map(|i| event("batch.item", i)).collect();
        let r = http.call(&s, &key, "POST", "/v1/events/batch", &format!("[{}]", batch.join(","))).await;
        assert_eq!(r.status, 201);
        let results = r.json();
        assert_eq!(results["created"], 5);
        let ids: Vec<String> = results["results"].as_array().expect("results").iter().map(|x| x["event_id"].as_str().expect("id").to_owned()).collect();
        let ack = http.call(&s, &key, "POST", "/v1/inbox/ack", &format!(r#"{{"event_ids":["{}","{}","evt_bogus"]}}"#, ids[0], ids[0])).await;
        assert_eq!(ack.status, 200);
        let statuses: Vec<String> = ack.json()["results"].as_array().expect("results").iter().map(|x| x["status"].as_str().expect("status").to_owned()).collect();
        assert_eq!(statuses, ["acked", "already_acked", "not_found"]);
        let inbox = http.call(&s, &key, "GET", "/v1/inbox?limit=2", "").await.json();
        assert_eq!(inbox["events"][0]["event_id"], ids[1].as_str(), "oldest first");
        assert_eq!(inbox["has_more"], true);
        let cursor = inbox["next_cursor"].as_str().expect("cursor").to_owned();
        let next = http.call(&s, &key, "GET", &format!("/v1/inbox?limit=2&cursor={cursor}"), "").await.json();
        assert_eq!(next["events"][0]["event_id"], ids[3].as_str());
        let typed = http.call(&s, &key, "GET", "/v1/inbox?event_type=nope", "").await.json();
        assert_eq!(typed["events"].as_array().expect("events").len(), 0);
    });
}

#[test]
fn every_refusal_is_a_problem_with_a_stable_code() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        // 400 with the byte offset.
        let p = http
            .call(
                &s,
                &key,
                "POST",
                "/v1/events",
                r#"{"event_type":"a","payload":{"x":}}"#,
            )
            .await
            .problem(400, "malformed_json");
        assert_eq!(p["offset"], 33);
        // 401: no key, unknown key.
        let r = http.send("GET", &s.url("/v1/inbox"), &[], "").await;
        r.problem(401, "unauthorized");
        http.call(&s, "sk_not_a_key", "GET", "/v1/inbox", "")
            .await
            .problem(401, "unauthorized");
        // X-API-Key works too.
        let r = http
            .send(
                "GET",
                &s.url("/v1/inbox"),
                &[("x-api-key", key.as_str())],
                "",
            )
            .await;
        assert_eq!(r.status, 200);
        // 403: a key without the scope.
        let ingest_only = tenant_key(&http, &s, "producer", &["ingest"], None).await;
        http.call(&s, &ingest_only, "GET", "/v1/inbox", "")
            .await
            .problem(403, "forbidden");
        assert_eq!(
            http.call(&s, &ingest_only, "POST", "/v1/events", &event("a", 1))
                .await
                .status,
            201
        );
        // 404: unknown id and another tenant's id look exactly alike.
        let theirs = http
            .call(&s, &ingest_only, "POST", "/v1/events", &event("a", 2))
            .await
            .json()["event_id"]
            .as_str()
            .expect("id")
            .to_owned();
        let mine = http
            .call(&s, &key, "POST", "/v1/events", &event("a", 3))
            .await
            .json()["event_id"]
            .as_str()
            .expect("id")
            .to_owned();
        // Another last character (one in 32 ids already ends in Z, and would be `mine`).
        let other = if mine.ends_with('Z') { 'Y' } else { 'Z' };
        let unknown = format!("{}{other}", &mine[..mine.len() - 1]);
        let a = http
            .call(&s, &key, "GET", &format!("/v1/events/{theirs}"), "")
            .await;
        let b = http
            .call(&s, &key, "GET", &format!("/v1/events/{unknown}"), "")
            .await;
        let (mut pa, mut pb) = (a.problem(404, "not_found"), b.problem(404, "not_found"));
        for p in [&mut pa, &mut pb] {
            p.as_object_mut().expect("object").remove("request_id");
            let detail = p["detail"]
                .as_str()
                .expect("detail")
                .replace(&theirs, "ID")
                .replace(&unknown, "ID");
            p["detail"] = detail.into();
        }
        assert_eq!(
            pa, pb,
            "another tenant's id must be indistinguishable from an unknown id"
        );
        http.call(&s, &key, "POST", &format!("/v1/events/{theirs}/ack"), "")
            .await
            .problem(404, "not_found");
        http.call(&s, &key, "DELETE", &format!("/v1/events/{theirs}"), "")
            .await
            .problem(404, "not_found");
        http.call(&s, &key, "GET", "/v1/events/not-an-id", "")
            .await
            .problem(404, "not_found");
        http.call(&s, &key, "GET", "/v1/nothing-here", "")
            .await
            .problem(404, "not_found");
        // 405 with Allow.
        let r = http.call(&s, &key, "PUT", "/v1/events", "").await;
        r.problem(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some("POST, GET, HEAD"));
        // 413: a tenant with a small payload limit.
        let small = tenant_key(
            &http,
            &s,
            "small",
            &["ingest"],
            Some(r#"{"max_payload_bytes":64}"#),
        )
        .await;
        let big = format!(
            r#"{{"event_type":"a","payload":{{"pad":"{}"}}}}"#,
            "x".repeat(100)
        );
        http.call(&s, &small, "POST", "/v1/events", &big)
            .await
            .problem(413, "payload_too_large");
        let huge = format!(
            r#"{{"event_type":"a","payload":{{"pad":"{}"}}}}"#,
            "x".repeat(2 << 20)
        );
        http.call(&s, &key, "POST", "/v1/events", &huge)
            .await
            .problem(413, "payload_too_large");
        // 415.
        let auth = format!("Bearer {key}");
        let r = http
            .send(
                "POST",
                &s.url("/v1/events"),
                &[("authorization", &auth), ("content-type", "text/plain")],
                event("a", 1),
            )
            .await;
        r.problem(415, "unsupported_media_type");
        // 422: validation, with every field error.
        let p = http
            .call(
                &s,
                &key,
                "POST",
                "/v1/events",
                r#"{"event_type":"has space","payload":"str","occurred_at":"yesterday"}"#,
            )
            .await
            .problem(422, "validation_failed");
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("field"))
            .collect();
        assert_eq!(fields, ["event_type", "payload", "occurred_at"]);
        // 422: an idempotency key reused with another body.
        let first = http
            .send(
                "POST",
                &s.url("/v1/events"),
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("idempotency-key", "k-1"),
                ],
                event("a", 1),
            )
            .await;
        assert_eq!(first.status, 201);
        let reused = http
            .send(
                "POST",
                &s.url("/v1/events"),
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("idempotency-key", "k-1"),
                ],
                event("a", 2),
            )
            .await;
        reused.problem(422, "idempotency_key_reused");
        // 429 with Retry-After, from a tenant allowed one request per second.
        let slow = tenant_key(
            &http,
            &s,
            "slow",
            &["ingest"],
            Some(r#"{"rate_per_second":1,"rate_burst":1}"#),
        )
        .await;
        assert_eq!(
            http.call(&s, &slow, "POST", "/v1/events", &event("a", 1))
                .await
                .status,
            201
        );
        let r = http
            .call(&s, &slow, "POST", "/v1/events", &event("a", 2))
            .await;
        r.problem(429, "rate_limited");
        assert!(r
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1));
        assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    });
}

#[test]
fn idempotent_replay_returns_the_original_with_the_header() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let auth = format!("Bearer {key}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("idempotency-key", "order-42"),
        ];
        let first = http
            .send(
                "POST",
                &s.url("/v1/events"),
                &headers,
                event("order.created", 42),
            )
            .await;
        assert_eq!(first.status, 201);
        assert_eq!(first.header("idempotent-replayed"), None);
        let again = http
            .send(
                "POST",
                &s.url("/v1/events"),
                &headers,
                event("order.created", 42),
            )
            .await;
        assert_eq!(again.status, 200);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.json()["event_id"], first.json()["event_id"]);
        // The key in the body works the same way.
        let body = r#"{"event_type":"a","payload":{},"idempotency_key":"in-body"}"#;
        let a = http.call(&s, &key, "POST", "/v1/events", body).await;
        let b = http.call(&s, &key, "POST", "/v1/events", body).await;
        assert_eq!((a.status, b.status), (201, 200));
        assert_eq!(a.json()["event_id"], b.json()["event_id"]);
        assert_eq!(
            http.call(&s, &key, "GET", "/v1/inbox", "").await.json()["events"]
                .as_array()
                .expect("events")
                .len(),
            2
        );
    });
}

#[test]
fn mixed_batches_answer_207_per_item_in_order_and_store_the_valid_ones() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let body = format!(
            r#"[{}, {{"event_type":"bad type","payload":{{}}}}, {}, {{"payload":{{}}}}]"#,
            event("ok", 0),
            event("ok", 2)
        );
        let r = http.call(&s, &key, "POST", "/v1/events/batch", &body).await;
        assert_eq!(r.status, 207, "{}", String::from_utf8_lossy(&r.body));
        let j = r.json();
        let statuses: Vec<u64> = j["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|x| x["status"].as_u64().expect("status"))
            .collect();
        assert_eq!(statuses, [201, 422, 201, 422]);
        assert_eq!(j["results"][1]["code"], "validation_failed");
        assert!(j["results"][1].get("request_id").is_none());
        // No duplicate members: the raw item text has exactly one "status".
        let raw = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(raw.matches("\"status\"").count(), 4, "{raw}");
        assert_eq!(j["results"][1]["errors"][0]["field"], "[1].event_type");
        assert_eq!(j["results"][3]["errors"][0]["field"], "[3].event_type");
        assert_eq!(
            (j["created"].as_u64(), j["failed"].as_u64()),
            (Some(2), Some(2))
        );
        let inbox = http.call(&s, &key, "GET", "/v1/inbox", "").await.json();
        assert_eq!(inbox["events"].as_array().expect("events").len(), 2);

        // NDJSON, with a malformed line.
        let auth = format!("Bearer {key}");
        let nd = format!("{}\n{{nope\n{}\n", event("nd", 1), event("nd", 2));
        let r = http
            .send(
                "POST",
                &s.url("/v1/events/batch"),
                &[
                    ("authorization", &auth),
                    ("content-type", "application/x-ndjson"),
                ],
                nd,
            )
            .await;
        assert_eq!(r.status, 207);
        let codes: Vec<String> = r.json()["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|x| x["code"].as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(codes, ["", "malformed_json", ""]);
        // All invalid: 422 naming each item.
        let r = http
            .call(
                &s,
                &key,
                "POST",
                "/v1/events/batch",
                r#"[{"payload":{}}, {"event_type":"x"}]"#,
            )
            .await;
        let p = r.problem(422, "validation_failed");
        assert_eq!(p["errors"].as_array().expect("errors").len(), 2);
        // Over 1,000 events.
        let many = format!("[{}]", vec![event("x", 0); 1001].join(","));
        http.call(&s, &key, "POST", "/v1/events/batch", &many)
            .await
            .problem(422, "validation_failed");
    });
}

#[test]
fn http2_cleartext_serves_the_same_api() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let h2 = Http::h2c();
        let r = h2
            .call(&s, &key, "POST", "/v1/events", &event("h2.event", 1))
            .await;
        assert_eq!(r.status, 201);
        let inbox = h2.call(&s, &key, "GET", "/v1/inbox", "").await;
        assert_eq!(inbox.json()["events"][0]["event_type"], "h2.event");
        // Many concurrent streams on one connection.
        let calls = (0..50).map(|i| {
            let h2 = h2.clone();
            let s_url = s.url("/v1/events");
            let auth = format!("Bearer {key}");
            tokio::spawn(async move {
                h2.send(
                    "POST",
                    &s_url,
                    &[
                        ("authorization", &auth),
                        ("content-type", "application/json"),
                    ],
                    event("h2.event", i),
                )
                .await
                .status
            })
        });
        for c in calls {
            assert_eq!(c.await.expect("task"), 201);
        }
    });
}

#[test]
fn operations_endpoints_health_ready_metrics() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        assert_eq!(
            http.send("GET", &s.url("/v1/health"), &[], "").await.json()["status"],
            "ok"
        );
        assert_eq!(
            http.send("GET", &s.url("/v1/ready"), &[], "").await.status,
            200
        );
        http.call(&s, &key, "POST", "/v1/events", &event("m", 1))
            .await;
        http.call(
            &s,
            &key,
            "POST",
            "/v1/events/batch",
            &format!("[{}]", event("m", 2)),
        )
        .await;
        let m = http.send("GET", &s.url("/metrics"), &[], "").await;
        assert_eq!(m.status, 200);
        let text = String::from_utf8_lossy(&m.body).into_owned();
        for series in [
            r#"sluice_http_requests_total{method="POST",route="/v1/events",status="201"} 1"#,
            r#"sluice_http_request_duration_seconds_count{method="POST",route="/v1/events"} 1"#,
            "sluice_events_ingested_total 2",
            "sluice_batch_size_count 1",
            "sluice_store_commits_total",
            r#"sluice_store_fsync_seconds_bucket{le="+Inf"}"#,
            "sluice_store_commit_queue_depth 0",
            r#"sluice_pending_events{tenant="default"} 2"#,
        ] {
            assert!(text.contains(series), "missing {series} in:\n{text}");
        }
        // Every durable commit's sync is in the latency histogram.
        let value = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        };
        let commits = value("sluice_store_commits_total ");
        assert!(commits >= 1);
        assert_eq!(value("sluice_store_fsync_seconds_count "), commits);
        let echoed = http
            .send(
                "GET",
                &s.url("/v1/health"),
                &[("x-request-id", "my-trace-1")],
                "",
            )
            .await;
        assert_eq!(echoed.header("x-request-id"), Some("my-trace-1"));
    });
}

#[test]
fn admin_api_manages_tenants_and_keys() {
    let s = Server::start(&[]);
    runtime().block_on(async {
        let http = Http::h1();
        let r = http
            .send(
                "GET",
                &s.url("/v1/admin/tenants"),
                &[("authorization", "Bearer wrong")],
                "",
            )
            .await;
        r.problem(401, "unauthorized");
        let key = tenant_key(&http, &s, "acme", &["ingest", "consume"], None).await;
        assert_eq!(
            http.call(&s, &key, "POST", "/v1/events", &event("a", 1))
                .await
                .status,
            201
        );
        http.admin(&s, "POST", "/v1/admin/tenants", r#"{"name":"acme"}"#)
            .await
            .problem(409, "conflict");
        http.admin(&s, "POST", "/v1/admin/tenants", r#"{"name":"Bad Name"}"#)
            .await
            .problem(422, "validation_failed");
        let list = http.admin(&s, "GET", "/v1/admin/tenants", "").await.json();
        let names: Vec<&str> = list["tenants"]
            .as_array()
            .expect("tenants")
            .iter()
            .map(|t| t["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["default", "acme"]);
        let patched = http
            .admin(
                &s,
                "PATCH",
                "/v1/admin/tenants/acme",
                r#"{"limits":{"rate_per_second":5}}"#,
            )
            .await;
        assert_eq!(patched.json()["limits"]["rate_per_second"], 5);
        let keys = http
            .admin(&s, "GET", "/v1/admin/tenants/acme/keys", "")
            .await
            .json();
        let key_id = keys["keys"][0]["key_id"]
            .as_str()
            .expect("key id")
            .to_owned();
        assert!(
            !String::from_utf8_lossy(&serde_json::to_vec(&keys).expect("json")).contains(&key),
            "secrets are never listed"
        );
        assert_eq!(
            http.admin(&s, "DELETE", &format!("/v1/admin/keys/{key_id}"), "")
                .await
                .status,
            204
        );
        http.call(&s, &key, "POST", "/v1/events", &event("a", 2))
            .await
            .problem(401, "unauthorized");
        http.admin(
            &s,
            "POST",
            "/v1/admin/tenants/acme/keys",
            r#"{"scopes":["root"]}"#,
        )
        .await
        .problem(422, "validation_failed");
        http.admin(
            &s,
            "POST",
            "/v1/admin/tenants/nobody/keys",
            r#"{"scopes":["ingest"]}"#,
        )
        .await
        .problem(404, "not_found");
    });
}

#[test]
fn openapi_describes_what_the_server_sends() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let doc = http.send("GET", &s.url("/openapi.json"), &[], "").await;
        assert_eq!(doc.status, 200);
        let doc = doc.json();
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "{}",
            doc["openapi"]
        );
        for path in [
            "/v1/events",
            "/v1/events/batch",
            "/v1/inbox",
            "/v1/inbox/ack",
            "/v1/events/{id}",
            "/v1/events/{id}/ack",
            "/v1/health",
            "/v1/ready",
            "/metrics",
            "/v1/admin/tenants",
            "/v1/admin/tenants/{name}/keys",
            "/v1/admin/keys/{key_id}",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} is not documented");
        }
        let documented = |schema: &str| -> Vec<String> {
            let mut keys: Vec<String> = doc["components"]["schemas"][schema]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("no schema {schema}"))
                .keys()
                .cloned()
                .collect();
            keys.sort();
            keys
        };
        let sent = |v: &serde_json::Value| -> Vec<String> {
            let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            keys.sort();
            keys
        };
        let receipt = http
            .call(&s, &key, "POST", "/v1/events", &event("doc", 1))
            .await
            .json();
        assert_eq!(sent(&receipt), documented("Receipt"));
        let page = http
            .call(&s, &key, "GET", "/v1/inbox?limit=1", "")
            .await
            .json();
        assert_eq!(sent(&page), documented("InboxPage"));
        assert_eq!(sent(&page["events"][0]), documented("Event"));
        let id = receipt["event_id"].as_str().expect("id");
        assert_eq!(
            sent(
                &http
                    .call(&s, &key, "POST", &format!("/v1/events/{id}/ack"), "")
                    .await
                    .json()
            ),
            documented("Acked")
        );
        let acks = http
            .call(
                &s,
                &key,
                "POST",
                "/v1/inbox/ack",
                &format!(r#"{{"event_ids":["{id}"]}}"#),
            )
            .await
            .json();
        assert_eq!(sent(&acks), documented("AckResults"));
        assert_eq!(sent(&acks["results"][0]), documented("AckResult"));
        let batch = http
            .call(
                &s,
                &key,
                "POST",
                "/v1/events/batch",
                &format!(r#"[{}, {{"payload":{{}}}}]"#, event("doc", 2)),
            )
            .await
            .json();
        assert_eq!(sent(&batch), documented("BatchResults"));
        let item_keys = documented("BatchItem");
        for item in batch["results"].as_array().expect("results") {
            assert!(
                sent(item)
                    .iter()
                    .all(|k| item_keys.contains(k) || ["type", "title"].contains(&k.as_str())),
                "{item}"
            );
        }
        let problem = http
            .call(&s, &key, "POST", "/v1/events", r#"{"event_type":"x"}"#)
            .await
            .json();
        let problem_keys = documented("Problem");
        assert!(
            sent(&problem).iter().all(|k| problem_keys.contains(k)),
            "{problem} vs {problem_keys:?}"
        );
        let tenant = http
            .admin(&s, "POST", "/v1/admin/tenants", r#"{"name":"documented"}"#)
            .await
            .json();
        assert_eq!(sent(&tenant), documented("Tenant"));
        let created = http
            .admin(
                &s,
                "POST",
                "/v1/admin/tenants/documented/keys",
                r#"{"scopes":["ingest"]}"#,
            )
            .await
            .json();
        assert_eq!(sent(&created), documented("KeyCreated"));
        let keys = http
            .admin(&s, "GET", "/v1/admin/tenants/documented/keys", "")
            .await
            .json();
        assert_eq!(sent(&keys["keys"][0]), documented("KeyInfo"));
    });
}
