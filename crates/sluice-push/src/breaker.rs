//! The per-endpoint circuit breaker: it stops hammering a dead endpoint.
//!
//! Every subscription that sends to one origin (`scheme://host:port`) shares its
//! breaker. After [`BreakerConfig::failures_max`] failures in a row it opens: deliveries
//! to the endpoint are held (they keep their place and their retry times) for
//! `open_for`. Then it lets one delivery through as a probe (half-open). A success
//! closes it; a failure opens it again for twice as long, up to `open_for_max`. State
//! is kept per origin in use, so the map holds at most one entry per subscription.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open it. Default 5.
    pub failures_max: u32,
    /// How long it first stays open. Default 30 s.
    pub open_for: Duration,
    /// The longest it stays open (the doubling stops here). Default 10 min.
    pub open_for_max: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures_max: 5,
            open_for: Duration::from_secs(30),
            open_for_max: Duration::from_secs(600),
        }
    }
}

/// A breaker's state, as `/metrics` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Deliveries flow.
    Closed,
    /// Deliveries are held.
    Open,
    /// One probe is allowed.
    HalfOpen,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, open_for: Duration },
    HalfOpen { probing: bool, open_for: Duration },
}

/// What a subscription may send to an endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// As much as its own limits allow.
    Flow,
    /// One delivery: the probe.
    Probe,
    /// Nothing until then.
    HeldUntil(Instant),
}

/// Every endpoint's breaker.
#[derive(Debug, Default)]
pub struct Breakers {
    config: BreakerConfig,
    states: Mutex<HashMap<String, State>>,
}

impl Breakers {
    /// Breakers with these settings.
    pub fn new(config: BreakerConfig) -> Breakers {
        Breakers {
            config,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, State>) -> T) -> T {
        // A panic while holding this lock would be a bug in the few lines below; the
        // map is still consistent then (each update is one assignment), so go on.
        let mut guard = self.states.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// What may be sent to `origin` now.
    pub fn permit(&self, origin: &str, now: Instant) -> Permit {
        self.with(|m| {
            let state = m
                .entry(origin.to_owned())
                .or_insert(State::Closed { failures: 0 });
            match *state {
                State::Closed { .. } => Permit::Flow,
                State::Open { until, open_for } if now >= until => {
                    *state = State::HalfOpen {
                        probing: true,
                        open_for,
                    };
                    Permit::Probe
                }
                State::Open { until, .. } => Permit::HeldUntil(until),
                State::HalfOpen {
                    probing: false,
                    open_for,
                } => {
                    *state = State::HalfOpen {
                        probing: true,
                        open_for,
                    };
                    Permit::Probe
                }
                // A probe is out: wait for its answer.
                State::HalfOpen { probing: true, .. } => {
                    Permit::HeldUntil(now + Duration::from_millis(100))
                }
            }
        })
    }

    /// Records an attempt's end.
    pub fn record(&self, origin: &str, success: bool, now: Instant) {
        let config = self.config;
        self.with(|m| {
            let state = m
                .entry(origin.to_owned())
                .or_insert(State::Closed { failures: 0 });
            *state = match (*state, success) {
                (_, true) => State::Closed { failures: 0 },
                (State::Closed { failures }, false) if failures + 1 >= config.failures_max => {
                    State::Open {
                        until: now + config.open_for,
                        open_for: config.open_for,
                    }
                }
                (State::Closed { failures }, false) => State::Closed {
                    failures: failures + 1,
                },
                (State::HalfOpen { open_for, .. }, false) => {
                    let open_for = (open_for * 2).min(config.open_for_max);
                    State::Open {
                        until: now + open_for,
                        open_for,
                    }
                }
                // Attempts started before it opened may still fail in: it stays open.
                (open @ State::Open { .. }, false) => open,
            };
        })
    }

    /// Every endpoint's state, for `/metrics`.
    pub fn states(&self) -> Vec<(String, BreakerState)> {
        self.with(|m| {
            let mut v: Vec<(String, BreakerState)> = m
                .iter()
                .map(|(origin, s)| {
                    let state = match s {
                        State::Closed { .. } => BreakerState::Closed,
                        State::Open { .. } => BreakerState::Open,
                        State::HalfOpen { .. } => BreakerState::HalfOpen,
                    };
                    (origin.clone(), state)
                })
                .collect();
            v.sort();
            v
        })
    }

    /// Forgets endpoints no subscription sends to any more.
    pub fn retain(&self, in_use: impl Fn(&str) -> bool) {
        self.with(|m| m.retain(|origin, _| in_use(origin)));
    }
}

impl PartialOrd for BreakerState {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BreakerState {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.gauge().cmp(&other.gauge())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_probes_then_closes_or_backs_off() {
        let b = Breakers::new(BreakerConfig {
            failures_max: 3,
            open_for: Duration::from_secs(10),
            open_for_max: Duration::from_secs(25),
        });
        let t0 = Instant::now();
        let o = "https://example.com:443";
        for _ in 0..2 {
            b.record(o, false, t0);
            assert_eq!(b.permit(o, t0), Permit::Flow);
        }
        b.record(o, true, t0);
        for _ in 0..2 {
            b.record(o, false, t0);
        }
        assert_eq!(b.permit(o, t0), Permit::Flow, "a success reset the count");
        b.record(o, false, t0);
        assert_eq!(
            b.permit(o, t0),
            Permit::HeldUntil(t0 + Duration::from_secs(10))
        );
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.permit(o, t1), Permit::Probe);
        assert!(
            matches!(b.permit(o, t1), Permit::HeldUntil(_)),
            "one probe at a time"
        );
        b.record(o, false, t1);
        assert_eq!(
            b.permit(o, t1),
            Permit::HeldUntil(t1 + Duration::from_secs(20)),
            "doubled"
        );
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(b.permit(o, t2), Permit::Probe);
        b.record(o, false, t2);
        assert_eq!(
            b.permit(o, t2),
            Permit::HeldUntil(t2 + Duration::from_secs(25)),
            "capped"
        );
        let t3 = t2 + Duration::from_secs(25);
        assert_eq!(b.permit(o, t3), Permit::Probe);
        b.record(o, true, t3);
        assert_eq!(b.permit(o, t3), Permit::Flow);
        assert_eq!(b.states(), vec![(o.to_owned(), BreakerState::Closed)]);
    }
}
