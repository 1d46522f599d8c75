//! `sluice bench`: the load generator's command line.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sluice_bench::tail::TailOptions;
use sluice_bench::webhook::WebhookOptions;
use sluice_bench::{BenchConfig, Protocol, Report, SweepAxis, Workload};

use crate::cli::BenchFlags;

pub fn run(flags: BenchFlags) -> anyhow::Result<ExitCode> {
    let config = config(&flags)?;
    let hooks = WebhookOptions {
        endpoints: flags.endpoints.max(1),
        max_in_flight: flags.max_in_flight.clamp(1, 1000),
        receiver_delay: duration("--receiver-delay", &flags.receiver_delay)?,
        ..WebhookOptions::default()
    };
    let tails = TailOptions {
        tails: flags.tails.max(1),
        ..TailOptions::default()
    };
    let axis = match flags.sweep_over.as_str() {
        "rate" => SweepAxis::Rate,
        _ => SweepAxis::Connections,
    };
    let points: Vec<BenchConfig> = if flags.sweep.is_empty() {
        if flags.plot.is_some() {
            bail!("--plot draws a sweep: add --sweep, e.g. --sweep 10,100,1000");
        }
        vec![config.clone()]
    } else {
        flags
            .sweep
            .iter()
            .map(|p| sluice_bench::sweep_point(&config, axis, *p))
            .collect()
    };
    for p in &points {
        p.validate().map_err(anyhow::Error::msg)?;
    }

    // Every connection is a descriptor, and an open-loop one has a timer too; fail
    // clearly up front instead of with EMFILE mid-run.
    let most = points.iter().map(|p| p.connections).max().unwrap_or(0);
    let per_connection = if points.iter().any(|p| p.rate.is_some()) {
        2
    } else {
        1
    };
    let limit =
        sluice_server::listener::raise_nofile_limit().context("reading the open-files limit")?;
    let needed = (most * per_connection) as u64 + 64;
    if limit < needed {
        bail!("{most} connections need about {needed} open files, but the limit is {limit} (the hard limit): raise it (ulimit -Hn, or LimitNOFILE= in systemd) or use fewer connections");
    }

    if !flags.json {
        print_heading(&config, points.len(), axis);
        println!("{}", Report::table_header());
    }
    let mut reports = Vec::with_capacity(points.len());
    for (i, point) in points.iter().enumerate() {
        let label = (points.len() > 1).then(|| format!("[{}/{}] ", i + 1, points.len()));
        let report = run_point(
            point,
            &hooks,
            &tails,
            flags.json,
            label.as_deref().unwrap_or(""),
        )?;
        if !flags.json {
            println!("{}", report.table_row());
        }
        reports.push(report);
    }
    if flags.json {
        if reports.len() == 1 {
            println!("{}", serde_json::to_string_pretty(&reports[0])?);
        } else {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        }
    } else {
        for r in &reports {
            let at = if reports.len() > 1 {
                match axis {
                    SweepAxis::Connections => format!("at {} connections: ", r.shape.connections),
                    SweepAxis::Rate => format!("at {} req/s: ", r.shape.rate.unwrap_or(0)),
                }
            } else {
                String::new()
            };
            println!("{at}{}", r.error_breakdown());
            if r.shape.workload == "webhook" || r.shape.workload == "tail" {
                let (what, ends, path) = if r.shape.workload == "webhook" {
                    ("deliveries", "endpoints", "delivery")
                } else {
                    ("tail messages", "tails", "tail")
                };
                if let Some(e) = r.end_to_end_ms {
                    println!(
                        "{at}received {:.0} {what}/s ({:.2} % of events × {ends}); 201→{path} latency: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                        r.consumed_per_s, r.success_pct, e.p50, e.p90, e.p99, e.p999, e.max
                    );
                }
            } else if let Some(line) = r.end_to_end_line() {
                println!("{at}{line}");
            }
            if r.counts.empty_polls > 0 {
                println!("{at}empty inbox polls: {}", r.counts.empty_polls);
            }
            if r.shape.workload == "mixed" && r.counts.consumed_older > 0 {
                println!(
                    "{at}note: the consumers first drained {} events from before this run (the inbox is oldest first), and the ingest→consume latency includes that backlog; start on an empty inbox for a clean figure",
                    r.counts.consumed_older
                );
            }
            let refused = |code: u16| r.requests > 0 && r.statuses.get(&code) == Some(&r.requests);
            if refused(401) || refused(403) {
                println!("{at}hint: every request was refused; check --api-key (or SLUICE_API_KEY) and the key's scopes");
            } else if r.requests == 0 && r.counts.connect_errors > 0 {
                println!(
                    "{at}hint: no connection could be opened; is the server listening at {}?",
                    config.url
                );
            }
        }
    }
    if let Some(path) = &flags.plot {
        let title = format!(
            "sluice bench: {} {}{} over {}, against {}",
            config.workload.as_str(),
            config.url.authority().map_or("", |a| a.as_str()),
            config.path(),
            config.protocol.as_str(),
            axis.label(config.workload)
        );
        sluice_bench::plot_sweep(path, &title, axis, &reports)?;
        if !flags.json {
            println!("plot: {}", path.display());
        }
    }
    let failing: Vec<String> = reports
        .iter()
        .filter(|r| r.success_pct < flags.min_success)
        .map(|r| format!("{:.2} %", r.success_pct))
        .collect();
    if !failing.is_empty() {
        eprintln!(
            "sluice bench: success {} is below --min-success {} %",
            failing.join(", "),
            flags.min_success
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn config(flags: &BenchFlags) -> anyhow::Result<BenchConfig> {
    let url = flags
        .url
        .parse()
        .with_context(|| format!("--url {:?} is not a URL", flags.url))?;
    let workload = Workload::parse(&flags.workload).context("unknown --workload")?;
    let mut config = BenchConfig::new(url, workload);
    config.api_key = flags.api_key.clone();
    config.protocol = Protocol::parse(&flags.protocol).context("unknown --protocol")?;
    config.connections = flags.connections;
    config.streams = flags.streams;
    config.threads = flags.threads;
    config.duration = duration("--duration", &flags.duration)?;
    config.timeout = duration("--timeout", &flags.timeout)?;
    config.ca_file = flags.ca_file.clone();
    config.rate = flags.rate;
    config.payload_bytes = flags.payload_bytes;
    config.batch_size = flags.batch_size;
    config.key_ratio = flags.key_ratio;
    config.key_space = flags.key_space;
    config.consumers = flags.consumers;
    config.lease_seconds = flags.lease_seconds;
    config.wait_seconds = flags.wait_seconds;
    // A long poll is not a timeout: give each poll its wait plus the usual allowance.
    let poll_needs = Duration::from_secs(u64::from(flags.wait_seconds) + 5);
    if config.timeout < poll_needs {
        config.timeout = poll_needs;
    }
    Ok(config)
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text)
        .with_context(|| format!("{flag} {text:?} is not a duration such as 10s"))
}

fn print_heading(config: &BenchConfig, points: usize, axis: SweepAxis) {
    let mode = match config.rate {
        Some(r) if matches!(config.workload, Workload::Webhook | Workload::Tail) => {
            format!("open loop at {r} events/s (latency from each event's ingest answer)")
        }
        Some(r) => format!("open loop at {r} req/s (latency from intended send time)"),
        None => "closed loop".to_owned(),
    };
    let shape = if points > 1 {
        format!("a sweep of {points} {} points", axis.label(config.workload))
    } else {
        format!("{} connections", config.connections)
    };
    println!(
        "{} {}{} over {} for {:?} each, {shape} on {} threads, {mode}",
        config.workload.as_str(),
        config.url.authority().map_or("", |a| a.as_str()),
        config.path(),
        config.protocol.as_str(),
        config.duration,
        config.threads
    );
}

/// Runs one load with a live progress line on stderr (unless `quiet`).
fn run_point(
    config: &BenchConfig,
    hooks: &WebhookOptions,
    tails: &TailOptions,
    quiet: bool,
    label: &str,
) -> anyhow::Result<Report> {
    if config.workload == Workload::Tail {
        if !quiet {
            eprintln!(
                "{label}tail: {} live tails, ingesting for {:?}, then draining",
                tails.tails, config.duration
            );
        }
        return Ok(sluice_bench::tail::run_tail(config, tails)?);
    }
    if config.workload == Workload::Webhook {
        if !quiet {
            eprintln!(
                "{label}webhook: {} endpoints, ingesting for {:?}, then draining",
                hooks.endpoints, config.duration
            );
        }
        return Ok(sluice_bench::webhook::run_webhook(config, hooks)?);
    }
    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let ticker = (!quiet).then(|| {
        let (progress, done, total) = (progress.clone(), done.clone(), config.duration);
        let label = format!("{label}{} conns", config.connections);
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1)); // a display tick, not synchronisation
                let now = progress.load(Ordering::Relaxed);
                eprint!(
                    "\r{label}: {:>4.0}s / {:.0}s  {now} answers  {} req/s   ",
                    started.elapsed().min(total).as_secs_f64(),
                    total.as_secs_f64(),
                    now - last
                );
                let _ = std::io::stderr().flush();
                last = now;
            }
            eprint!("\r{:78}\r", "");
        })
    });
    let report = sluice_bench::run_with_progress(config, progress);
    done.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    Ok(report?)
}
