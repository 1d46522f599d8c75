//! The Prometheus text format, written by hand: the one metrics hook through which a
//! backend adds its own series (segments and fsyncs for the embedded engine, stream
//! state for JetStream) to `/metrics`, and the writer the HTTP layer uses for the rest.
//!
//! Why not a metrics crate: the hot path counts with plain atomics (DESIGN.md asks for
//! lock-free counters), and only a scrape formats anything, so all that is needed is a
//! writer for the text format.

use std::fmt::Write;

/// A `/metrics` document being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty document with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Exposition {
        Exposition {
            out: String::with_capacity(bytes),
        }
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }

    /// The text written so far, borrowed.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    /// `# HELP` and `# TYPE` lines for a family whose samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line. `labels` is empty or `key="value",…` (the caller escapes).
    pub fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    /// A counter family with one unlabelled sample.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, "", value);
    }

    /// A gauge family with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help);
        self.sample(name, "", value);
    }

    /// One histogram series: cumulative `_bucket`s, `_sum` and `_count`. `counts` are
    /// per bucket (not cumulative), one per bound; a bound of `u64::MAX` is `+Inf`.
    /// Bounds and sum are divided by `scale` (1e6 turns microseconds into seconds).
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &str,
        bounds: &[u64],
        counts: impl IntoIterator<Item = u64>,
        sum: u64,
        scale: f64,
    ) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (ub, count) in bounds.iter().zip(counts) {
            cumulative += count;
            let _ = if *ub == u64::MAX {
                writeln!(
                    self.out,
                    "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
                )
            } else {
                writeln!(
                    self.out,
                    "{name}_bucket{{{labels}{sep}le=\"{}\"}} {cumulative}",
                    *ub as f64 / scale
                )
            };
        }
        self.sample(&format!("{name}_sum"), labels, sum as f64 / scale);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// Escapes a label value (backslash, quote and newline), for values that come from
/// users, such as tenant names and consumer names.
pub fn label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_scaled() {
        let mut e = Exposition::default();
        e.family("x_seconds", "histogram", "A test.");
        e.histogram(
            "x_seconds",
            "",
            &[100, 1000, u64::MAX],
            [1, 2, 3],
            5_000,
            1e6,
        );
        let text = e.finish();
        for line in [
            "x_seconds_bucket{le=\"0.0001\"} 1",
            "x_seconds_bucket{le=\"0.001\"} 3",
            "x_seconds_bucket{le=\"+Inf\"} 6",
            "x_seconds_sum 0.005",
            "x_seconds_count 6",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
