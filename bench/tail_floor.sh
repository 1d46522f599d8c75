#!/usr/bin/env bash
# The latency floor this machine sets for any server that syncs to disk, with no Sluice.
#
#   bench/tail_floor.sh [rate req/s, default 20000] [syncs/s, default 860] [seconds, default 6]
#
# Runs the parse-only reference server (no storage, no disk I/O) on core 0 at an
# open-loop rate from core 1, twice: alone, and while bench/disk_probe.py does
# write+fdatasync at Sluice's sync rate on the same core. Prints the reference's
# latency both ways.
#
# Why: on the VMs this project is measured on, the whole VM stalls for 5-17 ms on a
# 100 ms grid once its CPUs are busy and its disk is in use (slow syncs in Sluice's log
# and a non-blocking recv(2) taking 5 ms fall on the same 100 ms phase). It looks like
# a host-side budget for the VM, not the disk alone: the probe by itself at this rate
# sees no slow syncs, but with CPU hogs on both cores it sees dozens. A server that
# never touches the disk then has a p99 set by someone else's syncs, and that is the
# floor under Sluice's open-loop p99.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-20000}"
SYNCS="${2:-860}"
SECONDS_RUN="${3:-6}"
cargo build --release -q -p sluice -p sluice-bench-reference
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
if [ "$(nproc)" -ge 2 ]; then SERVER_CPU=(taskset -c 0); CLIENT_CPU=(taskset -c 1); else SERVER_CPU=(); CLIENT_CPU=(); fi

"${SERVER_CPU[@]}" "$BIN/parse-server" 127.0.0.1:9094 2>/dev/null &
for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/9094) 2>/dev/null && break; sleep 0.05; done

run() { # $1 label
  "${CLIENT_CPU[@]}" "$BIN/sluice" bench --url http://127.0.0.1:9094/v1/events --api-key none \
    --workload ingest --rate "$RATE" --duration "${SECONDS_RUN}s" --json > "$WORK/run.json" 2>/dev/null
  python3 - "$1" "$WORK/run.json" <<'PY'
import json, sys
label, path = sys.argv[1:3]
r = json.load(open(path))
l = r["latency_ms"]
print(f"{label:34s} {r['req_per_s']:8,.0f} req/s  p50 {l['p50']:6.2f}  p99 {l['p99']:6.2f}  p99.9 {l['p999']:6.2f}  max {l['max']:6.1f} ms")
PY
}

echo "parse-only reference (no disk I/O) on core 0, open loop at $RATE req/s from core 1:"
run "alone"
"${SERVER_CPU[@]}" python3 bench/disk_probe.py --dir target --seconds "$((SECONDS_RUN + 3))" "$SYNCS" \
  > "$WORK/probe.txt" 2>&1 &
PROBE=$!
# The probe first writes its 64 MiB file; start the load once it is syncing.
for _ in $(seq 200); do grep -q "writing" "$WORK/probe.txt" 2>/dev/null && break; sleep 0.05; done
sleep 1
run "while another process syncs $SYNCS/s"
wait "$PROBE"
grep "syncs/s" "$WORK/probe.txt" | sed 's/^/  the probe: /'
