#!/usr/bin/env bash
# Two builds of the server, side by side in one job: before and after a change.
#
#   bench/ab.sh BIN_A BIN_B [seconds per run, default 10] [rounds, default 3]
#
# Each round runs, for A then B (then B then A the next round, so neither always goes
# first), a fresh `sluice serve` pinned to core 0 and `sluice bench` (this tree's) on
# core 1:
#   - durable POST /v1/events, closed loop, 100 connections;
#   - durable batch ingest, 100 events a request;
#   - the consumer loop (poll 100 with a lease, ack), over what the runs before stored.
# and reports, per build, the median over rounds of req/s, events/s, p99 and the
# server's CPU time per request (from /proc/<pid>/stat). The machine drifts by tens of
# percent within minutes, so only figures from the same job compare; the interleaving
# spreads the drift over both builds.
set -euo pipefail
cd "$(dirname "$0")/.."
A="$1"; B="$2"; DURATION="${3:-10}"; ROUNDS="${4:-3}"
OUT="${OUT:-target/bench-ab}"
mkdir -p "$OUT"; rm -f "$OUT"/*.json
cargo build --release -q -p sluice
CLIENT=target/release/sluice
if [ "$(nproc)" -ge 2 ]; then SERVER_CPU=(taskset -c 0); CLIENT_CPU=(taskset -c 1); else SERVER_CPU=(); CLIENT_CPU=(); fi
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
TICKS_PER_S=$(getconf CLK_TCK)

run() { # $1 build label, $2 binary, $3 round
  local label="$1" bin="$2" round="$3" port=9190
  rm -rf "$WORK/data"
  "${SERVER_CPU[@]}" "$bin" serve --listen 127.0.0.1:$port --data-dir "$WORK/data" > "$WORK/out" 2> "$WORK/err" & local pid=$!
  wait_port $port
  local key; key=$(sed -n 's/^API key for tenant "default": //p' "$WORK/out")
  for workload in ingest batch consume; do
    local flags=(--workload "$workload")
    [ "$workload" = batch ] && flags+=(--batch-size 100)
    [ "$workload" = consume ] && flags+=(--connections 10 --batch-size 100)
    echo "[round $round] $label $workload" >&2
    local before; before=$(cpu_ticks "$pid")
    "${CLIENT_CPU[@]}" "$CLIENT" bench --url http://127.0.0.1:$port --api-key "$key" "${flags[@]}" \
      --duration "${DURATION}s" --json > "$WORK/r.json"
    local after; after=$(cpu_ticks "$pid")
    python3 -c 'import json,sys
r = json.load(open(sys.argv[1])); r["build"] = sys.argv[2]; r["round"] = int(sys.argv[3])
r["server_cpu_s"] = (int(sys.argv[5]) - int(sys.argv[4])) / int(sys.argv[6])
json.dump(r, sys.stdout)' "$WORK/r.json" "$label" "$round" "$before" "$after" "$TICKS_PER_S" \
      > "$OUT/$round-$label-$workload.json"
  done
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then run A "$A" "$round"; run B "$B" "$round"
  else run B "$B" "$round"; run A "$A" "$round"; fi
done

python3 - "$OUT" "$A" "$B" "$DURATION" "$ROUNDS" <<'PY'
import glob, json, os, statistics, sys
out, a, b, duration, rounds = sys.argv[1:6]
runs = [json.load(open(f)) for f in glob.glob(os.path.join(out, "*.json"))]
print(f"A = {a}\nB = {b}\n{rounds} rounds of {duration} s, medians; server on core 0, client on core 1\n")
print("| workload | build | req/s | events/s | p99 ms | server CPU µs/req | server CPU µs/event |")
print("|---|---|---|---|---|---|---|")
for w in ("ingest", "batch", "consume"):
    meds = {}
    for build in ("A", "B"):
        rs = [r for r in runs if r["build"] == build and r["workload"] == w]
        if not rs:
            continue
        med = lambda f: statistics.median(f(r) for r in rs)
        req = med(lambda r: r["req_per_s"])
        ev = med(lambda r: r["events_per_s"])
        p99 = med(lambda r: r["latency_ms"]["p99"])
        cpu = med(lambda r: 1e6 * r["server_cpu_s"] / max(r["requests"], 1))
        cpu_ev = med(lambda r: 1e6 * r["server_cpu_s"] / max(r["events"], 1)) if w != "consume" else float("nan")
        meds[build] = (req, cpu)
        print(f"| {w} | {build} | {req:,.0f} | {ev:,.0f} | {p99:.2f} | {cpu:.1f} | {cpu_ev:.2f} |")
    if len(meds) == 2:
        print(f"| {w} | B/A | {meds['B'][0] / meds['A'][0]:.3f} | | | {meds['B'][1] / meds['A'][1]:.3f} | |")
PY
