//! Counting outcomes and summarising them.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies above this (in µs) are recorded as this: a minute is "stuck", not data.
const LATENCY_US_MAX: u64 = 60_000_000;

/// One thread's (or the merged) outcomes.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of every answered request, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Connections that could not be opened.
    pub connect_errors: u64,
    /// Requests that failed on an open connection (reset, closed mid-answer).
    pub io_errors: u64,
    /// Requests without an answer within the timeout.
    pub timeouts: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            // Constant bounds that HdrHistogram accepts (low >= 1, high >= 2 * low,
            // 3 significant digits), so creation cannot fail.
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
                .expect("constant histogram bounds are valid"),
            statuses: BTreeMap::new(),
            connect_errors: 0,
            io_errors: 0,
            timeouts: 0,
        }
    }
}

impl Stats {
    /// Records an answer.
    pub fn answered(&mut self, status: u16, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        self.latency_us.saturating_record(us);
        *self.statuses.entry(status).or_default() += 1;
    }

    /// Adds another thread's stats.
    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.connect_errors += other.connect_errors;
        self.io_errors += other.io_errors;
        self.timeouts += other.timeouts;
    }
}

/// The summary of a run, as printed and as `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Workload name.
    pub workload: String,
    /// Connections.
    pub connections: usize,
    /// Target rate (open loop), or null (closed loop).
    pub rate: Option<u64>,
    /// Requests answered.
    pub requests: u64,
    /// Percentage of requests answered 2xx, of all attempted.
    pub success_pct: f64,
    /// Answers per second.
    pub req_per_s: f64,
    /// Events per second carried by 2xx answers.
    pub events_per_s: f64,
    /// Latency percentiles and maximum, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Connections that could not be opened.
    pub connect_errors: u64,
    /// Failures on open connections.
    pub io_errors: u64,
    /// Requests without an answer in time.
    pub timeouts: u64,
}

impl Report {
    /// Summarises merged stats of a run that lasted `elapsed`.
    pub fn new(
        stats: &Stats,
        elapsed: Duration,
        workload: &str,
        connections: usize,
        rate: Option<u64>,
        events_per_request: u64,
    ) -> Report {
        let requests: u64 = stats.statuses.values().sum();
        let ok: u64 = stats
            .statuses
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        let attempted = requests + stats.io_errors + stats.timeouts;
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ms = |q: f64| stats.latency_us.value_at_quantile(q) as f64 / 1000.0;
        Report {
            workload: workload.to_owned(),
            connections,
            rate,
            requests,
            success_pct: if attempted == 0 {
                0.0
            } else {
                100.0 * ok as f64 / attempted as f64
            },
            req_per_s: requests as f64 / secs,
            events_per_s: (ok * events_per_request) as f64 / secs,
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: stats.latency_us.max() as f64 / 1000.0,
            statuses: stats.statuses.clone(),
            connect_errors: stats.connect_errors,
            io_errors: stats.io_errors,
            timeouts: stats.timeouts,
        }
    }

    /// The header of [`Report::table_row`].
    pub fn table_header() -> String {
        format!(
            "{:>8} {:>8} {:>10} {:>8} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "workload",
            "conns",
            "requests",
            "success",
            "req/s",
            "events/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        )
    }

    /// One aligned table row.
    pub fn table_row(&self) -> String {
        format!(
            "{:>8} {:>8} {:>10} {:>7.2}% {:>10.0} {:>11.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            self.workload,
            self.connections,
            self.requests,
            self.success_pct,
            self.req_per_s,
            self.events_per_s,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms
        )
    }

    /// Everything that was not a 2xx, spelled out: nothing hides in an average.
    pub fn error_breakdown(&self) -> String {
        let mut parts: Vec<String> = self
            .statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        for (name, n) in [
            ("connect errors", self.connect_errors),
            ("resets/io errors", self.io_errors),
            ("timeouts", self.timeouts),
        ] {
            if n > 0 {
                parts.push(format!("{name}: {n}"));
            }
        }
        if parts.is_empty() {
            "errors: none".to_owned()
        } else {
            format!("errors: {}", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        // 1..=1000 ms, split over two threads' stats.
        for ms in 1..=1000u64 {
            let s = if ms % 2 == 0 { &mut a } else { &mut b };
            s.answered(
                if ms == 1000 { 503 } else { 201 },
                Duration::from_millis(ms),
            );
        }
        a.timeouts = 1;
        a.merge(&b);
        let r = Report::new(&a, Duration::from_secs(2), "ingest", 2, None, 1);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.002;
        assert!(close(r.p50_ms, 500.0), "{}", r.p50_ms);
        assert!(close(r.p90_ms, 900.0), "{}", r.p90_ms);
        assert!(close(r.p99_ms, 990.0), "{}", r.p99_ms);
        assert!(close(r.p999_ms, 999.0), "{}", r.p999_ms);
        assert!(close(r.max_ms, 1000.0), "{}", r.max_ms);
        assert_eq!(r.requests, 1000);
        assert_eq!(r.req_per_s, 500.0);
        assert_eq!(r.events_per_s, 999.0 / 2.0);
        // 999 successes out of 1001 attempts (one 503, one timeout).
        assert!((r.success_pct - 100.0 * 999.0 / 1001.0).abs() < 1e-9);
        assert_eq!(r.error_breakdown(), "errors: 503: 1, timeouts: 1");
    }
}
