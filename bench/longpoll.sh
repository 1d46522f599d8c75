#!/usr/bin/env bash
# Long polling against busy polling: server CPU per consumed event, with consumers that
# mostly wait: one generator ingests at a modest open-loop rate, another runs ten
# consumers (poll with a lease, ack what came).
#
#   bench/longpoll.sh            # 10 s per mode
#   DURATION=30s RATE=2000 bench/longpoll.sh
#
# For each mode (wait_seconds 0, the 1 ms back-off busy poll, and 20, long polling) it
# starts a fresh release server, runs both generators at once, and prints the
# server's CPU seconds (utime+stime from /proc), events acked (the server's
# sluice_inbox_acked_total), empty polls, and CPU per acked event.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
RATE=${RATE:-1000}
CONSUMERS=${CONSUMERS:-10}
cargo build --release --quiet
BIN=target/release/sluice
PORT=${PORT:-18431}
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{print ($14+$15)/t}' "/proc/$1/stat"; }
printf '%-14s %10s %10s %12s %14s\n' mode cpu_s acked empty_polls consume_us_per_event
for wait in ${WAITS:-none 0 20}; do
    dir=$(mktemp -d)
    "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$dir" --admin-token bench >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do grep -q 'API key for tenant' "$dir/log" && break; sleep 0.05; done
    key=$(sed -n 's/^API key for tenant "default": //p' "$dir/log")
    before=$(cpu $pid)
    # Producers and consumers as two load generators, so that the producers' open-loop
    # schedule is theirs alone (a parked long poll holds no producer's slot).
    "$BIN" bench --url http://127.0.0.1:$PORT --api-key "$key" --workload ingest \
        --connections 2 --rate "$RATE" --duration "$DURATION" >"$dir/producer" 2>&1 &
    producer=$!
    if [ "$wait" = none ]; then
        out=""   # the reference: the producer alone, so consuming's own cost shows
    else
        out=$("$BIN" bench --url http://127.0.0.1:$PORT --api-key "$key" --workload consume \
            --connections "$CONSUMERS" --batch-size 10 --duration "$DURATION" --wait-seconds $wait 2>&1)
    fi
    wait $producer
    acked=$(curl -s http://127.0.0.1:$PORT/metrics | awk '$1=="sluice_inbox_acked_total"{print $2}')
    after=$(cpu $pid)
    kill $pid; wait $pid 2>/dev/null || true
    python3 - "$wait" "$before" "$after" "${acked:-0}" "$dir/../sluice-longpoll-ref" <<PY
import os, re, sys
w, b, a, c, ref_file = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(float(sys.argv[4])), sys.argv[5]
if w == "none":
    open(ref_file, "w").write(str(a - b))
    print(f"{'producer only':<14} {a-b:>10.2f} {'-':>10} {'-':>12} {'-':>14}   (the reference)")
    sys.exit(0)
ref = float(open(ref_file).read()) if os.path.exists(ref_file) else 0.0
out = '''$out'''
m = re.search(r"empty inbox polls: ([0-9]+)", out)
e = int(m.group(1)) if m else 0
mode = "busy (wait 0)" if w == "0" else f"long (wait {w})"
per = (a - b - ref) / c * 1e6 if c else float("nan")
print(f"{mode:<14} {a-b:>10.2f} {c:>10} {e:>12} {per:>14.1f}   (consuming's own CPU per event: total minus the reference)")
PY
    [ -n "${VERBOSE:-}" ] && echo "$out"
    rm -rf "$dir"
done
