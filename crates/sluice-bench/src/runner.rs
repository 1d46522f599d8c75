//! Running the load: threads, each with one event loop, and the workers on them.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::body::Bodies;
use crate::client::{Channel, Http2Shared, Target};
use crate::config::{BenchConfig, Protocol, SweepAxis};
use crate::stats::{Report, RunShape, Stats};
use crate::worker::{self, Role, Schedule, ThreadContext};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Settings that cannot run; the message names the flag.
    #[error("{0}")]
    BadConfig(String),
    /// A thread or runtime could not be created.
    #[error("cannot start the load threads: {0}")]
    Start(std::io::Error),
}

/// Time between starting the threads and the first request, so that every thread's
/// event loop is up when the load begins.
const WARM_UP: Duration = Duration::from_millis(50);

/// Runs the load described by `config` and summarises it. `progress` is incremented on
/// every answer, for a live progress line.
pub fn run_with_progress(
    config: &BenchConfig,
    progress: Arc<AtomicU64>,
) -> Result<Report, BenchError> {
    config.validate().map_err(BenchError::BadConfig)?;
    let config = Arc::new(config.clone());
    let bodies = Arc::new(Bodies::new(
        config.payload_bytes,
        config.batch_size,
        rand::random(),
    ));
    let threads = config.threads.min(config.connections);
    let start = Instant::now() + WARM_UP;
    let deadline = start + config.duration;
    let mut handles = Vec::with_capacity(threads);
    let tls = Target::tls_for(&config).map_err(BenchError::BadConfig)?;
    for t in 0..threads {
        let (config, bodies, progress) = (config.clone(), bodies.clone(), progress.clone());
        let tls = tls.clone();
        let handle = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || -> std::io::Result<Stats> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let ctx = Rc::new(ThreadContext {
                    target: Target::new(&config, tls.clone()),
                    path: config.path().to_owned(),
                    poll_path: match config.wait_seconds {
                        0 => format!(
                            "/v1/inbox?limit={}&lease_seconds={}",
                            config.batch_size, config.lease_seconds
                        ),
                        w => format!(
                            "/v1/inbox?limit={}&lease_seconds={}&wait_seconds={w}",
                            config.batch_size, config.lease_seconds
                        ),
                    },
                    config,
                    bodies,
                    start,
                    deadline,
                    stats: RefCell::new(Stats::default()),
                    progress,
                });
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, thread_main(ctx.clone(), t, threads));
                Ok(ctx.stats.take())
            })
            .map_err(BenchError::Start)?;
        handles.push(handle);
    }
    let mut stats = Stats::default();
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => stats.merge(&s),
            Ok(Err(e)) => return Err(BenchError::Start(e)),
            Err(_) => {
                return Err(BenchError::Start(std::io::Error::other(
                    "a load thread panicked",
                )))
            }
        }
    }
    let elapsed = Instant::now()
        .saturating_duration_since(start)
        .min(config.duration + config.timeout);
    let shape = RunShape {
        workload: config.workload.as_str(),
        protocol: config.protocol.as_str(),
        connections: config.connections,
        rate: config.rate,
    };
    Ok(Report::new(&stats, elapsed, shape))
}

/// [`run_with_progress`] without a progress counter.
pub fn run(config: &BenchConfig) -> Result<Report, BenchError> {
    run_with_progress(config, Arc::default())
}

/// The settings of one point of a sweep: `config` with the connection count or the
/// rate set to `point`.
pub fn sweep_point(config: &BenchConfig, axis: SweepAxis, point: u64) -> BenchConfig {
    let mut c = config.clone();
    match axis {
        SweepAxis::Connections => c.connections = usize::try_from(point).unwrap_or(usize::MAX),
        SweepAxis::Rate => c.rate = Some(point),
    }
    c
}

/// Starts thread `t`'s workers: connections `t`, `t + threads`, … Consumers are the
/// first `consumer_connections()` connections, producers the rest; each connection
/// carries `streams` workers under HTTP/2, one under HTTP/1.1.
async fn thread_main(ctx: Rc<ThreadContext>, t: usize, threads: usize) {
    let config = ctx.config.clone();
    let streams = match config.protocol {
        Protocol::Http1 => 1,
        Protocol::Http2 => config.streams,
    };
    let consumers = config.consumer_connections();
    let producer_workers = (config.connections - consumers) * streams;
    let consumer_workers = consumers * streams;
    // The rate drives the producers; only a consume-only run paces its polls with it.
    let open_loop = |worker: usize, workers: usize| match config.rate {
        Some(rate) if workers > 0 => {
            let interval = Duration::from_secs_f64(workers as f64 / rate as f64);
            Schedule::Open {
                offset: interval.mul_f64(worker as f64 / workers as f64),
                interval,
            }
        }
        _ => Schedule::Closed,
    };
    let mut tasks = Vec::new();
    for connection in (t..config.connections).step_by(threads) {
        let shared = Rc::new(Http2Shared::default());
        for stream in 0..streams {
            let channel = match config.protocol {
                Protocol::Http1 => Channel::http1(),
                Protocol::Http2 => Channel::http2(shared.clone()),
            };
            let (role, schedule) = if connection < consumers {
                let worker = connection * streams + stream;
                let schedule = if producer_workers == 0 {
                    open_loop(worker, consumer_workers)
                } else {
                    Schedule::Closed
                };
                (Role::Consume, schedule)
            } else {
                let worker = (connection - consumers) * streams + stream;
                (Role::Produce, open_loop(worker, producer_workers))
            };
            tasks.push(tokio::task::spawn_local(worker::run(
                ctx.clone(),
                channel,
                role,
                schedule,
            )));
        }
    }
    for task in tasks {
        // A worker that panicked has already recorded what it did; the rest go on.
        let _ = task.await;
    }
}
