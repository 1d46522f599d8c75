//! The standard `process_*` metrics (the Prometheus client libraries' names) and
//! `sluice_build_info`, read from `/proc/self` when `/metrics` is scraped.
//!
//! `/proc` is served from kernel memory, not a disk: reading it on an async worker is a
//! few syscalls, not blocking I/O. On a system without `/proc` the series are left out.

use std::sync::OnceLock;

use sluice_store::exposition::Exposition;

/// Clock ticks per second for `/proc/<pid>/stat` times: fixed at 100 on Linux (the
/// kernel's USER_HZ, which is what `/proc` reports in, whatever the kernel's HZ).
const USER_HZ: f64 = 100.0;

/// Page size for `statm`: read once.
fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; a failure returns -1, handled below.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 {
            n as u64
        } else {
            4096
        }
    })
}

/// The process start time, in seconds since the epoch: boot time plus the start tick.
fn start_time_seconds(start_ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: f64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + start_ticks / USER_HZ)
}

/// Writes `sluice_build_info` and the `process_*` series.
pub fn write(out: &mut Exposition) {
    out.family(
        "sluice_build_info",
        "gauge",
        "The running build: 1, labelled with its version.",
    );
    out.sample(
        "sluice_build_info",
        &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        1,
    );
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15, starttime 22, vsize 23.
    let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    if let (Some(u), Some(s)) = (num(14), num(15)) {
        out.family(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
        );
        out.sample("process_cpu_seconds_total", "", (u + s) / USER_HZ);
    }
    if let Some(start) = num(22).and_then(start_time_seconds) {
        out.family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
        );
        out.sample("process_start_time_seconds", "", start);
    }
    if let Some(v) = num(23) {
        out.family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        out.sample("process_virtual_memory_bytes", "", v);
    }
    if let Some(rss_pages) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
    {
        out.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        out.sample("process_resident_memory_bytes", "", rss_pages * page_size());
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        out.sample("process_open_fds", "", fds.count());
    }
    if let Some(max) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse::<u64>()
                .ok()
        })
    {
        out.family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        );
        out.sample("process_max_fds", "", max);
    }
}
