//! Client-supplied ids and cursors resolve exactly, or not at all, through the real
//! binary.
//!
//! A property test over random events and random alterations of their ids: single
//! characters anywhere, and structural changes (the time part, the sequence or the salt
//! moved alone, case, length, order; see `sluice_store::conformance::mutate`). Every
//! altered id is a 404 on every route that takes an event id, and afterwards every real
//! event still has the state and delivery count it had. Another tenant's real ids behave
//! the same. Altered and foreign page cursors are a `400 invalid_cursor`.
//!
//! One server serves every case (starting one per case would make the test slow for
//! nothing); each case tags its events with its own type, so its leases only take its
//! own, and cases run one at a time (`Fixture::serial`), because an altered id may name
//! an event another case is creating meanwhile. Every id of our tenant is recorded, so
//! that an alteration that lands on one (the sequence moved onto a neighbour with the
//! same receive time) is skipped rather than mistaken for a leak.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use common::{runtime, tenant_key, Http, Server};
use proptest::prelude::*;
use sluice_store::conformance::mutate;
use sluice_store::EventId;

struct Fixture {
    server: Server,
    ours: String,
    theirs: String,
    rt: tokio::runtime::Runtime,
    case: AtomicUsize,
    /// Held by each case for its whole run.
    serial: Mutex<()>,
    /// Every id issued to our tenant so far.
    issued: Mutex<HashSet<String>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let server = Server::start(&[]);
        let rt = runtime();
        let http = Http::h1();
        let (ours, theirs) = rt.block_on(async {
            let ours = tenant_key(&http, &server, "ours", &["ingest", "consume"], None).await;
            let theirs = tenant_key(&http, &server, "theirs", &["ingest", "consume"], None).await;
            (ours, theirs)
        });
        Fixture {
            server,
            ours,
            theirs,
            rt,
            case: AtomicUsize::new(0),
            serial: Mutex::new(()),
            issued: Mutex::new(HashSet::new()),
        }
    })
}

/// Percent-encodes what a path segment cannot carry as is (altered ids may hold
/// spaces and other separators).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Ingests `n` events of type `ty` (one batch, or one request each), recording the
/// ids issued to our tenant.
async fn ingest(
    http: &Http,
    f: &Fixture,
    key: &str,
    ty: &str,
    n: usize,
    batch: bool,
) -> Vec<String> {
    let ids = ingest_unrecorded(http, f, key, ty, n, batch).await;
    if key == f.ours {
        f.issued.lock().expect("issued").extend(ids.iter().cloned());
    }
    ids
}

async fn ingest_unrecorded(
    http: &Http,
    f: &Fixture,
    key: &str,
    ty: &str,
    n: usize,
    batch: bool,
) -> Vec<String> {
    let s = &f.server;
    if batch {
        let items: Vec<String> = (0..n).map(|i| common::event(ty, i)).collect();
        let r = http
            .call(
                s,
                key,
                "POST",
                "/v1/events/batch",
                &format!("[{}]", items.join(",")),
            )
            .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|i| i["event_id"].as_str().expect("id").to_owned())
            .collect()
    } else {
        let mut ids = Vec::new();
        for i in 0..n {
            let r = http
                .call(s, key, "POST", "/v1/events", &common::event(ty, i))
                .await;
            assert_eq!(r.status, 201);
            ids.push(r.json()["event_id"].as_str().expect("id").to_owned());
        }
        ids
    }
}

/// Each id's (state, delivery_count) as its owner reads it.
async fn states(http: &Http, f: &Fixture, key: &str, ids: &[String]) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for id in ids {
        let r = http
            .call(&f.server, key, "GET", &format!("/v1/events/{id}"), "")
            .await;
        let e = r.json();
        assert_eq!(r.status, 200, "{e}");
        out.push((
            e["state"].as_str().expect("state").to_owned(),
            e["delivery_count"].as_u64().expect("count"),
        ));
    }
    out
}

/// Every id route must answer `text` (an id that names none of our events) as unknown.
async fn assert_unknown_everywhere(http: &Http, f: &Fixture, text: &str) {
    let s = &f.server;
    let key = &f.ours;
    let seg = path_segment(text);
    for (method, path) in [
        ("GET", format!("/v1/events/{seg}")),
        ("POST", format!("/v1/events/{seg}/ack")),
        ("DELETE", format!("/v1/events/{seg}")),
    ] {
        let r = http.call(s, key, method, &path, "").await;
        assert_eq!(
            r.status,
            404,
            "{method} {path} ({text:?}): {}",
            String::from_utf8_lossy(&r.body)
        );
        r.problem(404, "not_found");
    }
    let body = serde_json::json!({ "event_ids": [text] }).to_string();
    let r = http.call(s, key, "POST", "/v1/inbox/ack", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["results"][0]["status"], "not_found", "{text}: {j}");
    assert_eq!(j["acked"], 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// See the module docs.
    #[test]
    fn altered_event_ids_are_404_and_change_nothing(
        singles in 1..4usize,
        batch in 1..6usize,
        leased in 0..4usize,
        seeds in proptest::collection::vec(any::<u64>(), 4),
    ) {
        let f = fixture();
        let _serial = f.serial.lock().unwrap_or_else(|e| e.into_inner());
        let http = Http::h1();
        let case = f.case.fetch_add(1, Ordering::Relaxed);
        let ty = format!("case{case}.t");
        f.rt.block_on(async {
            let mut ours = ingest(&http, f, &f.ours, &ty, singles, false).await;
            ours.extend(ingest(&http, f, &f.ours, &ty, batch, true).await);
            let theirs = ingest(&http, f, &f.theirs, &ty, 2, false).await;
            // Some leased (delivery count 1), one acked, so states differ.
            if leased > 0 {
                let r = http.call(&f.server, &f.ours, "GET",
                    &format!("/v1/inbox?event_type={ty}&limit={leased}&lease_seconds=300"), "").await;
                assert_eq!(r.json()["events"].as_array().expect("events").len(), leased.min(ours.len()));
            }
            let r = http.call(&f.server, &f.ours, "POST", &format!("/v1/events/{}/ack", ours[ours.len() - 1]), "").await;
            assert_eq!(r.status, 200);

            let before = states(&http, f, &f.ours, &ours).await;
            let before_theirs = states(&http, f, &f.theirs, &theirs).await;
            let mut tried = 0;
            for (n, id) in ours.iter().enumerate() {
                let parsed = EventId::parse(id).expect("a real id parses");
                for text in mutate::variants(parsed, seeds[n % seeds.len()] ^ n as u64, 6) {
                    if f.issued.lock().expect("issued").contains(&text) {
                        continue; // the sequence moved onto a neighbour of the same batch
                    }
                    tried += 1;
                    assert_unknown_everywhere(&http, f, &text).await;
                }
            }
            for id in &theirs {
                assert_unknown_everywhere(&http, f, id).await;
            }
            assert!(tried > 0);
            assert_eq!(states(&http, f, &f.ours, &ours).await, before, "one of our events changed");
            assert_eq!(states(&http, f, &f.theirs, &theirs).await, before_theirs, "one of theirs changed");
        });
    }

    /// A cursor altered in any way, or another tenant's, is a 400 `invalid_cursor`;
    /// the unaltered one still pages on.
    #[test]
    fn altered_cursors_are_400(at in 0..31usize, with in proptest::sample::select(b"AQgw09-_x=.".to_vec()), cut in 1..30usize) {
        let f = fixture();
        let _serial = f.serial.lock().unwrap_or_else(|e| e.into_inner());
        let http = Http::h1();
        let case = f.case.fetch_add(1, Ordering::Relaxed);
        let ty = format!("cur{case}.t");
        f.rt.block_on(async {
            let s = &f.server;
            ingest(&http, f, &f.ours, &ty, 3, true).await;
            ingest(&http, f, &f.theirs, &ty, 3, true).await;
            let page = |key: String, cursor: String| {
                let http = http.clone();
                let ty = ty.clone();
                async move {
                    http.call(s, &key, "GET", &format!("/v1/inbox?event_type={ty}&limit=1&cursor={}", path_segment(&cursor)), "").await
                }
            };
            let first = page(f.ours.clone(), String::new()).await.json();
            let cursor = first["next_cursor"].as_str().expect("cursor").to_owned();
            let theirs = page(f.theirs.clone(), String::new()).await.json()["next_cursor"].as_str().expect("cursor").to_owned();

            let mut bytes = cursor.clone().into_bytes();
            let last = bytes.len() - 1;
            bytes[at.min(last)] = with;
            let substituted = String::from_utf8(bytes).expect("ascii");
            let mut altered = vec![cursor[..cut.min(cursor.len() - 1)].to_owned(), format!("{cursor}A"), theirs];
            if substituted != cursor {
                altered.push(substituted);
            }
            for bad in altered {
                let r = page(f.ours.clone(), bad.clone()).await;
                let p = r.problem(400, "invalid_cursor");
                assert!(p["detail"].as_str().expect("detail").contains("next_cursor"), "{bad}: {p}");
            }
            let next = page(f.ours.clone(), cursor).await;
            assert_eq!(next.status, 200);
            assert_eq!(next.json()["events"].as_array().expect("events").len(), 1);
        });
    }
}
