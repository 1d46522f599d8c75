#!/usr/bin/env bash
# Instructions per request: a figure this noisy machine cannot blur.
#
#   bench/instructions.sh [ingest|batch|consume] [requests, default 6000]
#   SLUICE_BIN=/path/to/other/sluice bench/instructions.sh ...   # another build
#   CALLGRIND_ARGS=--separate-threads=yes KEEP=dir bench/instructions.sh   # per-thread dumps
#   RATE=2000 CONNS=100 bench/instructions.sh ingest 20000   # loaded: commits group requests
#   PROTO=thread|uring bench/instructions.sh ingest 6000   # the per-core commit prototype
#   PROTO=thread+work bench/instructions.sh ingest 6000    # + required headers and work
#   REFERENCE=1 bench/instructions.sh ingest 6000   # the parse-only hyper reference
#                                                   # (bench/reference), same load
#
# Runs `sluice serve` under callgrind (instruction counts, not time: the same binary and
# input give the same total whatever else the machine does), zeroes the counters once
# it is up, sends a fixed number of requests with `sluice bench` at a gentle open-loop
# rate, and divides the instructions of every server thread by the requests answered.
# Compare two commits by running it on each; a change to the request path shows here
# to the percent where req/s comparisons drown in ±10 % run-to-run noise.
#
# `consume` is the pull path: the inbox is filled first (in batches, before the counters
# are zeroed), then each request is a poll that leases one event or the ack of it.
#
# Needs valgrind (callgrind_control comes with it). Takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKLOAD="${1:-ingest}"
REQUESTS="${2:-6000}"
RATE="${RATE:-300}"
CONNS="${CONNS:-10}"
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
if [ "$WORKLOAD" = consume ] && [ -n "${REFERENCE:-}${PROTO:-}" ]; then
  echo "consume measures Sluice's inbox; the reference and the prototypes have none" >&2
  exit 2
fi
cargo build --release -q -p sluice -p sluice-bench-reference
SERVER="${SLUICE_BIN:-target/release/sluice}"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] && cp "$WORK"/cg.out.* "$KEEP"/; rm -rf "$WORK"' EXIT
if [ -n "${REFERENCE:-}" ]; then
  valgrind --tool=callgrind ${CALLGRIND_ARGS:-} --callgrind-out-file="$WORK/cg.out" \
    target/release/parse-server 127.0.0.1:9097 > "$WORK/out" 2> "$WORK/err" &
  READY="listening on"
  KEY=none
elif [ -n "${PROTO:-}" ]; then
  valgrind --tool=callgrind ${CALLGRIND_ARGS:-} --callgrind-out-file="$WORK/cg.out" \
    target/release/commit-server 127.0.0.1:9097 "$PROTO" "$WORK" > "$WORK/out" 2> "$WORK/err" &
  READY="listening on"
  # A Sluice key's length; `thread+work` checks it.
  KEY=sk_0123456789abcdefghijklmnopqrstuv
else
  valgrind --tool=callgrind ${CALLGRIND_ARGS:-} --callgrind-out-file="$WORK/cg.out" \
    "$SERVER" serve --listen 127.0.0.1:9097 --data-dir "$WORK/data" \
    > "$WORK/out" 2> "$WORK/err" &
  READY="sluice listening"
fi
for _ in $(seq 600); do grep -q "$READY" "$WORK/err" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
[ -n "${REFERENCE:-}${PROTO:-}" ] || KEY=$(sed -n 's/^API key for tenant "default": //p' "$WORK/out")
PID=$(pgrep -f "callgrind.*127.0.0.1:9097" | head -1)
EXTRA=()
if [ "$WORKLOAD" = consume ]; then
  # More events than the polls can take, so no poll comes back empty.
  BATCH=$(python3 -c 'import json; print(json.dumps([{"event_type": "bench.fill", "payload": {"n": i}} for i in range(100)]))')
  for _ in $(seq "$((REQUESTS / 100 + 10))"); do
    curl -sf -o /dev/null -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
      --data "$BATCH" http://127.0.0.1:9097/v1/events/batch
  done
  EXTRA=(--batch-size 1)
fi
callgrind_control --zero "$PID" > /dev/null 2>&1
target/release/sluice bench --url http://127.0.0.1:9097 --api-key "$KEY" --workload "$WORKLOAD" \
  --connections "$CONNS" --rate "$RATE" --duration "$((REQUESTS / RATE))s" --timeout 30s \
  "${EXTRA[@]}" --json > "$WORK/bench.json"
callgrind_control --dump "$PID" > /dev/null 2>&1
# The reference has no shutdown of its own; the counts are in the dump already.
if [ -n "${REFERENCE:-}${PROTO:-}" ]; then kill -KILL "$PID"; else kill -INT "$PID"; fi
wait "$PID" 2>/dev/null || true
# The first dump holds exactly the instructions from the zeroing to the end of the load.
DUMP=$(ls "$WORK"/cg.out.* | sort | head -1)
python3 - "$WORK/bench.json" "$DUMP" "$WORKLOAD" <<'PY'
import json, sys
bench, dump, workload = sys.argv[1:4]
report = json.load(open(bench))
answered = sum(n for s, n in report["statuses"].items() if 200 <= int(s) < 300)
ir = next(int(l.split()[1]) for l in open(dump) if l.startswith(("summary:", "totals:")))
print(f"{workload}: {answered} requests answered 2xx of {report['requests']} sent, {report['events']} events")
per_event = f"; per event: {ir / report['events']:,.0f}" if report["events"] else ""
print(f"server instructions per request (all threads): {ir / answered:,.0f}{per_event}")
PY
