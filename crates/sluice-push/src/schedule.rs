//! When to try again: the retry schedule, its jitter, and `Retry-After`.
//!
//! The schedule is the list of waits before each retry (`webhook_retry_schedule`; by
//! default `5s,5m,30m,2h,5h,10h,10h`, close to Svix's): attempt 1 is the first delivery,
//! attempt `n + 1` waits `schedule[n - 1]`, and the attempt after the last step is the
//! last: its failure makes a dead letter. Each wait is jittered by ±20 % so that
//! retries of a burst spread out instead of arriving together. A `Retry-After` on a
//! 429, 502, 503 or 504 lengthens the wait to at least what it asks, capped at the
//! schedule's largest step (an endpoint cannot park a delivery for days).

use std::time::Duration;

use rand::Rng;

/// Retries a schedule may have, at most.
pub const SCHEDULE_STEPS_MAX: usize = 32;

/// The default schedule.
pub const DEFAULT_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";

/// A retry schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    steps: Vec<Duration>,
}

/// A schedule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "webhook_retry_schedule must be 1 to 32 comma-separated durations such as 5s,5m,2h (got {0:?})"
)]
pub struct BadSchedule(pub String);

impl Schedule {
    /// A schedule from its steps.
    pub fn new(steps: Vec<Duration>) -> Result<Schedule, BadSchedule> {
        if steps.is_empty() || steps.len() > SCHEDULE_STEPS_MAX {
            return Err(BadSchedule(format!("{} steps", steps.len())));
        }
        Ok(Schedule { steps })
    }

    /// Parses `5s,5m,30m` (humantime durations).
    pub fn parse(text: &str) -> Result<Schedule, BadSchedule> {
        let steps = text
            .split(',')
            .map(|s| humantime::parse_duration(s.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| BadSchedule(text.to_owned()))?;
        Schedule::new(steps).map_err(|_| BadSchedule(text.to_owned()))
    }

    /// Attempts in all: the first delivery and one per step.
    pub fn attempts(&self) -> u32 {
        self.steps.len() as u32 + 1
    }

    /// The schedule's largest step: the cap on a `Retry-After`.
    pub fn longest(&self) -> Duration {
        self.steps.iter().copied().max().unwrap_or(Duration::ZERO)
    }

    /// The wait after attempt `attempt` (from 1) failed, jittered, or `None` when it was
    /// the last. `retry_after` is what the endpoint asked for, if it did.
    pub fn wait_after(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        let step = *self.steps.get(attempt.checked_sub(1)? as usize)?;
        let jittered = step.mul_f64(rng.gen_range(0.8..=1.2));
        Some(match retry_after {
            Some(asked) => jittered.max(asked.min(self.longest())),
            None => jittered,
        })
    }
}

/// Reads `Retry-After`: seconds, or an HTTP date.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires
/// senders to use.
fn httpdate(value: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(&imf_to_rfc3339(value)?).ok()
}

fn imf_to_rfc3339(value: &str) -> Option<String> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = value.split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let day = parts.next()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = parts.next()?;
    let time = parts.next()?;
    (parts.next()? == "GMT").then(|| format!("{year}-{month:02}-{day}T{time}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_the_schedule_with_jitter_and_end_after_the_last_step() {
        let s = Schedule::parse("100ms, 200ms").expect("schedule");
        assert_eq!(s.attempts(), 3);
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let w = s.wait_after(1, None, &mut rng).expect("a retry");
            assert!(
                w >= Duration::from_millis(80) && w <= Duration::from_millis(120),
                "{w:?}"
            );
            let w = s.wait_after(2, None, &mut rng).expect("a retry");
            assert!(
                w >= Duration::from_millis(160) && w <= Duration::from_millis(240),
                "{w:?}"
            );
        }
        assert_eq!(
            s.wait_after(3, None, &mut rng),
            None,
            "the third attempt was the last"
        );
        assert_eq!(s.wait_after(0, None, &mut rng), None);
        // Retry-After lengthens a wait, up to the largest step.
        let w = s
            .wait_after(1, Some(Duration::from_secs(60)), &mut rng)
            .expect("retry");
        assert_eq!(w, Duration::from_millis(200));
        let w = s
            .wait_after(1, Some(Duration::from_millis(150)), &mut rng)
            .expect("retry");
        assert!(w >= Duration::from_millis(150), "{w:?}");
        assert!(Schedule::parse("").is_err());
        assert!(Schedule::parse("5s,soon").is_err());
        assert_eq!(
            Schedule::parse(DEFAULT_SCHEDULE)
                .expect("default")
                .attempts(),
            8
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_700);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(784_111_777 - 784_111_700))
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
