//! One worker: a loop that sends requests on its channel, on a schedule (open loop) or
//! as fast as answers come (closed loop), and counts what happened.
//!
//! A thread's workers all run on its one event loop and share its [`Stats`] through a
//! `RefCell`, never borrowed across an `.await`. Sharing keeps memory flat: a histogram
//! is ~140 KiB, and 10,000 connections must not mean 10,000 of them.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::value::RawValue;

use crate::body::Bodies;
use crate::client::{Answer, Channel, Failure, Outgoing, Target};
use crate::config::{BenchConfig, Workload};
use crate::pacer::Pacer;
use crate::stats::Stats;

/// After a refused connection, wait this long before the next attempt, so that a dead
/// server is not hammered with SYNs. (Pacing, not synchronisation.)
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// After an empty poll, wait this long before polling again, as a real consumer would;
/// busy polling would take the server's CPU from the producers it waits for.
const EMPTY_POLL_BACKOFF: Duration = Duration::from_millis(1);

/// What one thread's workers share.
pub(crate) struct ThreadContext {
    pub config: Arc<BenchConfig>,
    pub target: Target,
    pub bodies: Arc<Bodies>,
    /// The path of the workload's main request (`BenchConfig::path`).
    pub path: String,
    /// `/v1/inbox?limit=…&lease_seconds=…`.
    pub poll_path: String,
    pub start: Instant,
    pub deadline: Instant,
    pub stats: RefCell<Stats>,
    pub progress: Arc<AtomicU64>,
}

/// What a worker does each turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Sends the workload's request (ingest, batch or GET).
    Produce,
    /// Polls the inbox with a lease and acks what came back.
    Consume,
}

/// When a worker's k-th turn is due.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Schedule {
    /// As soon as the previous answer is in.
    Closed,
    /// At `start + offset + k * interval`, and latency counts from then.
    Open {
        offset: Duration,
        interval: Duration,
    },
}

/// The events a request moves, counted when it is answered 2xx.
enum Carried {
    Produced(u64),
    Consumed(u64),
}

/// A worker's reused buffers.
struct Scratch {
    body: Vec<u8>,
    key: String,
    rng: SmallRng,
}

pub(crate) async fn run(
    ctx: std::rc::Rc<ThreadContext>,
    mut channel: Channel,
    role: Role,
    schedule: Schedule,
) {
    let mut scratch = Scratch {
        body: Vec::with_capacity(1024),
        key: String::new(),
        rng: SmallRng::from_entropy(),
    };
    // Only the open loop waits for due times; without a timerfd (out of descriptors)
    // it falls back to tokio's millisecond timers, which report up to ~2 ms of their
    // own lateness as latency.
    let mut pacer = match schedule {
        Schedule::Open { .. } => Pacer::new().ok(),
        Schedule::Closed => None,
    };
    let mut k: u32 = 0;
    // The clock is read once per request, when its answer is in: that moment is also
    // when a closed loop sends the next one (clock reads were ~3 % of a client thread).
    let mut now = Instant::now();
    loop {
        let intended = match schedule {
            Schedule::Open { offset, interval } => ctx.start + offset + interval * k,
            Schedule::Closed => now.max(ctx.start),
        };
        if intended >= ctx.deadline {
            break;
        }
        if intended > now {
            let paced = match pacer.as_mut() {
                Some(p) => p.until(intended).await.is_ok(),
                None => false,
            };
            if !paced {
                tokio::time::sleep_until(intended.into()).await;
            }
        }
        let sent = intended.max(now);
        k = k.saturating_add(1);
        now = match role {
            Role::Produce => produce(&ctx, &mut channel, &mut scratch, intended, sent).await,
            Role::Consume => consume(&ctx, &mut channel, &mut scratch, intended, sent).await,
        };
    }
}

impl ThreadContext {
    /// Records an answer to a request due at `since`; returns the time it came in.
    fn answered(&self, status: u16, since: Instant, carried: Carried) -> Instant {
        let now = Instant::now();
        let mut stats = self.stats.borrow_mut();
        stats.answered(status, now.saturating_duration_since(since));
        if (200..300).contains(&status) {
            match carried {
                Carried::Produced(n) => stats.counts.events += n,
                Carried::Consumed(n) => stats.counts.consumed += n,
            }
        }
        self.progress.fetch_add(1, Ordering::Relaxed);
        now
    }

    /// Records a failure; returns the time the worker may go on.
    async fn failed(&self, failure: Failure) -> Instant {
        {
            let mut stats = self.stats.borrow_mut();
            match failure {
                Failure::Connect => stats.counts.connect_errors += 1,
                Failure::Io => stats.counts.io_errors += 1,
                Failure::Timeout => stats.counts.timeouts += 1,
            }
        }
        if failure == Failure::Connect {
            tokio::time::sleep(CONNECT_BACKOFF).await;
        }
        Instant::now()
    }

    /// The `Idempotency-Key` of the next single-event ingest, if it gets one.
    fn idempotency_key<'a>(&self, scratch: &'a mut Scratch) -> Option<&'a str> {
        let ratio = self.config.key_ratio;
        if ratio <= 0.0 || scratch.rng.gen::<f64>() >= ratio {
            return None;
        }
        scratch.key.clear();
        // Writing into a String cannot fail.
        let _ = match self.config.key_space {
            Some(space) => write!(scratch.key, "bench-{}", scratch.rng.gen_range(0..space)),
            None => write!(
                scratch.key,
                "bench-{:016x}{:016x}",
                scratch.rng.gen::<u64>(),
                scratch.rng.gen::<u64>()
            ),
        };
        Some(&scratch.key)
    }
}

/// Sends one request of the workload; returns when its answer (or failure) came.
async fn produce(
    ctx: &ThreadContext,
    channel: &mut Channel,
    scratch: &mut Scratch,
    intended: Instant,
    sent: Instant,
) -> Instant {
    let path = &ctx.path;
    let (method, body, key): (_, &[u8], _) = match ctx.config.workload {
        Workload::Get => ("GET", &[], None),
        // The webhook workload runs its own producers (see `webhook`); here it would
        // post batches like `batch`.
        Workload::Batch | Workload::Webhook | Workload::Tail => ("POST", &ctx.bodies.batch, None),
        Workload::Ingest => {
            let key = ctx.idempotency_key(scratch);
            ("POST", &ctx.bodies.single, key)
        }
        // Consume has no producers; the arm keeps the match whole.
        Workload::Mixed | Workload::Consume => {
            scratch.body.clear();
            let sent_us = intended.saturating_duration_since(ctx.start).as_micros() as u64;
            ctx.bodies.write_event(&mut scratch.body, Some(sent_us));
            ("POST", &scratch.body, None)
        }
    };
    let request = Outgoing {
        method,
        path,
        idempotency_key: key,
        body,
    };
    match channel.exchange(&ctx.target, &request, false, sent).await {
        Ok(answer) => ctx.answered(
            answer.status,
            intended,
            Carried::Produced(ctx.config.events_per_request()),
        ),
        Err(failure) => ctx.failed(failure).await,
    }
}

/// The part of an inbox listing a consumer needs.
#[derive(serde::Deserialize)]
struct Listing<'a> {
    #[serde(borrow)]
    events: Vec<Listed<'a>>,
}

#[derive(serde::Deserialize)]
struct Listed<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

/// Polls the inbox once and acks what came; returns when the last answer came.
async fn consume(
    ctx: &ThreadContext,
    channel: &mut Channel,
    scratch: &mut Scratch,
    intended: Instant,
    sent: Instant,
) -> Instant {
    let poll = Outgoing {
        method: "GET",
        path: &ctx.poll_path,
        idempotency_key: None,
        body: &[],
    };
    let answer: Answer = match channel.exchange(&ctx.target, &poll, true, sent).await {
        Ok(answer) => answer,
        Err(failure) => return ctx.failed(failure).await,
    };
    let received = ctx.answered(answer.status, intended, Carried::Consumed(0));
    if !(200..300).contains(&answer.status) {
        return received;
    }
    let Ok(listing) = serde_json::from_slice::<Listing>(&answer.body) else {
        ctx.stats.borrow_mut().counts.invalid_answers += 1;
        return received;
    };
    if listing.events.is_empty() {
        ctx.stats.borrow_mut().counts.empty_polls += 1;
        // A long poll that came back empty has waited already.
        if ctx.config.wait_seconds == 0 {
            tokio::time::sleep(EMPTY_POLL_BACKOFF).await;
        }
        return Instant::now();
    }
    {
        let mut stats = ctx.stats.borrow_mut();
        for event in &listing.events {
            match event.payload.and_then(|p| ctx.bodies.sent_us(p.get())) {
                Some(sent_us) => {
                    let sent = ctx.start + Duration::from_micros(sent_us);
                    stats.consumed(received.saturating_duration_since(sent));
                }
                None => stats.counts.consumed_older += 1,
            }
        }
    }
    scratch.body.clear();
    // Sluice's ids are `evt_` and base32: nothing to escape.
    scratch.body.extend_from_slice(br#"{"event_ids":["#);
    for (i, event) in listing.events.iter().enumerate() {
        if i > 0 {
            scratch.body.push(b',');
        }
        scratch.body.push(b'"');
        scratch.body.extend_from_slice(event.event_id.as_bytes());
        scratch.body.push(b'"');
    }
    scratch.body.extend_from_slice(b"]}");
    let count = listing.events.len() as u64;
    let ack = Outgoing {
        method: "POST",
        path: "/v1/inbox/ack",
        idempotency_key: None,
        body: &scratch.body,
    };
    match channel.exchange(&ctx.target, &ack, false, received).await {
        Ok(answer) => ctx.answered(answer.status, received, Carried::Consumed(count)),
        Err(failure) => ctx.failed(failure).await,
    }
}
