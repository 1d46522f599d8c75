//! Counting outcomes and summarising them.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies above this (in µs) are recorded as this: a minute is "stuck", not data.
const LATENCY_US_MAX: u64 = 60_000_000;

fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that HdrHistogram accepts (low >= 1, high >= 2 * low, 3
    // significant digits), so creation cannot fail.
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("constant histogram bounds are valid")
}

fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let us = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
    histogram.saturating_record(us);
}

/// Everything a run counts besides statuses and latencies: added up across threads and
/// reported as is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Events ingested (carried by producers' 2xx answers).
    pub events: u64,
    /// Events acked by consumers (a 2xx ack).
    pub consumed: u64,
    /// Inbox polls that found nothing to consume.
    pub empty_polls: u64,
    /// Events consumed that this run did not produce: a backlog drained first, which
    /// the ingest→consume latency of the mixed workload then includes.
    pub consumed_older: u64,
    /// Connections that could not be opened.
    pub connect_errors: u64,
    /// Requests that failed on an open connection (reset, closed mid-answer).
    pub io_errors: u64,
    /// Requests without an answer within the timeout.
    pub timeouts: u64,
    /// 2xx answers whose body was not what the API promises (an inbox listing).
    pub invalid_answers: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.events += other.events;
        self.consumed += other.consumed;
        self.empty_polls += other.empty_polls;
        self.consumed_older += other.consumed_older;
        self.connect_errors += other.connect_errors;
        self.io_errors += other.io_errors;
        self.timeouts += other.timeouts;
        self.invalid_answers += other.invalid_answers;
    }
}

/// One thread's (or the merged) outcomes.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of every answered request, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Ingest→consume latency of every consumed event that carried its send time.
    pub end_to_end_us: Histogram<u64>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// The rest of what was counted.
    pub counts: Counts,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency_us: latency_histogram(),
            end_to_end_us: latency_histogram(),
            statuses: BTreeMap::new(),
            counts: Counts::default(),
        }
    }
}

impl Stats {
    /// Records an answer.
    pub fn answered(&mut self, status: u16, latency: Duration) {
        record(&mut self.latency_us, latency);
        *self.statuses.entry(status).or_default() += 1;
    }

    /// Records one event's time from its intended send to its consumption.
    pub fn consumed(&mut self, end_to_end: Duration) {
        record(&mut self.end_to_end_us, end_to_end);
    }

    /// Adds another thread's stats.
    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.end_to_end_us.add(&other.end_to_end_us);
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.counts.add(&other.counts);
    }
}

/// Percentiles and maximum of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Percentiles {
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: histogram.max() as f64 / 1000.0,
        }
    }
}

/// What a run was, for its report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunShape {
    /// Workload name.
    pub workload: &'static str,
    /// `http1` or `http2`.
    pub protocol: &'static str,
    /// Connections.
    pub connections: usize,
    /// Target rate (open loop), or null (closed loop).
    pub rate: Option<u64>,
}

/// The summary of a run, as printed and as `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What was run.
    #[serde(flatten)]
    pub shape: RunShape,
    /// Seconds the load ran.
    pub elapsed_s: f64,
    /// Requests answered.
    pub requests: u64,
    /// Percentage of requests answered 2xx, of all attempted.
    pub success_pct: f64,
    /// Answers per second.
    pub req_per_s: f64,
    /// Events per second ingested (2xx producer answers); for `consume`, acked.
    pub events_per_s: f64,
    /// Events per second acked by consumers (`consume` and `mixed`).
    pub consumed_per_s: f64,
    /// Request latency (from the intended send time in open loop).
    pub latency_ms: Percentiles,
    /// Ingest→consume latency per event, for the mixed workload.
    pub end_to_end_ms: Option<Percentiles>,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Events, consumer polls and failures, as counted.
    #[serde(flatten)]
    pub counts: Counts,
}

impl Report {
    /// Summarises merged stats of a run that lasted `elapsed`.
    pub fn new(stats: &Stats, elapsed: Duration, shape: RunShape) -> Report {
        let requests: u64 = stats.statuses.values().sum();
        let ok: u64 = stats
            .statuses
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        let c = stats.counts;
        let attempted = requests + c.io_errors + c.timeouts;
        let secs = elapsed.as_secs_f64().max(1e-9);
        let events = if shape.workload == "consume" {
            c.consumed
        } else {
            c.events
        };
        Report {
            shape,
            elapsed_s: elapsed.as_secs_f64(),
            requests,
            success_pct: if attempted == 0 {
                0.0
            } else {
                100.0 * ok as f64 / attempted as f64
            },
            req_per_s: requests as f64 / secs,
            events_per_s: events as f64 / secs,
            consumed_per_s: c.consumed as f64 / secs,
            latency_ms: Percentiles::of(&stats.latency_us),
            end_to_end_ms: (!stats.end_to_end_us.is_empty())
                .then(|| Percentiles::of(&stats.end_to_end_us)),
            statuses: stats.statuses.clone(),
            counts: c,
        }
    }

    /// The header of [`Report::table_row`].
    pub fn table_header() -> String {
        format!(
            "{:>8} {:>6} {:>7} {:>9} {:>10} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "workload",
            "proto",
            "conns",
            "rate",
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
        let rate = self
            .shape
            .rate
            .map_or_else(|| "closed".to_owned(), |r| r.to_string());
        let l = &self.latency_ms;
        format!(
            "{:>8} {:>6} {:>7} {:>9} {:>10} {:>7.2}% {:>10.0} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            self.shape.workload,
            self.shape.protocol,
            self.shape.connections,
            rate,
            self.requests,
            self.success_pct,
            self.req_per_s,
            self.events_per_s,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        )
    }

    /// The consumers' line of the mixed workload: what they acked, and the
    /// ingest→consume latency of this run's events.
    pub fn end_to_end_line(&self) -> Option<String> {
        self.end_to_end_ms.map(|e| {
            format!(
                "consumed {:.0} events/s; ingest→consume latency: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                self.consumed_per_s, e.p50, e.p90, e.p99, e.p999, e.max
            )
        })
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
            ("connect errors", self.counts.connect_errors),
            ("resets/io errors", self.counts.io_errors),
            ("timeouts", self.counts.timeouts),
            ("invalid answers", self.counts.invalid_answers),
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
        a.counts.timeouts = 1;
        a.merge(&b);
        a.counts.events = 999;
        let shape = RunShape {
            workload: "ingest",
            protocol: "http1",
            connections: 2,
            rate: None,
        };
        let r = Report::new(&a, Duration::from_secs(2), shape);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.002;
        assert!(close(r.latency_ms.p50, 500.0), "{}", r.latency_ms.p50);
        assert!(close(r.latency_ms.p90, 900.0), "{}", r.latency_ms.p90);
        assert!(close(r.latency_ms.p99, 990.0), "{}", r.latency_ms.p99);
        assert!(close(r.latency_ms.p999, 999.0), "{}", r.latency_ms.p999);
        assert!(close(r.latency_ms.max, 1000.0), "{}", r.latency_ms.max);
        assert_eq!(r.requests, 1000);
        assert_eq!(r.req_per_s, 500.0);
        assert_eq!(r.events_per_s, 999.0 / 2.0);
        // 999 successes out of 1001 attempts (one 503, one timeout).
        assert!((r.success_pct - 100.0 * 999.0 / 1001.0).abs() < 1e-9);
        assert_eq!(r.error_breakdown(), "errors: 503: 1, timeouts: 1");
    }
}
