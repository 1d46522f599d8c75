//! Random requests against the real server, over HTTP/1.1 and h2c.
//!
//! The API tests send each refusal on purpose. These send what nobody wrote by hand:
//! random methods on real and made-up paths, with keys that are valid, wrong or missing,
//! odd content types and headers, and bodies that are valid, mangled or junk. Whatever
//! arrives, the server must answer it (no dropped connection), never with a 500, and
//! every refusal must be a problem+json whose `code` is one of the stable codes with
//! the status the README gives it. At the end the server must still be up, still
//! serving, and must not have logged a panic.
//!
//! The run is seeded: a failure prints the seed, and `SLUICE_RANDOM_SEED=<seed>`
//! repeats it.

mod common;

use common::{runtime, Http, Reply, Server, ADMIN_TOKEN};

const REQUESTS: usize = 1_200;

/// The stable codes and the status each is sent with (the README's "Error codes").
const CODES: &[(&str, u16)] = &[
    ("malformed_json", 400),
    ("validation_failed", 422),
    ("invalid_cursor", 400),
    ("unauthorized", 401),
    ("forbidden", 403),
    ("not_found", 404),
    ("method_not_allowed", 405),
    ("request_timeout", 408),
    ("payload_too_large", 413),
    ("unsupported_media_type", 415),
    ("idempotency_key_reused", 422),
    ("rate_limited", 429),
    ("overloaded", 503),
    ("too_many_connections", 503),
    ("storage_full", 507),
    ("storage_unavailable", 503),
    ("storage_unconfirmed", 503),
    ("conflict", 409),
];

/// xorshift64*: enough randomness for picking cases, and reproducible from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A path segment of URI-safe junk, sometimes percent-encoded bytes.
fn junk(rng: &mut Rng) -> String {
    const SAFE: &[u8] = b"abcXYZ019._~-";
    let len = rng.below(12);
    (0..len)
        .map(|_| {
            if rng.chance(15) {
                format!("%{:02X}", rng.next() as u8)
            } else {
                (*rng.pick(SAFE) as char).to_string()
            }
        })
        .collect()
}

fn event_id(rng: &mut Rng, known: &[String]) -> String {
    const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    match rng.below(4) {
        0 if !known.is_empty() => rng.pick(known).clone(),
        1 => format!(
            "evt_{}",
            (0..26)
                .map(|_| *rng.pick(CROCKFORD) as char)
                .collect::<String>()
        ),
        2 => "evt_ZZZZZZZZZZZZZZZZZZZZZZZZZZ".to_owned(),
        _ => junk(rng),
    }
}

fn query(rng: &mut Rng) -> String {
    let keys = ["limit", "cursor", "event_type", "lease_seconds", "junk"];
    let values = [
        "1",
        "0",
        "100",
        "1001",
        "-1",
        "",
        "99999999999999999999",
        "a.b",
        "%FF",
        "43201",
    ];
    (0..rng.below(4))
        .map(|_| format!("{}={}", rng.pick(&keys), rng.pick(&values)))
        .collect::<Vec<_>>()
        .join("&")
}

fn path(rng: &mut Rng, known: &[String]) -> String {
    let id = event_id(rng, known);
    match rng.below(17) {
        0..=2 => "/v1/events".to_owned(),
        3 | 4 => "/v1/events/batch".to_owned(),
        5 => format!("/v1/events/{id}"),
        6 => format!("/v1/events/{id}/ack"),
        7 | 8 => format!("/v1/inbox?{}", query(rng)),
        9 => "/v1/inbox/ack".to_owned(),
        10 => rng
            .pick(&["/v1/health", "/v1/ready", "/metrics", "/openapi.json"])
            .to_string(),
        11 => "/v1/admin/tenants".to_owned(),
        12 => format!("/v1/admin/tenants/{}", rng.pick(&["default", "t1", "nope"])),
        13 => format!("/v1/admin/tenants/{}/keys", rng.pick(&["default", "t1"])),
        14 => format!("/v1/admin/keys/{}", junk(rng)),
        15 => format!("/{}", junk(rng)),
        _ => format!(
            "/v1/{}/{}/{}/{}/{}",
            junk(rng),
            junk(rng),
            junk(rng),
            junk(rng),
            junk(rng)
        ),
    }
}

/// What a body holds, before it is maybe broken.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Empty,
    Event,
    Batch,
    Ndjson,
    Ack,
    Tenant,
    Key,
    Junk,
}

const KINDS: &[Kind] = &[
    Kind::Empty,
    Kind::Event,
    Kind::Event,
    Kind::Batch,
    Kind::Ndjson,
    Kind::Ack,
    Kind::Tenant,
    Kind::Key,
    Kind::Junk,
];

/// A body of `kind`, broken three times in ten.
fn body(rng: &mut Rng, kind: Kind, known: &[String]) -> Vec<u8> {
    let valid = match kind {
        Kind::Empty => String::new(),
        Kind::Event => format!(
            r#"{{"event_type":"{}","payload":{{"n":{}}}}}"#,
            rng.pick(&["order.created", "order.created", "a b", ""]),
            rng.next() % 1000
        ),
        Kind::Batch => format!(
            r#"[{{"event_type":"a","payload":{{}}}},{{"event_type":"b","payload":[1]}},{{"event_type":"c","payload":{{}},"idempotency_key":"k{}"}}]"#,
            rng.below(3)
        ),
        Kind::Ndjson => {
            "{\"event_type\":\"a\",\"payload\":{}}\n{\"event_type\":\"b\",\"payload\":{}}\n"
                .to_owned()
        }
        Kind::Ack => format!(
            r#"{{"event_ids":["{}","{}"]}}"#,
            event_id(rng, known),
            event_id(rng, known)
        ),
        Kind::Tenant => format!(
            r#"{{"name":"t{}","limits":{{"rate_per_second":{}}}}}"#,
            rng.below(3),
            rng.pick(&["10", "0", "-5", "\"x\""])
        ),
        Kind::Key => format!(
            r#"{{"scopes":["{}"]}}"#,
            rng.pick(&["ingest", "consume", "admin", "root"])
        ),
        Kind::Junk => {
            let n = rng.below(64);
            return (0..n).map(|_| rng.next() as u8).collect();
        }
    };
    let mut bytes = valid.into_bytes();
    if !bytes.is_empty() && rng.chance(30) {
        let at = rng.below(bytes.len());
        match rng.below(3) {
            0 => bytes.truncate(at),
            1 => bytes[at] = *rng.pick(b"\"\\{}[],:\xff\x00"),
            _ => bytes.insert(at, *rng.pick(b"\"\\{}[],:\xff\x00")),
        }
    }
    bytes
}

/// Who a request claims to be.
#[derive(Debug, Clone, Copy)]
enum Auth {
    Nobody,
    WrongKey,
    Basic,
    Key,
    Admin,
}

/// A request shaped like a real client's: the route's method, credentials and content
/// type, with a body of the route's kind (which `body` still breaks now and then). These
/// get past authentication and content negotiation to the handlers' own checks.
fn coherent(rng: &mut Rng, known: &[String]) -> (&'static str, String, Auth, &'static str, Kind) {
    let id = event_id(rng, known);
    match rng.below(10) {
        0..=2 => (
            "POST",
            "/v1/events".into(),
            Auth::Key,
            "application/json",
            Kind::Event,
        ),
        3 => (
            "POST",
            "/v1/events/batch".into(),
            Auth::Key,
            "application/json",
            Kind::Batch,
        ),
        4 => (
            "POST",
            "/v1/events/batch".into(),
            Auth::Key,
            "application/x-ndjson",
            Kind::Ndjson,
        ),
        5 => (
            "GET",
            format!("/v1/inbox?{}", query(rng)),
            Auth::Key,
            "",
            Kind::Empty,
        ),
        6 => (
            "POST",
            "/v1/inbox/ack".into(),
            Auth::Key,
            "application/json",
            Kind::Ack,
        ),
        7 => {
            let (method, path) = *rng.pick(&[("GET", ""), ("POST", "/ack"), ("DELETE", "")]);
            (
                method,
                format!("/v1/events/{id}{path}"),
                Auth::Key,
                "",
                Kind::Empty,
            )
        }
        8 => (
            "POST",
            "/v1/admin/tenants".into(),
            Auth::Admin,
            "application/json",
            Kind::Tenant,
        ),
        _ => (
            "POST",
            format!(
                "/v1/admin/tenants/{}/keys",
                rng.pick(&["default", "t1", "t2"])
            ),
            Auth::Admin,
            "application/json",
            Kind::Key,
        ),
    }
}

fn check(reply: &Reply, what: &str) {
    assert_ne!(
        reply.status,
        500,
        "{what}: a 500: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(
        reply.header("x-request-id").is_some(),
        "{what}: no X-Request-Id"
    );
    if reply.status < 400 {
        return;
    }
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{what}: a {} that is not a problem",
        reply.status
    );
    let problem: serde_json::Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("{what}: problem body is not JSON ({e})"));
    let code = problem["code"].as_str().unwrap_or("");
    let expected = CODES.iter().find(|(c, _)| *c == code).map(|(_, s)| *s);
    assert_eq!(
        expected,
        Some(reply.status),
        "{what}: code {code:?} with status {}: {problem}",
        reply.status
    );
    assert_eq!(problem["status"], reply.status, "{what}: {problem}");
    if reply.status == 405 {
        assert!(reply.header("allow").is_some(), "{what}: 405 without Allow");
    }
    if matches!(reply.status, 429 | 503) {
        assert!(
            reply.header("retry-after").is_some(),
            "{what}: {} without Retry-After",
            reply.status
        );
    }
}

#[test]
fn random_requests_get_answers_and_problems_never_500s() {
    let seed = std::env::var("SLUICE_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("random requests: seed {seed} (SLUICE_RANDOM_SEED to repeat)");
    let mut rng = Rng(seed);
    let mut s = Server::start(&[]);
    let key = s.key().to_owned();
    let (h1, h2) = (Http::h1(), Http::h2c());
    let mut known: Vec<String> = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut recent: Vec<String> = Vec::new();
    runtime().block_on(async {
        for n in 0..REQUESTS {
            let (method, path, auth, content_type, kind) = if rng.chance(50) {
                coherent(&mut rng, &known)
            } else {
                (
                    *rng.pick(&[
                        "GET", "GET", "POST", "POST", "POST", "DELETE", "PUT", "PATCH",
                    ]),
                    path(&mut rng, &known),
                    *rng.pick(&[
                        Auth::Nobody,
                        Auth::WrongKey,
                        Auth::Basic,
                        Auth::Key,
                        Auth::Admin,
                    ]),
                    *rng.pick(&[
                        "",
                        "application/json",
                        "application/json; charset=utf-8",
                        "application/x-ndjson",
                        "text/plain",
                        "application/problem+json",
                    ]),
                    *rng.pick(KINDS),
                )
            };
            let auth = match auth {
                Auth::Nobody => None,
                Auth::WrongKey => Some("Bearer sk_wrong".to_owned()),
                Auth::Basic => Some("Basic dXNlcjpwYXNz".to_owned()),
                Auth::Key => Some(format!("Bearer {key}")),
                Auth::Admin => Some(format!("Bearer {ADMIN_TOKEN}")),
            };
            let mut headers: Vec<(&str, String)> = Vec::new();
            if let Some(a) = &auth {
                headers.push(("authorization", a.clone()));
            }
            if !content_type.is_empty() {
                headers.push(("content-type", content_type.to_owned()));
            }
            if rng.chance(10) {
                headers.push(("idempotency-key", format!("key-{}", rng.below(4))));
            }
            if rng.chance(5) {
                let id = rng.pick(&["mine-1", "", "a b"]).to_string();
                if !id.is_empty() {
                    headers.push(("x-request-id", id));
                }
            }
            let mut bytes = body(&mut rng, kind, &known);
            if rng.chance(5) {
                // Over the 1 MiB default body limit: a 413, or whatever refusal comes
                // first, answered without a reset and without spoiling the connection
                // for the next request.
                bytes = vec![b' '; (1 << 20) + 1];
            }
            let header_refs: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let what = format!(
                "request {n} (seed {seed}): {method} {path} {header_refs:?} body {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
            );
            let http = if rng.chance(30) { &h2 } else { &h1 };
            let reply = http
                .try_send(method, &s.url(&path), &header_refs, bytes)
                .await
                .unwrap_or_else(|e| {
                    panic!("{what}: no answer: {e}\nbefore it:\n{}", recent.join("\n"))
                });
            check(&reply, &what);
            recent.push(format!(
                "{what} -> {} {:?}",
                reply.status,
                reply.headers.get("connection")
            ));
            if recent.len() > 6 {
                recent.remove(0);
            }
            *statuses.entry(reply.status).or_default() += 1;
            if reply.status == 201 && path == "/v1/events" {
                if let Some(id) = serde_json::from_slice::<serde_json::Value>(&reply.body)
                    .ok()
                    .and_then(|v| v["event_id"].as_str().map(str::to_owned))
                {
                    known.push(id);
                }
            }
        }
        // Still serving.
        let health = h1.send("GET", &s.url("/v1/health"), &[], "").await;
        assert_eq!(health.status, 200);
    });
    println!("random requests: statuses {statuses:?}");
    // The random mix must reach both sides: accepted requests and refusals.
    assert!(statuses.keys().any(|s| *s < 300), "{statuses:?}");
    assert!(
        statuses.keys().filter(|s| **s >= 400).count() >= 5,
        "{statuses:?}"
    );
    assert!(
        s.child
            .try_wait()
            .map(|exit| exit.is_none())
            .unwrap_or(false),
        "the server exited"
    );
    let log = s.log_text();
    assert!(
        !log.contains("panicked"),
        "the server logged a panic:\n{log}"
    );
    s.terminate();
}
