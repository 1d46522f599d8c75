//! The offline CLI: tenants, keys, check, inspect, and the data-directory lock.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{binary, event, run_to_exit, runtime, Http, Server};

fn sluice(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    let out = run_to_exit(
        Command::new(binary()).args(args).arg("--data-dir").arg(dir),
        Duration::from_secs(60),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tenants_keys_check_and_inspect_on_a_stopped_data_directory() {
    let mut s = Server::start(&[]);
    let dir = s.dir.clone();
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        for i in 0..3 {
            assert_eq!(
                http.call(&s, &key, "POST", "/v1/events", &event("cli", i))
                    .await
                    .status,
                201
            );
        }
    });
    // A running server owns the directory.
    let (ok, _, err) = sluice(&["tenants", "create", "blocked"], &dir);
    assert!(
        !ok && err.contains("in use by another Sluice process"),
        "{err}"
    );
    assert!(s.terminate().success());

    let (ok, out, err) = sluice(
        &["tenants", "create", "acme", "--rate-per-second", "50"],
        &dir,
    );
    assert!(ok, "{err}");
    assert!(out.contains("created tenant \"acme\""));
    let (ok, out, _) = sluice(&["tenants", "list"], &dir);
    assert!(
        ok && out.contains("acme") && out.contains("default"),
        "{out}"
    );
    let (ok, new_key, err) = sluice(
        &["keys", "create", "--tenant", "acme", "--scopes", "ingest"],
        &dir,
    );
    assert!(ok, "{err}");
    let new_key = new_key.trim().to_owned();
    assert!(new_key.starts_with("sk_"));
    let (ok, listing, _) = sluice(&["keys", "list", "--tenant", "acme"], &dir);
    assert!(
        ok && !listing.contains(&new_key),
        "secrets are never listed"
    );
    let key_id = listing
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("a key row")
        .to_owned();

    let (ok, out, _) = sluice(&["check"], &dir);
    assert!(ok && out.contains("3 events checked"), "{out}");
    let (ok, out, _) = sluice(&["inspect"], &dir);
    assert!(
        ok && out.contains("3 events") && out.contains("2 tenants"),
        "{out}"
    );

    // The new key works on the restarted server; after revocation it does not.
    let s = Server::start_in(&dir, &[]);
    runtime().block_on(async {
        let http = Http::h1();
        assert_eq!(
            http.call(&s, &new_key, "POST", "/v1/events", &event("acme", 1))
                .await
                .status,
            201
        );
    });
    drop(s);
    let (ok, _, err) = sluice(&["keys", "revoke", &key_id], &dir);
    assert!(ok, "{err}");
    let s = Server::start_in(&dir, &[]);
    runtime().block_on(async {
        Http::h1()
            .call(&s, &new_key, "POST", "/v1/events", &event("acme", 2))
            .await
            .problem(401, "unauthorized");
    });
}

#[test]
fn corruption_is_reported_by_check_scrub_and_readiness_then_repaired() {
    let mut s = Server::start(&["--segment-bytes", "65536"]);
    let dir = s.dir.clone();
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        for i in 0..400 {
            let body = format!(
                r#"{{"event_type":"c","payload":{{"n":{i},"pad":"{}"}}}}"#,
                "x".repeat(300)
            );
            assert_eq!(
                http.call(&s, &key, "POST", "/v1/events", &body)
                    .await
                    .status,
                201
            );
        }
    });
    assert!(s.terminate().success());
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 2, "expected a sealed segment");
    let victim = segments[0].clone();
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[200] ^= 0xFF;
    std::fs::write(&victim, bytes).expect("write");

    let (ok, out, _) = sluice(&["check"], &dir);
    assert!(!ok, "check must fail on corruption");
    assert!(
        out.contains("CORRUPT") && out.contains(&victim.display().to_string()),
        "{out}"
    );

    // Opened from its checkpoint, the server reports the damage and is not ready.
    let s = Server::start_in(&dir, &[]);
    let line = s.wait_for_log("corrupt sealed segment", Duration::from_secs(60));
    assert!(line.contains(&victim.display().to_string()), "{line}");
    runtime().block_on(async {
        let r = Http::h1().send("GET", &s.url("/v1/ready"), &[], "").await;
        r.problem(503, "storage_unavailable");
    });
    drop(s);

    // Without the checkpoint, the server refuses to start and says what to do.
    std::fs::remove_file(victim.with_extension("idx")).expect("remove checkpoint");
    let refused = run_to_exit(
        Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir),
        Duration::from_secs(60),
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("corrupt data in") && err.contains("--repair"),
        "{err}"
    );

    let repaired = Server::start_in(&dir, &["--repair"]);
    repaired.wait_for_log("repair: segment truncated", Duration::from_secs(10));
    runtime().block_on(async {
        assert_eq!(
            Http::h1()
                .send("GET", &repaired.url("/v1/ready"), &[], "")
                .await
                .status,
            200
        );
    });
}
