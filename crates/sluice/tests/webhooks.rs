//! Push delivery through the real binary, to a real receiver on 127.0.0.1: the API and
//! its errors, signatures (checked by the official Python `standardwebhooks` package),
//! filters, FIFO through retries, parallel deliveries, the schedule, `Retry-After`,
//! `410`, the circuit breaker, dead letters and replay, rotation, and SSRF refusals at
//! creation and at connect time.

mod common;

use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{runtime, tenant_key, Http, Reply, Server};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// A server that may send to loopback (the receiver), with a short test schedule.
fn server(schedule: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--allow-private-targets",
        "--webhook-retry-schedule",
        schedule,
        "--webhook-timeout",
        "3s",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

async fn subscribe(http: &Http, s: &Server, key: &str, body: Value) -> Value {
    let r = http
        .call(s, key, "POST", "/v1/subscriptions", &body.to_string())
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

async fn ingest(http: &Http, s: &Server, key: &str, ty: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = http
            .call(s, key, "POST", "/v1/events", &common::event(ty, i))
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        ids.push(r.json()["event_id"].as_str().expect("id").to_owned());
    }
    ids
}

async fn get(http: &Http, s: &Server, key: &str, path: &str) -> Reply {
    http.call(s, key, "GET", path, "").await
}

/// Verifies every delivery's signature with the official Python package, against each
/// of `secrets`; answers how many verified.
fn verify_with_python(deliveries: &[common::receiver::Received], secrets: &[&str]) -> usize {
    let cases: Vec<Value> = deliveries
        .iter()
        .flat_map(|d| {
            secrets.iter().map(move |secret| {
                json!({
                    "secret": secret,
                    "body": String::from_utf8_lossy(&d.body),
                    "headers": {
                        "webhook-id": d.header("webhook-id"),
                        "webhook-timestamp": d.header("webhook-timestamp"),
                        "webhook-signature": d.header("webhook-signature"),
                    }
                })
            })
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&cases).expect("json")).expect("write");
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
cases = json.load(open(sys.argv[1]))
for c in cases:
    Webhook(c["secret"]).verify(c["body"], c["headers"])
print(len(cases))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("python3 (with `pip install standardwebhooks`, as .ci/run does)");
    assert!(
        out.status.success(),
        "standardwebhooks refused a signature:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

#[test]
fn the_subscriptions_api_and_its_errors() {
    let s = server("100ms", &[]);
    let http = Http::h1();
    runtime().block_on(async {
        let key = s.key().to_owned();
        let rx = Receiver::start().await;
        let sub = subscribe(
            &http,
            &s,
            &key,
            json!({"target_url": rx.url("/hook"), "event_types": ["order.*"], "description": "orders",
                   "ordering": "none", "max_in_flight": 4, "headers": {"X-Team": "billing"}}),
        )
        .await;
        let id = sub["id"].as_str().expect("id").to_owned();
        assert!(id.starts_with("sub_") && id.len() == 28, "{id}");
        assert!(sub["secret"].as_str().expect("secret").starts_with("whsec_"));
        assert_eq!(sub["status"], "active");
        assert_eq!(sub["ordering"], "none");
        assert_eq!(sub["max_in_flight"], 4);
        assert_eq!(sub["headers"]["x-team"], "billing");
        let defaults = subscribe(&http, &s, &key, json!({"target_url": rx.url("/other")})).await;
        assert_eq!(defaults["ordering"], "fifo");
        assert_eq!(defaults["max_in_flight"], 16);
        assert_eq!(defaults["event_types"], json!([]));

        // Listed and read without secrets; read with delivery state.
        let list = get(&http, &s, &key, "/v1/subscriptions").await.json();
        assert_eq!(list["subscriptions"].as_array().expect("list").len(), 2);
        assert!(list["subscriptions"][0].get("secret").is_none());
        let one = get(&http, &s, &key, &format!("/v1/subscriptions/{id}")).await.json();
        assert!(one.get("secret").is_none());
        assert_eq!(one["backlog"], 0);
        assert_eq!(one["dead_letters"], 0);
        assert!(one["last_success_at"].is_null());

        // Patch: description, types, pause; disabled is not the caller's to set.
        let r = http
            .call(&s, &key, "PATCH", &format!("/v1/subscriptions/{id}"),
                  r#"{"description":null,"event_types":["user","order.*"],"status":"paused"}"#)
            .await;
        let p = r.json();
        assert_eq!(r.status, 200, "{p}");
        assert!(p["description"].is_null());
        assert_eq!(p["event_types"], json!(["order.*", "user"]));
        assert_eq!(p["status"], "paused");
        let r = http
            .call(&s, &key, "PATCH", &format!("/v1/subscriptions/{id}"), r#"{"status":"disabled"}"#)
            .await;
        r.problem(422, "validation_failed");

        // Validation, with the field named.
        for (body, field) in [
            (json!({"target_url": "ftp://x"}), "target_url"),
            (json!({"target_url": rx.url("/"), "ordering": "random"}), "ordering"),
            (json!({"target_url": rx.url("/"), "max_in_flight": 0}), "max_in_flight"),
            (json!({"target_url": rx.url("/"), "event_types": ["a..b*"]}), "event_types[0]"),
            (json!({"target_url": rx.url("/"), "headers": {"webhook-id": "x"}}), "headers.webhook-id"),
            (json!({"target_url": rx.url("/"), "nope": 1}), "nope"),
        ] {
            let r = http.call(&s, &key, "POST", "/v1/subscriptions", &body.to_string()).await;
            let p = r.problem(422, "validation_failed");
            assert_eq!(p["errors"][0]["field"], field, "{p}");
        }
        let r = http.call(&s, &key, "POST", "/v1/subscriptions", "{oops").await;
        r.problem(400, "malformed_json");

        // Scope manage only; another tenant's id and altered ids are unknown.
        let ingest_only = tenant_key(&http, &s, "producer", &["ingest", "consume"], None).await;
        get(&http, &s, &ingest_only, "/v1/subscriptions").await.problem(403, "forbidden");
        let other = tenant_key(&http, &s, "other", &["manage"], None).await;
        let mut altered = id.clone().into_bytes();
        altered[10] = if altered[10] == b'a' { b'b' } else { b'a' };
        let altered = String::from_utf8(altered).expect("ascii");
        for (who, sub_id) in [(&other, id.as_str()), (&key, altered.as_str()), (&key, "sub_nope")] {
            for (method, path, body) in [
                ("GET", format!("/v1/subscriptions/{sub_id}"), ""),
                ("PATCH", format!("/v1/subscriptions/{sub_id}"), r#"{"status":"active"}"#),
                ("DELETE", format!("/v1/subscriptions/{sub_id}"), ""),
                ("POST", format!("/v1/subscriptions/{sub_id}/rotate-secret"), ""),
                ("GET", format!("/v1/subscriptions/{sub_id}/attempts"), ""),
                ("GET", format!("/v1/subscriptions/{sub_id}/dead-letters"), ""),
                ("POST", format!("/v1/subscriptions/{sub_id}/replay"), r#"{"event_ids":["evt_x"]}"#),
                ("POST", format!("/v1/subscriptions/{sub_id}/test"), ""),
            ] {
                http.call(&s, who, method, &path, body).await.problem(404, "not_found");
            }
        }
        assert!(get(&http, &s, &other, "/v1/subscriptions").await.json()["subscriptions"]
            .as_array()
            .expect("list")
            .is_empty());

        // The test event, and its place in the attempts log.
        let r = http
            .call(&s, &key, "POST", &format!("/v1/subscriptions/{}/test", defaults["id"].as_str().expect("id")), "")
            .await;
        let attempt = r.json();
        assert_eq!(r.status, 200, "{attempt}");
        assert_eq!(attempt["outcome"], "delivered");
        assert_eq!(attempt["response_status"], 200);
        let got = rx.wait_for(1, WAIT).await;
        assert_eq!(got[0].json()["type"], "sluice.test");
        assert_eq!(got[0].path, "/other");
        let log = get(&http, &s, &key, &format!("/v1/subscriptions/{}/attempts", defaults["id"].as_str().expect("id")))
            .await
            .json();
        assert_eq!(log["attempts"][0]["attempt_id"], attempt["attempt_id"]);

        // Altered cursors are refused; replay bodies are checked.
        let path = format!("/v1/subscriptions/{id}/attempts?cursor=cur_AAAAAAAAAAAAAAAAAAAAAAAAAAA");
        get(&http, &s, &key, &path).await.problem(400, "invalid_cursor");
        let r = http.call(&s, &key, "POST", &format!("/v1/subscriptions/{id}/replay"), "{}").await;
        r.problem(422, "validation_failed");
        let r = http
            .call(&s, &key, "POST", &format!("/v1/subscriptions/{id}/replay"), r#"{"since":"yesterday"}"#)
            .await;
        r.problem(422, "validation_failed");

        // Delete: 204, then gone.
        let r = http.call(&s, &key, "DELETE", &format!("/v1/subscriptions/{id}"), "").await;
        assert_eq!(r.status, 204);
        get(&http, &s, &key, &format!("/v1/subscriptions/{id}")).await.problem(404, "not_found");

        // Everything is documented and counted.
        let doc = get(&http, &s, &key, "/openapi.json").await.json();
        for path in ["/v1/subscriptions", "/v1/subscriptions/{id}/replay", "/v1/subscriptions/{id}/attempts"] {
            assert!(doc["paths"][path].is_object(), "{path}");
        }
        let metrics = String::from_utf8_lossy(&get(&http, &s, &key, "/metrics").await.body).into_owned();
        for series in [
            "sluice_webhook_deliveries_total{outcome=\"delivered\"} 1",
            "sluice_webhook_attempt_duration_seconds_count",
            "sluice_webhook_subscriptions{status=\"active\"} 1",
            "sluice_webhook_backlog{subscription=",
        ] {
            assert!(metrics.contains(series), "{series} in\n{metrics}");
        }
    });
}

#[test]
fn the_ssrf_rules_refuse_at_creation_and_at_connect() {
    // No --allow-private-targets here.
    let s = Server::start(&[
        "--webhook-retry-schedule",
        "100ms",
        "--webhook-timeout",
        "2s",
    ]);
    let http = Http::h1();
    runtime().block_on(async {
        let key = s.key().to_owned();
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]:8080/",
            "http://0.0.0.0/",
            "http://localhost/",
            "http://10.0.0.1/",
            "http://192.168.0.10/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.1.1/",
            "http://224.0.0.1/",
        ] {
            let r = http
                .call(
                    &s,
                    &key,
                    "POST",
                    "/v1/subscriptions",
                    &json!({"target_url": url}).to_string(),
                )
                .await;
            let p = r.problem(422, "target_not_allowed");
            assert!(
                p["detail"]
                    .as_str()
                    .expect("detail")
                    .contains("--allow-private-targets"),
                "{p}"
            );
        }
        // A name that passes (it is not a literal address), but resolves to loopback on
        // this machine (the host's own name, in /etc/hosts): refused when dialled.
        let host = hostname();
        let resolved: Vec<std::net::IpAddr> = tokio::net::lookup_host((host.as_str(), 80))
            .await
            .unwrap_or_else(|e| panic!("the test machine's name {host:?} must resolve: {e}"))
            .map(|a| a.ip())
            .collect();
        assert!(
            resolved
                .iter()
                .any(|ip| sluice_push::target::forbidden(*ip).is_some()),
            "{host} resolves to {resolved:?}: the test needs a name for a private address"
        );
        let rx = Receiver::start().await;
        let url = format!("http://{host}:{}/hook", rx.addr.port());
        let sub = subscribe(&http, &s, &key, json!({"target_url": url})).await;
        let id = sub["id"].as_str().expect("id");
        ingest(&http, &s, &key, "t", 1).await;
        let attempts = wait_attempts(&http, &s, &key, id, 1).await;
        let a = &attempts[0];
        assert_eq!(a["outcome"], "failed", "{a}");
        assert!(a["response_status"].is_null());
        let error = a["error"].as_str().expect("error");
        assert!(
            error.contains("refused to connect") && error.contains(&host),
            "{error}"
        );
        assert!(rx.received().is_empty(), "nothing reached the receiver");
    });
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(rc, 0, "gethostname");
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Waits until the subscription's attempts log holds `n` attempts; returns them, newest
/// first. Polls the API (there is nothing to wait on from outside).
async fn wait_attempts(http: &Http, s: &Server, key: &str, id: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let log = get(
            http,
            s,
            key,
            &format!("/v1/subscriptions/{id}/attempts?limit=1000"),
        )
        .await
        .json();
        let attempts = log["attempts"].as_array().expect("attempts").clone();
        if attempts.len() >= n {
            return attempts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} attempts: {log}",
            attempts.len()
        );
        tokio::task::yield_now().await;
    }
}

#[test]
fn deliveries_are_signed_filtered_and_verified_by_standardwebhooks() {
    let s = server("100ms", &[]);
    let http = Http::h1();
    runtime().block_on(async {
        let key = s.key().to_owned();
        let rx = Receiver::start().await;
        let sub = subscribe(&http, &s, &key, json!({"target_url": rx.url("/orders"), "event_types": ["order.*"], "headers": {"x-env": "test"}})).await;
        let secret = sub["secret"].as_str().expect("secret").to_owned();
        let ids = ingest(&http, &s, &key, "order.created", 2).await;
        ingest(&http, &s, &key, "order", 1).await; // not order.*
        ingest(&http, &s, &key, "user.created", 1).await;
        let other = tenant_key(&http, &s, "other", &["ingest"], None).await;
        ingest(&http, &s, &other, "order.created", 1).await;
        let mut last = ingest(&http, &s, &key, "order.shipped", 1).await;
        let mut wanted = ids.clone();
        wanted.append(&mut last);
        let got = rx.wait_for(3, WAIT).await;
        assert_eq!(got.iter().map(|r| r.event_id().to_owned()).collect::<Vec<_>>(), wanted);
        let body = got[0].json();
        assert_eq!(body["type"], "order.created");
        assert_eq!(body["event_id"], ids[0]);
        assert_eq!(body["data"], json!({"n": 0}));
        assert!(body["timestamp"].as_str().expect("timestamp").ends_with('Z'));
        let d = &got[0];
        assert_eq!(d.header("content-type"), "application/json");
        assert!(d.header("user-agent").starts_with("Sluice/"));
        assert_eq!(d.header("x-env"), "test");
        assert!(d.header("webhook-signature").starts_with("v1,"));
        assert_eq!(verify_with_python(&got, &[&secret]), 3);

        // Rotation: both secrets sign for 24 h; the Python package verifies with either.
        let id = sub["id"].as_str().expect("id");
        let r = http.call(&s, &key, "POST", &format!("/v1/subscriptions/{id}/rotate-secret"), "").await;
        assert_eq!(r.status, 200);
        let new_secret = r.json()["secret"].as_str().expect("secret").to_owned();
        assert_ne!(new_secret, secret);
        ingest(&http, &s, &key, "order.paid", 1).await;
        let got = rx.wait_for(4, WAIT).await;
        let rotated = &got[3..];
        assert_eq!(rotated[0].header("webhook-signature").split(' ').count(), 2);
        assert_eq!(verify_with_python(rotated, &[&secret, &new_secret]), 2);
    });
}

#[test]
fn fifo_holds_order_through_retries_and_none_runs_in_parallel() {
    let s = server("100ms,100ms,100ms", &[]);
    let http = Http::h1();
    runtime().block_on(async {
        let key = s.key().to_owned();
        let rx = Receiver::start().await;
        // The first event (payload n = 0) fails twice; everything else succeeds at once.
        rx.answer(|r| {
            let first = r.path == "/fifo" && r.json()["data"]["n"] == 0;
            if first && r.earlier < 2 {
                Answer::status(503)
            } else {
                Answer::status(200)
            }
        });
        subscribe(&http, &s, &key, json!({"target_url": rx.url("/fifo"), "event_types": ["fifo"]})).await;
        let ids = ingest(&http, &s, &key, "fifo", 5).await;
        let got = rx.wait_until(WAIT, "every fifo event", |r| r.iter().filter(|x| x.path == "/fifo" && !x.header("webhook-id").is_empty()).count() >= 7).await;
        let order: Vec<&str> = got.iter().filter(|r| r.path == "/fifo").map(|r| r.event_id()).collect();
        let mut expected: Vec<&str> = vec![ids[0].as_str(); 3];
        expected.extend(ids[1..].iter().map(String::as_str));
        assert_eq!(order, expected, "FIFO held through two retries");

        // ordering none: up to max_in_flight requests open at once.
        rx.answer(|r| Answer {
            status: 200,
            retry_after: None,
            delay: if r.path == "/slow" { Duration::from_millis(400) } else { Duration::ZERO },
        });
        subscribe(&http, &s, &key, json!({"target_url": rx.url("/slow"), "event_types": ["par"], "ordering": "none", "max_in_flight": 8})).await;
        let batch: Vec<String> = (0..8).map(|i| common::event("par", i)).collect();
        let r = http.call(&s, &key, "POST", "/v1/events/batch", &format!("[{}]", batch.join(","))).await;
        assert_eq!(r.status, 201);
        rx.wait_until(WAIT, "the parallel deliveries", |r| r.iter().filter(|x| x.path == "/slow").count() >= 8).await;
        assert!(rx.in_flight_max() >= 8, "at most {} requests were open at once", rx.in_flight_max());
    });
}

#[test]
fn the_schedule_retry_after_410_and_dead_letters_with_replay() {
    let s = server("100ms,200ms", &[]);
    let http = Http::h1();
    runtime().block_on(async {
        let key = s.key().to_owned();
        let rx = Receiver::start().await;
        rx.answer(|r| match r.path.as_str() {
            "/down" => Answer::status(500),
            "/gone" => Answer::status(410),
            _ => Answer::status(200),
        });
        // The schedule: attempt 1, then ~100 ms, then ~200 ms (±20 %), then dead.
        let down = subscribe(
            &http,
            &s,
            &key,
            json!({"target_url": rx.url("/down"), "event_types": ["down"]}),
        )
        .await;
        let down_id = down["id"].as_str().expect("id").to_owned();
        let ids = ingest(&http, &s, &key, "down", 1).await;
        let got = rx
            .wait_until(WAIT, "three attempts", |r| {
                r.iter().filter(|x| x.path == "/down").count() >= 3
            })
            .await;
        let at: Vec<_> = got
            .iter()
            .filter(|r| r.path == "/down")
            .map(|r| r.at)
            .collect();
        let gaps = [at[1] - at[0], at[2] - at[1]];
        assert!(gaps[0] >= Duration::from_millis(75), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(155), "{gaps:?}");
        assert!(gaps.iter().all(|g| *g < Duration::from_secs(3)), "{gaps:?}");
        let attempts = wait_attempts(&http, &s, &key, &down_id, 3).await;
        let outcomes: Vec<&str> = attempts
            .iter()
            .map(|a| a["outcome"].as_str().expect("outcome"))
            .collect();
        assert_eq!(outcomes, ["dead", "failed", "failed"], "newest first");
        assert_eq!(attempts[0]["attempt"], 3);
        assert_eq!(attempts[2]["response_status"], 500);
        let dead = get(
            &http,
            &s,
            &key,
            &format!("/v1/subscriptions/{down_id}/dead-letters"),
        )
        .await
        .json();
        assert_eq!(
            dead["dead_letters"][0]["event"]["event_id"], ids[0],
            "{dead}"
        );
        assert_eq!(dead["dead_letters"][0]["attempts"], 3);
        let state = get(&http, &s, &key, &format!("/v1/subscriptions/{down_id}"))
            .await
            .json();
        assert_eq!(state["dead_letters"], 1);
        assert!(state["last_failure_at"].is_string());
        let failed = get(
            &http,
            &s,
            &key,
            &format!("/v1/subscriptions/{down_id}/attempts?outcome=failed"),
        )
        .await
        .json();
        assert_eq!(failed["attempts"].as_array().expect("attempts").len(), 2);
        // Replay once the endpoint is back: delivered again, and no longer dead.
        rx.answer(|r| {
            if r.path == "/gone" {
                Answer::status(410)
            } else {
                Answer::status(200)
            }
        });
        let r = http
            .call(
                &s,
                &key,
                "POST",
                &format!("/v1/subscriptions/{down_id}/replay"),
                &json!({"event_ids": [ids[0]]}).to_string(),
            )
            .await;
        assert_eq!(r.status, 202);
        assert_eq!(r.json()["queued"], 1);
        rx.wait_until(WAIT, "the replay", |r| {
            r.iter().filter(|x| x.path == "/down").count() >= 4
        })
        .await;
        let dead = get(
            &http,
            &s,
            &key,
            &format!("/v1/subscriptions/{down_id}/dead-letters"),
        )
        .await
        .json();
        assert!(
            dead["dead_letters"].as_array().expect("dead").is_empty(),
            "{dead}"
        );

        // 410 disables at once, with the reason; active again delivers it.
        let gone = subscribe(
            &http,
            &s,
            &key,
            json!({"target_url": rx.url("/gone"), "event_types": ["gone"]}),
        )
        .await;
        let gone_id = gone["id"].as_str().expect("id").to_owned();
        ingest(&http, &s, &key, "gone", 1).await;
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let state = get(&http, &s, &key, &format!("/v1/subscriptions/{gone_id}"))
                .await
                .json();
            if state["status"] == "disabled" {
                assert_eq!(state["disabled_reason"], "gone");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{state}");
            tokio::task::yield_now().await;
        }
        assert_eq!(
            rx.received().iter().filter(|r| r.path == "/gone").count(),
            1,
            "no retry once disabled"
        );
        rx.answer(|_| Answer::status(200));
        let r = http
            .call(
                &s,
                &key,
                "PATCH",
                &format!("/v1/subscriptions/{gone_id}"),
                r#"{"status":"active"}"#,
            )
            .await;
        assert_eq!(r.json()["status"], "active");
        assert!(r.json()["disabled_reason"].is_null());
        rx.wait_until(WAIT, "the delivery after re-enabling", |r| {
            r.iter().filter(|x| x.path == "/gone").count() >= 2
        })
        .await;
    });
}

#[test]
fn retry_after_is_honoured_and_the_breaker_holds_a_dead_endpoint() {
    let s = server(
        "100ms,3s,50ms,50ms,50ms,50ms,50ms,50ms,50ms,50ms",
        &["--webhook-breaker-open", "1500ms"],
    );
    let http = Http::h1();
    runtime().block_on(async {
        let key = s.key().to_owned();
        let rx = Receiver::start().await;
        rx.answer(|r| match r.path.as_str() {
            "/busy" if r.earlier == 0 => Answer {
                status: 503,
                retry_after: Some("2".into()),
                delay: Duration::ZERO,
            },
            "/dead" => Answer::status(502),
            _ => Answer::status(200),
        });
        subscribe(
            &http,
            &s,
            &key,
            json!({"target_url": rx.url("/busy"), "event_types": ["busy"]}),
        )
        .await;
        ingest(&http, &s, &key, "busy", 1).await;
        let got = rx
            .wait_until(WAIT, "the retry", |r| {
                r.iter().filter(|x| x.path == "/busy").count() >= 2
            })
            .await;
        let at: Vec<_> = got
            .iter()
            .filter(|r| r.path == "/busy")
            .map(|r| r.at)
            .collect();
        assert!(
            at[1] - at[0] >= Duration::from_millis(1900),
            "Retry-After: 2 was not honoured: {:?}",
            at[1] - at[0]
        );

        // A dead endpoint: 5 failures in a row open its breaker; deliveries are held for
        // the open time (1.5 s) though the schedule says 50 ms, then one probe goes.
        let dead = subscribe(
            &http,
            &s,
            &key,
            json!({"target_url": rx.url("/dead"), "event_types": ["dead"]}),
        )
        .await;
        let _ = dead;
        ingest(&http, &s, &key, "dead", 1).await;
        // Attempt 2 waits the 3 s step; then 50 ms steps. The breaker opens at the 5th.
        let got = rx
            .wait_until(Duration::from_secs(30), "the probe", |r| {
                r.iter().filter(|x| x.path == "/dead").count() >= 6
            })
            .await;
        let at: Vec<_> = got
            .iter()
            .filter(|r| r.path == "/dead")
            .map(|r| r.at)
            .collect();
        for w in at.windows(2).skip(2).take(2) {
            assert!(
                w[1] - w[0] < Duration::from_millis(1000),
                "50 ms steps before the breaker opens: {:?}",
                w[1] - w[0]
            );
        }
        assert!(
            at[5] - at[4] >= Duration::from_millis(1400),
            "the open breaker held the delivery: {:?}",
            at[5] - at[4]
        );
        let metrics =
            String::from_utf8_lossy(&get(&http, &s, &key, "/metrics").await.body).into_owned();
        assert!(
            metrics.contains("sluice_webhook_breaker_state{endpoint="),
            "{metrics}"
        );
    });
}

#[test]
fn a_hanging_endpoint_does_not_hold_up_ingest_or_other_subscriptions() {
    let s = server("100ms", &[]);
    let http = Http::h1();
    runtime().block_on(async {
        let key = s.key().to_owned();
        let rx = Receiver::start().await;
        rx.answer(|r| Answer {
            status: 200,
            retry_after: None,
            // Longer than the 3 s webhook timeout: every request to /hang times out.
            delay: if r.path == "/hang" {
                Duration::from_secs(10)
            } else {
                Duration::ZERO
            },
        });
        subscribe(
            &http,
            &s,
            &key,
            json!({"target_url": rx.url("/hang"), "ordering": "none", "max_in_flight": 1000}),
        )
        .await;
        subscribe(&http, &s, &key, json!({"target_url": rx.url("/ok")})).await;
        let started = std::time::Instant::now();
        let mut slowest = Duration::ZERO;
        for i in 0..300 {
            let t = std::time::Instant::now();
            let r = http
                .call(&s, &key, "POST", "/v1/events", &common::event("t", i))
                .await;
            assert_eq!(r.status, 201);
            slowest = slowest.max(t.elapsed());
        }
        assert!(
            slowest < Duration::from_secs(1),
            "an ingest waited {slowest:?} behind the hanging endpoint"
        );
        // The healthy subscription got everything meanwhile, in order.
        let got = rx
            .wait_until(WAIT, "the healthy deliveries", |r| {
                r.iter().filter(|x| x.path == "/ok").count() >= 300
            })
            .await;
        assert!(got.iter().filter(|r| r.path == "/hang").count() >= 1);
        assert!(started.elapsed() < Duration::from_secs(15));
    });
}
