//! `sluice bench` against the real server: each workload's counts must agree with what
//! the server stored. Performance is never asserted here (that is `bench/suite.sh`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{binary, run_to_exit, runtime, Http, Server};
use serde_json::Value;

/// Runs `sluice bench` with `args` against `s` and returns its `--json` output.
fn bench(s: &Server, args: &[&str]) -> Value {
    let out = run_to_exit(
        Command::new(binary())
            .arg("bench")
            .args(["--url", &s.url(""), "--api-key", s.key(), "--json"])
            .args(args),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sluice bench {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn count(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {report}"))
}

fn status(report: &Value, code: &str) -> u64 {
    report["statuses"][code].as_u64().unwrap_or(0)
}

fn no_errors(report: &Value) {
    assert_eq!(report["success_pct"], 100.0, "{report}");
    for field in ["connect_errors", "io_errors", "timeouts", "invalid_answers"] {
        assert_eq!(count(report, field), 0, "{field}: {report}");
    }
}

fn pending(s: &Server) -> usize {
    runtime().block_on(async {
        let r = Http::h1()
            .call(s, s.key(), "GET", "/v1/inbox?limit=1000", "")
            .await;
        assert_eq!(r.status, 200);
        r.json()["events"].as_array().expect("events").len()
    })
}

#[test]
fn one_idempotency_key_makes_one_event_and_every_repeat_is_a_replay() {
    let s = Server::start(&[]);
    let report = bench(
        &s,
        &[
            "--workload",
            "ingest",
            "--connections",
            "4",
            "--duration",
            "500ms",
            "--key-ratio",
            "1",
            "--key-space",
            "1",
        ],
    );
    no_errors(&report);
    let requests = count(&report, "requests");
    assert!(requests > 10, "{report}");
    assert_eq!(status(&report, "201"), 1, "{report}");
    assert_eq!(status(&report, "200"), requests - 1, "{report}");
    assert_eq!(pending(&s), 1);
}

#[test]
fn mixed_then_consume_hands_out_every_ingested_event_exactly_once() {
    let s = Server::start(&[]);
    let mixed = bench(
        &s,
        &[
            "--workload",
            "mixed",
            "--connections",
            "6",
            "--consumers",
            "2",
            "--duration",
            "1s",
            "--batch-size",
            "10",
        ],
    );
    no_errors(&mixed);
    // Producers' answers are the only 201s; polls and acks answer 200.
    let ingested = count(&mixed, "events");
    assert_eq!(status(&mixed, "201"), ingested, "{mixed}");
    assert!(ingested > 0 && count(&mixed, "consumed") > 0, "{mixed}");
    // A fresh inbox: every event consumed was this run's own, and timed.
    assert_eq!(count(&mixed, "consumed_older"), 0, "{mixed}");
    let e2e = &mixed["end_to_end_ms"];
    assert!(e2e["p50"].as_f64().is_some_and(|p| p > 0.0), "{mixed}");
    // Every poll was acked before the run ended, so the rest are pending, unleased.
    let rest = bench(
        &s,
        &[
            "--workload",
            "consume",
            "--connections",
            "2",
            "--duration",
            "500ms",
        ],
    );
    no_errors(&rest);
    assert_eq!(
        count(&mixed, "consumed") + count(&rest, "consumed"),
        ingested,
        "mixed: {mixed}\nconsume: {rest}"
    );
    assert!(count(&rest, "empty_polls") > 0, "drained: {rest}");
    // What the second run consumed came from the first: none of it is its own.
    assert_eq!(
        count(&rest, "consumed_older"),
        count(&rest, "consumed"),
        "{rest}"
    );
    assert_eq!(pending(&s), 0);
}

#[test]
fn a_sweep_over_http2_prints_every_point_and_draws_the_plot() {
    let s = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("sweep.svg");
    let svg_arg = svg.to_str().expect("utf-8 path");
    let report = bench(
        &s,
        &[
            "--workload",
            "batch",
            "--batch-size",
            "5",
            "--protocol",
            "http2",
            "--streams",
            "3",
            "--duration",
            "300ms",
            "--sweep",
            "1,2,4",
            "--plot",
            svg_arg,
        ],
    );
    let points = report.as_array().expect("a sweep reports an array");
    let connections: Vec<u64> = points.iter().map(|r| count(r, "connections")).collect();
    assert_eq!(connections, [1, 2, 4]);
    let mut stored = 0;
    for r in points {
        no_errors(r);
        assert_eq!(r["protocol"], "http2");
        assert_eq!(count(r, "events"), 5 * status(r, "201"), "{r}");
        stored += count(r, "events");
    }
    assert!(stored > 0);
    let plot = std::fs::read_to_string(&svg).expect("the plot was written");
    assert!(plot.starts_with("<svg"), "{}", &plot[..100.min(plot.len())]);
    for caption in [
        "throughput (events/s)",
        "latency (ms, log scale)",
        "success",
    ] {
        assert!(plot.contains(caption), "{caption} missing");
    }
    // One marker per point on each of the four lines (throughput, p99, p50, success).
    assert!(plot.matches("<circle").count() >= 4 * 3, "markers missing");
}

#[test]
fn impossible_requests_are_refused_before_any_load() {
    let s = Server::start(&[]);
    for (args, needle) in [
        (&["--connections", "100000000"][..], "open files"),
        (&["--plot", "x.svg"][..], "--sweep"),
        (
            &["--workload", "mixed", "--connections", "1"][..],
            "at least 2 connections",
        ),
        (&["--key-ratio", "2"][..], "--key-ratio"),
    ] {
        let out = run_to_exit(
            Command::new(binary())
                .arg("bench")
                .args(["--url", &s.url(""), "--duration", "100ms"])
                .args(args),
            Duration::from_secs(30),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_run_whose_requests_failed_exits_non_zero() {
    let s = Server::start(&[]);
    let run = |min: Option<&str>| {
        let mut cmd = Command::new(binary());
        cmd.arg("bench").args([
            "--url",
            &s.url(""),
            "--api-key",
            "sk_wrong",
            "--duration",
            "1s",
            "--connections",
            "2",
        ]);
        if let Some(m) = min {
            cmd.args(["--min-success", m]);
        }
        run_to_exit(&mut cmd, Duration::from_secs(60))
    };
    let out = run(None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("below --min-success 100"), "{err}");
    // The hint about the key is still printed.
    assert!(String::from_utf8_lossy(&out.stdout).contains("check --api-key"));
    // A script that accepts failures says so.
    assert_eq!(run(Some("0")).status.code(), Some(0));
}
