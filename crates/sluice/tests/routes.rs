//! The route table, walked through the real binary: every route is documented in
//! `/openapi.json` at its own method and path, is reached (its handler answers, not the
//! router's 404 or 405), and is counted in `/metrics` under its own label.

mod common;

use common::{runtime, tenant_key, Http, Server, ADMIN_TOKEN};
use sluice_server::routes::ROUTES;

/// A concrete path for a route's pattern, with real values for its parameters.
fn concrete(pattern: &str, event: &str, key_id: &str) -> String {
    pattern
        .replace("{id}", event)
        .replace("{name}", "walker")
        .replace("{key_id}", key_id)
}

/// A body the route's handler can read (which one does not matter, only that the
/// handler, not the router, answers).
fn body_for(label: &str, event: &str) -> String {
    match label {
        "POST /v1/events" => common::event("walk", 1),
        "POST /v1/events/batch" => format!("[{}]", common::event("walk", 2)),
        "POST /v1/inbox/ack" => format!(r#"{{"event_ids":["{event}"]}}"#),
        "POST /v1/admin/tenants" => r#"{"name":"walked"}"#.into(),
        "PATCH /v1/admin/tenants/{name}" => r#"{"limits":{"rate_burst":500}}"#.into(),
        "POST /v1/admin/tenants/{name}/keys" => r#"{"scopes":["ingest"]}"#.into(),
        _ => String::new(),
    }
}

#[test]
fn every_route_is_documented_reached_and_counted() {
    let s = Server::start(&[]);
    let http = Http::h1();
    runtime().block_on(async {
        let key = tenant_key(&http, &s, "walker", &["ingest", "consume", "manage"], None).await;
        let spare = http
            .admin(
                &s,
                "POST",
                "/v1/admin/tenants/walker/keys",
                r#"{"scopes":["ingest"]}"#,
            )
            .await
            .json();
        let spare_id = spare["key_id"].as_str().expect("key id").to_owned();
        let event = http
            .call(&s, &key, "POST", "/v1/events", &common::event("walk", 0))
            .await
            .json()["event_id"]
            .as_str()
            .expect("event id")
            .to_owned();

        let doc = http.call(&s, &key, "GET", "/openapi.json", "").await.json();
        // Destructive routes last, so the walk keeps its key and its event.
        let mut order: Vec<_> = ROUTES.iter().collect();
        order.sort_by_key(|r| r.method == http::Method::DELETE);
        for route in order {
            let (methods, path, _) = (route.openapi)();
            assert_eq!(
                path, route.path,
                "{}: the operation documents another path",
                route.label
            );
            assert_eq!(methods.len(), 1, "{}", route.label);
            let method = route.method.as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][route.path][&method].is_object(),
                "{} is not in /openapi.json",
                route.label
            );
            let url = concrete(route.path, &event, &spare_id);
            let body = body_for(route.label, &event);
            let auth = if route.path.starts_with("/v1/admin") {
                format!("Bearer {ADMIN_TOKEN}")
            } else {
                format!("Bearer {key}")
            };
            let mut headers = vec![("authorization", auth.as_str())];
            // The live tail streams until the client leaves: reach it with a refusal
            // (a Last-Event-ID that names no event) so the walk does not wait on it.
            if route.path == "/v1/stream" {
                headers.push(("last-event-id", "not-an-id"));
            }
            if !body.is_empty() {
                headers.push(("content-type", "application/json"));
            }
            let r = http
                .send(route.method.as_str(), &s.url(&url), &headers, body)
                .await;
            let text = String::from_utf8_lossy(&r.body);
            assert!(
                r.status != 405 && !text.contains("no route for"),
                "{} was not routed to its handler: {} {text}",
                route.label,
                r.status
            );
            assert!(r.status < 500, "{}: {} {text}", route.label, r.status);
        }

        let metrics =
            String::from_utf8_lossy(&http.call(&s, &key, "GET", "/metrics", "").await.body)
                .into_owned();
        for route in ROUTES {
            let series = format!(
                "sluice_http_requests_total{{method=\"{}\",route=\"{}\",",
                route.method, route.path
            );
            assert!(
                metrics.contains(&series),
                "{} is not counted:\n{metrics}",
                route.label
            );
        }
    });
}
