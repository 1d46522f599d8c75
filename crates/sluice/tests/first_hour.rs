//! The first hour without surprises: regressions for what a new user hit (issue
//! "The inbox that SQS and JetStream users expect", part 2), against the real binary.

mod common;

use common::{runtime, tenant_key, Http, Server};

#[test]
fn errors_say_what_the_user_sent_and_what_to_do() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        // 413 names the tenant's payload limit, not the body limit it implies.
        let big = format!(
            r#"{{"event_type":"a","payload":{{"x":"{}"}}}}"#,
            "a".repeat(2_000_000)
        );
        let p = http
            .call(&s, &key, "POST", "/v1/events", &big)
            .await
            .problem(413, "payload_too_large");
        let detail = p["detail"].as_str().expect("detail");
        assert!(
            detail.contains("1048576") && !detail.contains("1114112"),
            "{detail}"
        );
        // An array sent as one event: one clear error, no ": " prefix, no field guesses.
        let p = http
            .call(&s, &key, "POST", "/v1/events", "[1,2]")
            .await
            .problem(422, "validation_failed");
        let detail = p["detail"].as_str().expect("detail");
        assert!(
            detail.contains("/v1/events/batch") && !detail.starts_with(':'),
            "{detail}"
        );
        assert_eq!(p["errors"].as_array().expect("errors").len(), 1);
        // A compressed body: 415 that says so, not "malformed JSON at byte 0".
        let r = http
            .send(
                "POST",
                &s.url("/v1/events"),
                &[
                    ("authorization", &format!("Bearer {key}")),
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                ],
                vec![0x1f, 0x8b, 0x08, 0x00],
            )
            .await;
        let p = r.problem(415, "unsupported_media_type");
        assert!(
            p["detail"]
                .as_str()
                .expect("detail")
                .contains("Content-Encoding"),
            "{p}"
        );
        // An oversize item inside a batch is a 413 item too, naming its field.
        let batch = format!(
            r#"[{{"event_type":"a","payload":{{"x":"{}"}}}},{{"event_type":"b","payload":{{}}}}]"#,
            "a".repeat(1_100_000)
        );
        let r = http
            .call(&s, &key, "POST", "/v1/events/batch", &batch)
            .await;
        assert_eq!(r.status, 207, "{}", String::from_utf8_lossy(&r.body));
        let item = &r.json()["results"][0];
        assert_eq!(item["status"], 413);
        assert!(item["detail"].as_str().expect("detail").contains("payload"));
    });
}

#[test]
fn http_conventions_bearer_case_challenge_head_and_405() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        // The auth scheme is case-insensitive (RFC 9110).
        for scheme in ["bearer", "BEARER", "Bearer"] {
            let auth = format!("{scheme} {key}");
            let r = http
                .send("GET", &s.url("/v1/inbox"), &[("authorization", &auth)], "")
                .await;
            assert_eq!(r.status, 200, "{scheme}");
        }
        // 401 carries the challenge, with or without a key, and for the admin API.
        for auth in [None, Some("Bearer sk_wrong"), Some("Basic eDp5")] {
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
            let r = http.send("GET", &s.url("/v1/inbox"), &headers, "").await;
            r.problem(401, "unauthorized");
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{auth:?}"
            );
        }
        let r = http.send("GET", &s.url("/v1/admin/tenants"), &[], "").await;
        r.problem(401, "unauthorized");
        assert!(r.header("www-authenticate").is_some());
        // HEAD on a GET route: GET's status and headers, no body.
        let auth = format!("Bearer {key}");
        let r = http
            .send("HEAD", &s.url("/v1/inbox"), &[("authorization", &auth)], "")
            .await;
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let r = http.send("HEAD", &s.url("/v1/health"), &[], "").await;
        assert_eq!(r.status, 200);
        // Admin routes answer 405 with Allow where the path exists.
        let other = tenant_key(&http, &s, "t2", &["ingest"], None).await;
        assert!(other.starts_with("sk_"));
        for (method, path, allow) in [
            ("GET", "/v1/admin/tenants/t2", "PATCH"),
            ("POST", "/v1/admin/keys/key_x", "DELETE"),
            ("PUT", "/v1/admin/tenants", "GET, POST, HEAD"),
        ] {
            let r = http.admin(&s, method, path, "").await;
            r.problem(405, "method_not_allowed");
            assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        }
    });
}

#[test]
fn admin_patch_is_a_merge_patch_and_refuses_zero_limits() {
    let s = Server::start(&[]);
    runtime().block_on(async {
        let http = Http::h1();
        let r = http
            .admin(
                &s,
                "POST",
                "/v1/admin/tenants",
                r#"{"name":"acme","limits":{"max_payload_bytes":2048,"rate_per_second":50}}"#,
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        // Changing the rate keeps the payload limit (it used to wipe it).
        let r = http
            .admin(
                &s,
                "PATCH",
                "/v1/admin/tenants/acme",
                r#"{"limits":{"rate_per_second":5}}"#,
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let limits = r.json()["limits"].clone();
        assert_eq!(
            (
                limits["rate_per_second"].as_u64(),
                limits["max_payload_bytes"].as_u64()
            ),
            (Some(5), Some(2048))
        );
        // null returns a limit to the server's default.
        let r = http
            .admin(
                &s,
                "PATCH",
                "/v1/admin/tenants/acme",
                r#"{"limits":{"max_payload_bytes":null}}"#,
            )
            .await;
        let limits = r.json()["limits"].clone();
        assert!(limits["max_payload_bytes"].is_null(), "{limits}");
        assert_eq!(limits["rate_per_second"], 5);
        // Zero would refuse everything: refused, naming the field.
        for body in [
            r#"{"limits":{"rate_per_second":0}}"#,
            r#"{"limits":{"rate_burst":0}}"#,
        ] {
            let p = http
                .admin(&s, "PATCH", "/v1/admin/tenants/acme", body)
                .await
                .problem(422, "validation_failed");
            assert!(
                p["errors"][0]["field"]
                    .as_str()
                    .expect("field")
                    .starts_with("limits."),
                "{p}"
            );
        }
        http.admin(
            &s,
            "POST",
            "/v1/admin/tenants",
            r#"{"name":"zero","limits":{"rate_per_second":0}}"#,
        )
        .await
        .problem(422, "validation_failed");
        http.admin(&s, "PATCH", "/v1/admin/tenants/nobody", r#"{"limits":{}}"#)
            .await
            .problem(404, "not_found");
    });
}

#[test]
fn config_typos_are_refused_naming_the_closest_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sluice.toml");
    std::fs::write(&file, "listne = \"127.0.0.1:0\"\n").expect("write");
    let data = dir.path().join("data");
    let out = common::run_to_exit(
        std::process::Command::new(common::binary())
            .args(["serve", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&data),
        std::time::Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"listne\"") && err.contains("\"listen\""),
        "{err}"
    );
    let out = common::run_to_exit(
        std::process::Command::new(common::binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("SLUICE_RETENTION_ACKED", "1d"),
        std::time::Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SLUICE_RETENTION_ACKED") && err.contains("SLUICE_RETENTION__ACKED"),
        "{err}"
    );
    // A backend no flag would take, set where the flag's own check does not reach.
    let out = common::run_to_exit(
        std::process::Command::new(common::binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("SLUICE_STORE", "natz"),
        std::time::Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("store must be embedded or nats (got \"natz\")"),
        "{err}"
    );
    assert!(
        !data.join("catalog.json").exists()
            || std::fs::read_dir(&data).map_or(true, |d| d.count() == 0),
        "nothing was created"
    );
}

#[test]
fn the_start_up_log_names_the_absolute_data_dir_version_and_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start_in(dir.path(), &[]);
    let log = s.wait_for_log("recovered the store", std::time::Duration::from_secs(10));
    assert!(
        s.log_text()
            .contains(&format!("sluice {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        s.log_text()
    );
    let abs = std::fs::canonicalize(dir.path()).expect("canonical");
    assert!(
        s.log_text().contains(&abs.display().to_string()),
        "{}",
        s.log_text()
    );
    assert!(
        log.contains("events") && log.contains("pending") && log.contains("ms"),
        "{log}"
    );
}

#[test]
fn metrics_and_the_sampled_access_log_say_who_and_where() {
    let s = Server::start(&["--access-log-sample", "1"]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        http.send("GET", &s.url("/v1/inbox"), &[], "")
            .await
            .problem(401, "unauthorized");
        let r = http.call(&s, &key, "GET", "/v1/inbox", "").await;
        assert_eq!(r.status, 200);
        let rid = r.header("x-request-id").expect("request id").to_owned();
        http.send("GET", &s.url("/no/such/path"), &[], "")
            .await
            .problem(404, "not_found");
        let m = http.send("GET", &s.url("/metrics"), &[], "").await;
        let text = String::from_utf8_lossy(&m.body).into_owned();
        for series in [
            // 401s under their route; separate method and route labels.
            r#"sluice_http_requests_total{method="GET",route="/v1/inbox",status="401"} 1"#,
            r#"sluice_http_requests_total{method="GET",route="/v1/inbox",status="200"} 1"#,
            r#"sluice_http_requests_total{method="other",route="unmatched",status="404"} 1"#,
            concat!(
                "sluice_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
            r#"sluice_inbox_oldest_pending_age_seconds{tenant="default",consumer="default"} 0.000"#,
        ] {
            assert!(text.contains(series), "missing {series}:\n{text}");
        }
        let rss: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.trim().parse().ok())
            .expect("rss");
        assert!(rss > 1e6, "rss {rss}");
        // The sampled access log line of the 200: its request id, tenant and route.
        let line = s.wait_for_log(&rid, std::time::Duration::from_secs(10));
        assert!(
            line.contains("route=\"/v1/inbox\"") || line.contains("route=/v1/inbox"),
            "{line}"
        );
        assert!(
            line.contains("tenant=1")
                && line.contains("status=200")
                && line.contains("elapsed_us="),
            "{line}"
        );
    });
}

#[test]
fn cors_preflights_before_auth_and_ratelimit_headers_follow_the_draft() {
    let s = Server::start(&["--cors-origins", "https://app.example"]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        // A preflight: no credentials, answered 204 for an allowed origin.
        let pre = |origin: &'static str| {
            let (http, url) = (http.clone(), s.url("/v1/events"));
            async move {
                http.send(
                    "OPTIONS",
                    &url,
                    &[
                        ("origin", origin),
                        ("access-control-request-method", "POST"),
                        (
                            "access-control-request-headers",
                            "authorization, content-type",
                        ),
                    ],
                    "",
                )
                .await
            }
        };
        let r = pre("https://app.example").await;
        assert_eq!(r.status, 204);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        assert!(r
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST")));
        assert!(r
            .header("access-control-allow-headers")
            .is_some_and(|h| h.contains("authorization")));
        // Another origin gets no CORS answer (and so the browser refuses).
        let r = pre("https://evil.example").await;
        assert!(r.header("access-control-allow-origin").is_none());
        assert_ne!(r.status, 204);
        // A real request from the allowed origin: the header, and what a script may read.
        let auth = format!("Bearer {key}");
        let r = http
            .send(
                "GET",
                &s.url("/v1/inbox"),
                &[("authorization", &auth), ("origin", "https://app.example")],
                "",
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        assert!(r
            .header("access-control-expose-headers")
            .is_some_and(|h| h.contains("x-request-id")));
        // RateLimit headers: the limit is the rate per 1 s window, with a policy header.
        assert_eq!(r.header("ratelimit-limit"), Some("100000"));
        assert_eq!(
            r.header("ratelimit-policy"),
            Some("100000;w=1;burst=200000")
        );
        let remaining: u64 = r
            .header("ratelimit-remaining")
            .expect("remaining")
            .parse()
            .expect("number");
        assert!(remaining <= 100_000);
    });
    // Off by default: no CORS header at all.
    let plain = Server::start(&[]);
    runtime().block_on(async {
        let r = Http::h1()
            .send(
                "GET",
                &plain.url("/v1/health"),
                &[("origin", "https://app.example")],
                "",
            )
            .await;
        assert!(r.header("access-control-allow-origin").is_none());
    });
}

#[test]
fn an_idempotent_retry_from_another_serializer_replays() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let auth = format!("Bearer {key}");
        let send = |body: &'static str, header: bool| {
            let (http, url, auth) = (http.clone(), s.url("/v1/events"), auth.clone());
            async move {
                let mut h = vec![("authorization", auth.as_str()), ("content-type", "application/json")];
                if header {
                    h.push(("idempotency-key", "order-7"));
                }
                http.send("POST", &url, &h, body).await
            }
        };
        let first = send(r#"{"event_type":"order.paid","payload":{"id":7,"lines":[{"sku":"a","n":1}]}}"#, true).await;
        assert_eq!(first.status, 201);
        let id = first.json()["event_id"].clone();
        // Key order, whitespace, and the key moved into the body: a replay of the same event.
        for (body, header) in [
            ("{ \"payload\" : { \"lines\" : [ { \"n\" : 1 , \"sku\" : \"a\" } ] , \"id\" : 7 } ,\n \"event_type\" : \"order.paid\" }", true),
            (r#"{"idempotency_key":"order-7","event_type":"order.paid","payload":{"lines":[{"sku":"a","n":1}],"id":7}}"#, false),
        ] {
            let r = send(body, header).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.header("idempotent-replayed"), Some("true"));
            assert_eq!(r.json()["event_id"], id);
        }
        // A different value is a different request: refused.
        send(r#"{"event_type":"order.paid","payload":{"id":7,"lines":[{"sku":"a","n":2}]}}"#, true)
            .await
            .problem(422, "idempotency_key_reused");
    });
}
