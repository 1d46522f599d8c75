#!/usr/bin/env python3
"""Is this disk metered? write+fdatasync latency at a range of sync rates, no Sluice.

    python3 bench/disk_probe.py [--dir DIR] [--seconds 6] [--bytes 8192] [RATE ...]

For each target rate (syncs per second; 0 = as fast as the disk goes) it appends
BYTES to a pre-written 64 MiB file and fdatasyncs, for SECONDS, and prints the
latency percentiles and how many syncs took over 2 ms and over 10 ms, with the
times of the first slow ones.

Why: cloud block devices meter operations. On the VMs this project is measured on,
syncs run at ~130 us each below ~2,500 syncs/s and stall 10-20 ms every 100 ms above
it (a token bucket refilling). Sluice's `sync_interval_min` keeps its own sync rate
under such a budget; this probe tells you where your disk's budget is.

It measures the disk on an otherwise idle machine. There, the stalls also come at far
lower sync rates once the CPUs are busy (two CPU hogs plus 860 syncs/s: dozens of syncs
over 2 ms in 5 s, none without the hogs), and they stop the whole VM, not just the
disk: bench/tail_floor.sh shows what they do to a server that never touches the disk.
"""

import argparse
import mmap
import os
import tempfile
import time

FILE_BYTES = 64 << 20


def probe(path, rate, size, seconds, payload):
    gap = 1.0 / rate if rate else 0.0
    fd = os.open(path, os.O_RDWR)
    latencies, slow_at = [], []
    pos = 0
    cpu_start = os.times()
    start = time.perf_counter()
    next_due = start
    while time.perf_counter() - start < seconds:
        if gap:
            next_due += gap
        began = time.perf_counter()
        os.pwrite(fd, payload, pos)
        os.fdatasync(fd)
        took = time.perf_counter() - began
        latencies.append(took)
        if took > 0.005 and len(slow_at) < 12:
            slow_at.append(round(began - start, 3))
        pos = (pos + size) % (FILE_BYTES - size)
        if gap:
            pause = next_due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    cpu_end = os.times()
    os.close(fd)
    n = len(latencies)
    # The CPU a write+fdatasync pair costs the process, kernel time included: on a
    # virtual disk each sync's doorbell is a VM exit, billed to the syncing vCPU. A
    # durable server pays this once per group commit, whatever the group's size.
    sys_us = (cpu_end.system - cpu_start.system) * 1e6 / max(n, 1)
    user_us = (cpu_end.user - cpu_start.user) * 1e6 / max(n, 1)
    s = sorted(latencies)
    pct = lambda q: s[min(n - 1, int(n * q))] * 1e6  # noqa: E731
    print(
        f"target {rate or 'max':>5}/s: {n / seconds:7.0f} syncs/s  "
        f"p50 {pct(0.5):6.0f} us  p99 {pct(0.99):6.0f} us  p99.9 {pct(0.999):6.0f} us  "
        f"max {s[-1] * 1e6:6.0f} us  >2 ms: {sum(1 for x in s if x > 0.002):4d}  "
        f">10 ms: {sum(1 for x in s if x > 0.010):4d}  "
        f"CPU/sync: system {sys_us:4.0f} us, user {user_us:3.0f} us"
    )
    if slow_at:
        print(f"{'':12}first syncs over 5 ms began at (s): {slow_at}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rates", nargs="*", type=int, default=[500, 1000, 2000, 3000, 0])
    parser.add_argument("--dir", default=None, help="directory on the disk to probe")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--bytes", type=int, default=8192, help="bytes written per sync")
    args = parser.parse_args()
    payload = mmap.mmap(-1, args.bytes)
    payload.write(b"x" * args.bytes)
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        path = os.path.join(work, "probe.bin")
        print(f"writing a {FILE_BYTES >> 20} MiB file in {work} ...", flush=True)
        with open(path, "wb") as f:
            f.write(b"\0" * FILE_BYTES)
            f.flush()
            os.fsync(f.fileno())
        for rate in args.rates:
            probe(path, rate, args.bytes, args.seconds, memoryview(payload))


if __name__ == "__main__":
    main()
