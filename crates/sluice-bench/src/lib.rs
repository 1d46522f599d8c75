//! Sluice's load generator, the library behind `sluice bench`.
//!
//! Workloads: single-event ingest (optionally with idempotency keys), batch ingest, a
//! consumer loop (poll the inbox with a lease, then ack), a mixed run of producers and
//! consumers that measures ingest→consume latency, push delivery end to end (webhook),
//! the live tail's ingest→SSE latency (tail), and a plain GET for any server.
//! HTTP/1.1 (a lean keep-alive client of its own) or HTTP/2 (h2c, on hyper).
//!
//! Two ways to load a server:
//! - **closed loop**: each connection sends its next request as soon as the previous
//!   answer arrives; measures capacity (and queueing at saturation);
//! - **open loop**: requests go out on a fixed schedule (`rate` per second, spread over
//!   the connections), and each latency is measured from the request's *intended* send
//!   time, so a stall shows up in every request it delayed instead of hiding behind the
//!   requests that were never sent (coordinated omission, as wrk2 fixes it).
//!
//! Latencies go into an HdrHistogram (microseconds, 3 significant digits); every
//! non-2xx status, connection error and timeout is counted separately.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sluice_bench::BenchError> {
//! use sluice_bench::{BenchConfig, Workload};
//! let mut config = BenchConfig::new("http://127.0.0.1:8080/v1/events".parse().expect("url"), Workload::Ingest);
//! config.api_key = Some("sk_...".into());
//! config.rate = Some(5_000); // open loop
//! let report = sluice_bench::run(&config)?;
//! println!("{}", report.table_row());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod body;
mod client;
mod config;
mod pacer;
mod plot;
mod produce;
mod runner;
mod stats;
pub mod tail;
pub mod webhook;
mod worker;

pub use config::{BenchConfig, Protocol, SweepAxis, Workload};
pub use plot::{plot_sweep, PlotError};
pub use runner::{run, run_with_progress, sweep_point, BenchError};
pub use stats::{Counts, Percentiles, Report, RunShape, Stats};
