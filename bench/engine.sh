#!/usr/bin/env bash
# Storage-engine benchmarks (criterion) with the ratios the engine is held to.
# Usage: bench/engine.sh [--10m]   (--10m adds the 10 M-event open-time run; ~6 GB disk)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--10m" ]; then export SLUICE_BENCH_OPEN_10M=1; fi
cargo bench -q -p sluice-store --bench engine -- --warm-up-time 1 --measurement-time 5 >/dev/null
python3 - <<'PY'
import json, os
root = "target/criterion"
def mean(*path):
    p = os.path.join(root, *path, "new", "estimates.json")
    if not os.path.exists(p):
        return None
    return json.load(open(p))["mean"]["point_estimate"]  # nanoseconds
def us(ns):
    return f"{ns / 1000:.1f} us" if ns < 1e6 else f"{ns / 1e6:.2f} ms"
print("| B | engine | engine events/s | raw append (fresh space) | ratio | raw overwrite (written blocks) | ratio |")
print("|---|---|---|---|---|---|---|")
for b in ("1", "16", "128", "1024"):
    e, a, o = mean("append", "engine", b), mean("append", "raw_append", b), mean("append", "raw_overwrite", b)
    if None in (e, a, o):
        continue
    print(f"| {b} | {us(e)} | {int(b) / e * 1e9:,.0f} | {us(a)} | {100 * a / e:.0f} % | {us(o)} | {100 * o / e:.0f} % |")
print()
for name, path in (("list 100 pending", ("inbox", "list_100")), ("ack 100 (durable)", ("inbox", "ack_100")),
                   ("open, 1 M events", ("open", "1M")), ("open, 10 M events", ("open", "10M"))):
    t = mean(*path)
    if t is not None:
        print(f"- {name}: {us(t)}")
PY
