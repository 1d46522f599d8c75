#!/usr/bin/env bash
# bench/ingest_1000.sh: closed loop at 1,000 connections (issue 17's third target): Sluice durable ingest vs the parse-only reference,
# server pinned to core 0, load generator on core 1, interleaved, 2 rounds.
#   PROTO=thread|uring|thread+work bench/ingest_1000.sh   # also the commit prototype
#                                   (bench/reference/src/bin/commit-server.rs), each round
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p sluice -p sluice-bench-reference
B=target/release/sluice
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{print ($14+$15)/t}' "/proc/$1/stat"; }
for round in 1 2; do
  dir=$(mktemp -d)
  taskset -c 0 $B serve --listen 127.0.0.1:18540 --data-dir "$dir" > "$dir/log" 2>&1 & pid=$!
  for _ in $(seq 200); do grep -q 'API key' "$dir/log" && break; sleep 0.05; done
  key=$(grep -o 'sk_[^ ]*' "$dir/log" | head -1)
  c0=$(cpu $pid); out=$(taskset -c 1 $B bench --url http://127.0.0.1:18540 --api-key "$key" --connections 1000 --duration 10s --json 2>/dev/null); c1=$(cpu $pid)
  echo "$out" | python3 -c "import sys,json; r=json.load(sys.stdin); print('round $round sluice  req/s', round(r['req_per_s']), 'success', r['success_pct'], 'p99', r['latency_ms']['p99'], 'us/req', round(($c1-$c0)*1e6/r['requests'],1))"
  kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
  taskset -c 0 target/release/parse-server 127.0.0.1:9092 2>/dev/null & pid=$!
  sleep 0.5
  c0=$(cpu $pid); out=$(taskset -c 1 $B bench --url http://127.0.0.1:9092/v1/events --connections 1000 --duration 10s --json 2>/dev/null); c1=$(cpu $pid)
  echo "$out" | python3 -c "import sys,json; r=json.load(sys.stdin); print('round $round ref     req/s', round(r['req_per_s']), 'success', r['success_pct'], 'p99', r['latency_ms']['p99'], 'us/req', round(($c1-$c0)*1e6/r['requests'],1))"
  kill $pid; wait $pid 2>/dev/null || true
  if [ -n "${PROTO:-}" ]; then
    dir=$(mktemp -d)
    taskset -c 0 target/release/commit-server 127.0.0.1:9093 "$PROTO" "$dir" > "$dir/log" 2>&1 & pid=$!
    for _ in $(seq 400); do grep -q 'listening on' "$dir/log" && break; sleep 0.05; done
    key=$(grep -o 'sk_[^ ]*' "$dir/log" | head -1 || true)
    c0=$(cpu $pid); out=$(taskset -c 1 $B bench --url http://127.0.0.1:9093/v1/events --api-key "${key:-none}" --connections 1000 --duration 10s --json 2>/dev/null); c1=$(cpu $pid)
    echo "$out" | python3 -c "import sys,json; r=json.load(sys.stdin); print('round $round $PROTO req/s', round(r['req_per_s']), 'success', r['success_pct'], 'p99', r['latency_ms']['p99'], 'us/req', round(($c1-$c0)*1e6/r['requests'],1))"
    kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
  fi
done
