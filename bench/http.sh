#!/usr/bin/env bash
# HTTP benchmark: Sluice against the reference servers, in one job, with the server
# and the load generator pinned to separate cores. Prints a Markdown table with the
# ratios DESIGN.md targets. Usage: bench/http.sh [seconds per run, default 10]
#
# Needs wrk (`apt-get install wrk`). Closed loop at 100 connections (wrk measures
# queueing at saturation; open-loop latency at 50 % of peak is `sluice bench --rate`).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS=100
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p sluice -p sluice-bench-reference

CORES=$(nproc)
if [ "$CORES" -ge 2 ]; then SERVER_CPU="taskset -c 0"; CLIENT_CPU="taskset -c 1"; else SERVER_CPU=""; CLIENT_CPU=""; fi
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# A ~400-byte event, and a batch of 100 of them.
python3 - "$WORK" <<'PY'
import json, sys
event = {"event_type": "bench.event", "source": "wrk", "payload": {"user": 12345, "pad": "x" * 300}}
open(sys.argv[1] + "/event.json", "w").write(json.dumps(event, separators=(",", ":")))
open(sys.argv[1] + "/batch.json", "w").write(json.dumps([event] * 100, separators=(",", ":")))
PY
lua_post() { # $1 body file, $2 key (may be empty)
  cat <<LUA
local f = io.open("$1", "rb"); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
LUA
  [ -n "${2:-}" ] && echo "wrk.headers[\"Authorization\"] = \"Bearer $2\""
  return 0
}

run_wrk() { # $1 label, $2 url, $3 lua script or empty; prints "label rps p50 p99"
  local out
  if [ -n "${3:-}" ]; then out=$($CLIENT_CPU wrk -t1 -c$CONNS -d"${DURATION}s" --latency -s "$3" "$2"); else out=$($CLIENT_CPU wrk -t1 -c$CONNS -d"${DURATION}s" --latency "$2"); fi
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {$1=$1; printf "%s; ", $0}' <<<"$out")
  echo "$1|$rps|$p50|$p99|${errors:-none}"
}

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

RESULTS=()
$SERVER_CPU target/release/hello-server 127.0.0.1:9091 2>/dev/null & HELLO=$!
wait_port 9091
RESULTS+=("$(run_wrk 'reference: hyper hello GET' http://127.0.0.1:9091/)")
kill $HELLO; wait $HELLO 2>/dev/null || true

$SERVER_CPU target/release/parse-server 127.0.0.1:9092 2>/dev/null & PARSE=$!
wait_port 9092
lua_post "$WORK/event.json" "" > "$WORK/parse.lua"
RESULTS+=("$(run_wrk 'reference: hyper parse + 201 (no storage)' http://127.0.0.1:9092/ "$WORK/parse.lua")")
kill $PARSE; wait $PARSE 2>/dev/null || true

$SERVER_CPU target/release/sluice serve --listen 127.0.0.1:9093 --data-dir "$WORK/data" > "$WORK/sluice.out" 2> "$WORK/sluice.err" & SLUICE=$!
wait_port 9093
KEY=$(sed -n 's/^API key for tenant "default": //p' "$WORK/sluice.out")
RESULTS+=("$(run_wrk 'sluice GET /v1/health' http://127.0.0.1:9093/v1/health)")
lua_post "$WORK/event.json" "$KEY" > "$WORK/ingest.lua"
RESULTS+=("$(run_wrk 'sluice POST /v1/events (durable, fsync)' http://127.0.0.1:9093/v1/events "$WORK/ingest.lua")")
lua_post "$WORK/batch.json" "$KEY" > "$WORK/batch.lua"
RESULTS+=("$(run_wrk 'sluice POST /v1/events/batch x100 (durable)' http://127.0.0.1:9093/v1/events/batch "$WORK/batch.lua")")
RSS_KB=$(awk '/VmHWM/ {print $2}' /proc/$SLUICE/status)
kill -TERM $SLUICE; wait $SLUICE 2>/dev/null || true

echo
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $(git rev-parse --short HEAD); cpu: $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //'); cores: $CORES; server on core 0, wrk -t1 -c$CONNS on core 1, ${DURATION}s per run"
echo
echo "| run | req/s | events/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|---|"
for r in "${RESULTS[@]}"; do
  IFS='|' read -r label rps p50 p99 errors <<<"$r"
  events="$rps"; [[ "$label" == *x100* ]] && events=$(awk -v r="$rps" 'BEGIN {printf "%.0f", r*100}')
  echo "| $label | $rps | $events | $p50 | $p99 | $errors |"
done
HELLO_RPS=$(cut -d'|' -f2 <<<"${RESULTS[0]}")
PARSE_RPS=$(cut -d'|' -f2 <<<"${RESULTS[1]}")
INGEST_RPS=$(cut -d'|' -f2 <<<"${RESULTS[3]}")
echo
awk -v i="$INGEST_RPS" -v p="$PARSE_RPS" -v h="$HELLO_RPS" 'BEGIN {
  printf "durable ingest / parse-only reference: %.1f %% (target >= 85 %%)\n", 100*i/p
  printf "durable ingest / hello reference:      %.1f %%\n", 100*i/h }'
echo "sluice peak RSS during the runs: $((RSS_KB / 1024)) MiB"
