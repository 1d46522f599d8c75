#!/usr/bin/env bash
# Push delivery's benchmarks, in one job:
#
#   bench/webhooks.sh [seconds per run, default 8]
#
#   1. the delivery rate: a sweep of ingest rates with 4 endpoints (each event goes to
#      all 4), 100-event batches: deliveries/s, success, ingest→delivery latency, and
#      an SVG plot ($OUT/webhook-sweep.svg);
#   2. latency at half the peak, with 100-event and 10-event batches (a 100-event batch
#      fanned out 4× is a burst of 400 deliveries: its tail is the burst's);
#   3. ingest next to a hanging endpoint: single-event durable ingest, closed loop, 100
#      connections, without a subscription, then with one whose endpoint accepts and
#      never answers (max_in_flight 1000, every attempt running into the timeout);
#   4. memory with a 1 M-event backlog behind a dead endpoint: the server's RSS after
#      ingesting 1 M events with no subscription, and (another data directory) with a
#      FIFO subscription whose endpoint refuses connections.
#
# ONLY="3 4" bench/webhooks.sh runs just those parts.
#
# The server and the load generator (with its receivers) run unpinned on the
# machine's two cores, as the svix-server figures this is compared with were measured.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-8}"
OUT="${OUT:-target/bench-webhooks}"
mkdir -p "$OUT"
cargo build --release -q -p sluice
BIN=target/release/sluice
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

start() { # $1 port, $2 data dir; sets PID and KEY
  "$BIN" serve --listen 127.0.0.1:"$1" --data-dir "$2" --allow-private-targets > "$2.out" 2> "$2.err" & PID=$!
  wait_port "$1"
  for _ in $(seq 100); do grep -q "API key" "$2.out" && break; sleep 0.05; done
  KEY=$(sed -n 's/^API key for tenant "default": //p' "$2.out")
}

ONLY="${ONLY:-1 2 3 4}"
want() { [[ " $ONLY " == *" $1 "* ]]; }

if want 1 || want 2; then
echo "== 1. the delivery rate (4 endpoints, 100-event batches)"
start 9500 "$WORK/d1"
"$BIN" bench --url http://127.0.0.1:9500 --api-key "$KEY" --workload webhook --endpoints 4 --connections 2 \
  --sweep-over rate --sweep 2000,6000,10000,12000,14000 --duration "${DURATION}s" \
  --plot "$OUT/webhook-sweep.svg" --json > "$OUT/sweep.json" 2> /dev/null
python3 - "$OUT/sweep.json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))
print("| events/s offered | deliveries/s | success | delivery p50 ms | p99 ms | p99.9 ms |")
print("|---|---|---|---|---|---|")
for r in runs:
    e = r["end_to_end_ms"]
    print(f"| {r['rate']:,} | {r['consumed_per_s']:,.0f} | {r['success_pct']:.2f} % | {e['p50']:.2f} | {e['p99']:.2f} | {e['p999']:.2f} |")
peak = max(r["consumed_per_s"] for r in runs)
print(f"\npeak: {peak:,.0f} deliveries/s")
open(sys.argv[1] + ".peak", "w").write(str(int(peak)))
PY
PEAK=$(cat "$OUT/sweep.json.peak")
HALF=$((PEAK / 2 / 4))
echo
echo "== 2. latency at half the peak ($((HALF * 4)) deliveries/s: $HALF events/s × 4 endpoints)"
for batch in 100 10; do
  "$BIN" bench --url http://127.0.0.1:9500 --api-key "$KEY" --workload webhook --endpoints 4 --connections 4 \
    --batch-size $batch --rate $HALF --duration "${DURATION}s" 2>/dev/null | tail -1 | sed "s/^/batches of $batch: /"
done
kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
fi

if want 3; then
echo
echo "== 3. durable single-event ingest, 100 connections, beside a hanging endpoint"
python3 - 9599 <<'PY' &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4096)
held = []
while True:
    c, _ = s.accept(); held.append(c)   # accept, read nothing, never answer
PY
HANG=$!
wait_port 9599
: > "$WORK/hang.txt"
for round in 1 2 3; do
  for run in without with; do
    rm -rf "$WORK/d3"; start 9501 "$WORK/d3"
    if [ $run = with ]; then
      curl -s localhost:9501/v1/subscriptions -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        -d '{"target_url":"http://127.0.0.1:9599/hang","ordering":"none","max_in_flight":1000}' > /dev/null
    fi
    "$BIN" bench --url http://127.0.0.1:9501 --api-key "$KEY" --workload ingest --connections 100 \
      --duration "${DURATION}s" --json 2>/dev/null > "$WORK/r.json"
    python3 - "$WORK/r.json" $run $round <<'PY' | tee -a "$WORK/hang.txt"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"round {sys.argv[3]} {sys.argv[2]:>7} a hanging subscription: {r['req_per_s']:,.0f} req/s, p99 {r['latency_ms']['p99']:.2f} ms, {r['success_pct']:.2f} % 2xx")
PY
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
  done
done
python3 - "$WORK/hang.txt" <<'PY'
import re, sys
rates = {"without": [], "with": []}
for line in open(sys.argv[1]):
    m = re.match(r"round \d+ +(without|with) .*?: ([\d,]+) req/s", line)
    rates[m.group(1)].append(float(m.group(2).replace(",", "")))
ratios = [w / wo for w, wo in zip(rates["with"], rates["without"])]
print("with/without per round: " + ", ".join(f"{r:.3f}" for r in ratios)
      + f"; of the sums: {sum(rates['with']) / sum(rates['without']):.3f}")
PY
kill "$HANG" 2>/dev/null || true
fi

if want 4; then
echo
echo "== 4. RSS with 1 M events stored, without and with a dead endpoint's backlog"
ingest_million() {
  python3 - "$KEY" <<'PY'
import http.client, json, sys
key = sys.argv[1]
body = json.dumps([{"event_type": "backlog", "payload": {"n": i, "pad": "x" * 300}} for i in range(1000)])
c = http.client.HTTPConnection("127.0.0.1", 9502)
for _ in range(1000):
    c.request("POST", "/v1/events/batch", body, {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 201, r.status
PY
}
for run in "no subscription" "a FIFO subscription to a dead endpoint"; do
  rm -rf "$WORK/d4"; start 9502 "$WORK/d4"
  if [ "$run" != "no subscription" ]; then
    curl -s localhost:9502/v1/subscriptions -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
      -d '{"target_url":"http://127.0.0.1:9/dead"}' > /dev/null   # port 9: nothing listens
  fi
  BEFORE=$(rss_kb "$PID")
  ingest_million
  AFTER=$(rss_kb "$PID")
  echo "$run: RSS $((BEFORE / 1024)) MiB before, $((AFTER / 1024)) MiB after 1,000,000 events"
  curl -s localhost:9502/metrics | grep -E "^sluice_webhook_backlog" || true
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
done
fi
echo
echo "plot: $OUT/webhook-sweep.svg"
