#!/usr/bin/env bash
# Ingest beside live tails: durable single-event ingest (100 connections, closed loop)
# with no tail, with 100 tails attached that read everything, with 100 tails of a type
# never ingested ("idle"), and with one tail that never reads (stalled). Each mode runs
# on a fresh server; ROUNDS rounds, interleaved, so the machine's drift spreads over all.
#
#   bench/tails.sh            # 10 s per run, 3 rounds
#   DURATION=5s ROUNDS=2 bench/tails.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
BIN=${BIN:-target/release/sluice}
[ -x "$BIN" ] || cargo build --release --quiet
PORT=${PORT:-18471}
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{print ($14+$15)/t}' "/proc/$1/stat"; }
tails() { # $1 count, $2 query, $3 read: yes|no
    for _ in $(seq "$1"); do
        if [ "$3" = yes ]; then
            curl -sN "http://127.0.0.1:$PORT/v1/stream$2" -H "Authorization: Bearer $key" >/dev/null &
        else
            # Connect and send the request, never read the answer.
            python3 - "$PORT" "$key" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {sys.argv[2]}\r\n\r\n".encode())
time.sleep(3600)
PY
        fi
    done
}
printf '%-8s %-22s %12s %16s\n' round mode req/s server_us/req
for round in $(seq "$ROUNDS"); do
    for mode in none reading idle stalled; do
        dir=$(mktemp -d)
        "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$dir" >"$dir/log" 2>&1 &
        pid=$!
        for _ in $(seq 200); do grep -q 'API key for tenant' "$dir/log" && break; sleep 0.05; done
        key=$(sed -n 's/^API key for tenant "default": //p' "$dir/log")
        case $mode in
            reading) tails 100 "" yes ;;
            idle) tails 100 "?event_type=never.sent" yes ;;
            stalled) tails 1 "" no ;;
        esac
        # Wait until the server counts the tails as open (a condition, not a guess).
        want=$(case $mode in none) echo 0;; stalled) echo 1;; *) echo 100;; esac)
        for _ in $(seq 200); do
            open=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '$1=="sluice_tail_streams_open"{print $2}')
            [ "${open:-0}" -ge "$want" ] && break; sleep 0.05
        done
        before=$(cpu $pid)
        out=$("$BIN" bench --url "http://127.0.0.1:$PORT" --api-key "$key" --workload ingest \
            --connections 100 --duration "$DURATION" --json)
        after=$(cpu $pid)
        python3 - "$round" "$mode" "$before" "$after" <<PY
import json, sys
r = json.loads('''$out''')
rps = r["requests_per_s"] if "requests_per_s" in r else r.get("req_per_s", 0)
n = r["requests"]
print(f"{sys.argv[1]:<8} {sys.argv[2]:<22} {rps:>12.0f} {(float(sys.argv[4])-float(sys.argv[3]))/max(n,1)*1e6:>16.1f}")
PY
        kill $(jobs -p) 2>/dev/null || true
        wait 2>/dev/null || true
        rm -rf "$dir"
    done
done
