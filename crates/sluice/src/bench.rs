//! `sluice bench`: the load generator's command line.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sluice_bench::{BenchConfig, Report, Workload};

use crate::cli::BenchFlags;

pub fn run(flags: BenchFlags) -> anyhow::Result<ExitCode> {
    let url = flags
        .url
        .parse()
        .with_context(|| format!("--url {:?} is not a URL", flags.url))?;
    let workload = Workload::parse(&flags.workload).context("unknown --workload")?;
    let mut config = BenchConfig::new(url, workload);
    config.api_key = flags.api_key;
    config.connections = flags.connections;
    config.threads = flags.threads;
    config.duration = humantime::parse_duration(&flags.duration).with_context(|| {
        format!(
            "--duration {:?} is not a duration such as 10s",
            flags.duration
        )
    })?;
    config.rate = flags.rate;
    config.payload_bytes = flags.payload_bytes;
    config.batch_size = flags.batch_size;

    // Every connection is a descriptor; fail clearly instead of with EMFILE mid-run.
    let limit =
        sluice_server::listener::raise_nofile_limit().context("reading the open-files limit")?;
    let needed = config.connections as u64 + 64;
    if limit < needed {
        bail!("{} connections need about {needed} open files, but the limit is {limit}: raise it (ulimit -n) or use fewer connections", config.connections);
    }

    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let ticker = (!flags.json).then(|| {
        let (progress, done, total) = (progress.clone(), done.clone(), config.duration);
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1)); // a display tick, not synchronisation
                let now = progress.load(Ordering::Relaxed);
                eprint!(
                    "\r{:>4.0}s / {:.0}s  {now} answers  {} req/s   ",
                    started.elapsed().as_secs_f64(),
                    total.as_secs_f64(),
                    now - last
                );
                let _ = std::io::stderr().flush();
                last = now;
            }
            eprint!("\r{:60}\r", "");
        })
    });
    let report = sluice_bench::run_with_progress(&config, progress);
    done.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    let report = report?;
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report, &config);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(report: &Report, config: &BenchConfig) {
    let mode = match config.rate {
        Some(r) => format!("open loop at {r} req/s (latency from intended send time)"),
        None => "closed loop".to_owned(),
    };
    println!(
        "{} {} for {:?}, {} connections on {} threads, {mode}",
        config.workload.as_str(),
        config.url,
        config.duration,
        config.connections,
        config.threads
    );
    println!("{}", Report::table_header());
    println!("{}", report.table_row());
    println!("{}", report.error_breakdown());
}
