#!/usr/bin/env bash
# Wake-ups per durable request: context switches and the syscalls that carry them.
#
#   bench/wakeups.sh [connections, default 100] [seconds, default 10]
#   SLUICE_BIN=/path/to/other/sluice bench/wakeups.sh ...   # another build
#   REFERENCE=1 bench/wakeups.sh ...   # the parse-only hyper reference (bench/reference)
#   PROTO=thread|uring|thread+work bench/wakeups.sh ...   # the commit prototypes
#                                    # (bench/reference/src/bin/commit-server.rs)
#
# Starts `sluice serve` pinned to core 0 (durable, fsync) and drives closed-loop single
# event ingest from core 1, while `perf stat` counts, over the server's threads only:
# context switches, `futex` (thread hand-offs and parking), `epoll_wait` (the runtime's
# parks), `write`/`writev`/`pwrite64` (socket answers, log writes, eventfd wakes),
# `fdatasync`, `read`/`recvfrom`. Each is divided by the requests answered, so a change
# to how the commit path completes requests shows as a count, not as noisy req/s. Also
# prints the server's user and system CPU per request, from /proc.
#
# Needs perf with the syscalls tracepoints (perf_event_paranoid ≤ 2 for one's own
# processes is enough here).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS="${1:-100}"
SECS="${2:-10}"
cargo build --release -q -p sluice -p sluice-bench-reference
BIN="${SLUICE_BIN:-target/release/sluice}"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
if [ -n "${REFERENCE:-}" ]; then
  taskset -c 0 target/release/parse-server 127.0.0.1:18541 > "$WORK/out" 2>&1 &
  READY="listening on"
elif [ -n "${PROTO:-}" ]; then
  taskset -c 0 target/release/commit-server 127.0.0.1:18541 "$PROTO" "$WORK" > "$WORK/out" 2>&1 &
  READY="listening on"
else
  taskset -c 0 "$BIN" serve --listen 127.0.0.1:18541 --data-dir "$WORK/data" > "$WORK/out" 2>&1 &
  READY="API key"
fi
PID=$!
for _ in $(seq 400); do grep -q "$READY" "$WORK/out" && break; sleep 0.05; done
KEY=$(grep -o 'sk_[A-Za-z0-9_-]*' "$WORK/out" | head -1 || echo none)
EVENTS=context-switches,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_pwrite64,syscalls:sys_enter_fdatasync,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom
TICKS=$(getconf CLK_TCK)
read -r U0 S0 < <(sed 's/.*) //' "/proc/$PID/stat" | awk '{print $12, $13}')
perf stat -x, -e "$EVENTS" -p "$PID" -o "$WORK/perf" &
PERF=$!
taskset -c 1 "$BIN" bench --url "http://127.0.0.1:18541${REFERENCE:+/v1/events}${PROTO:+/v1/events}" --api-key "$KEY" --connections "$CONNS" \
  --duration "${SECS}s" --json > "$WORK/bench.json"
kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true
read -r U1 S1 < <(sed 's/.*) //' "/proc/$PID/stat" | awk '{print $12, $13}')
python3 - "$WORK/bench.json" "$WORK/perf" "$CONNS" "$((U1 - U0))" "$((S1 - S0))" "$TICKS" <<'PY'
import json, sys
bench, perf, conns, user, system, ticks = sys.argv[1:7]
r = json.load(open(bench))
n = sum(c for s, c in r["statuses"].items() if 200 <= int(s) < 300)
print(f"{conns} connections: {n} requests answered 2xx, {r['req_per_s']:,.0f} req/s, p99 {r['latency_ms']['p99']} ms")
print(f"server CPU per request: user {1e6 * int(user) / int(ticks) / n:.2f} µs, system {1e6 * int(system) / int(ticks) / n:.2f} µs")
for line in open(perf):
    parts = line.strip().split(",")
    if len(parts) < 3 or not parts[0].replace(".", "").isdigit():
        continue
    print(f"  {parts[2].replace('syscalls:sys_enter_', ''):18s} {float(parts[0]) / n:8.3f} per request")
PY
