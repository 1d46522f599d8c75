#!/usr/bin/env bash
# bench/consumers.sh: durable single-event ingest (100 connections, closed loop) on a fresh server whose
# tenant has 1 consumer (its default inbox) or 10 (9 named, all types), interleaved.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BIN:-target/release/sluice}
[ -x "$B" ] || cargo build --release --quiet
PORT=18520
ticks=$(getconf CLK_TCK)
for round in 1 2 3; do
  for n in 0 9; do
    dir=$(mktemp -d)
    "$B" serve --listen 127.0.0.1:$PORT --data-dir "$dir" >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do grep -q 'API key for tenant' "$dir/log" && break; sleep 0.05; done
    key=$(grep -o 'sk_[^ ]*' "$dir/log" | head -1)
    for i in $(seq 1 $n); do
      curl -s -o /dev/null -w '' localhost:$PORT/v1/consumers -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "{\"name\":\"c$i\"}"
    done
    c0=$(awk -v t="$ticks" '{print ($14+$15)/t}' /proc/$pid/stat)
    out=$("$B" bench --url http://127.0.0.1:$PORT --api-key "$key" --connections 100 --duration 8s --json 2>/dev/null)
    c1=$(awk -v t="$ticks" '{print ($14+$15)/t}' /proc/$pid/stat)
    rps=$(echo "$out" | python3 -c 'import sys,json; r=json.load(sys.stdin); print(round(r["req_per_s"]), r["requests"])')
    set -- $rps
    us=$(python3 -c "print(round(($c1-$c0)*1e6/$2,1))")
    echo "round $round consumers $((n+1)) req/s $1 server_us/req $us"
    kill $pid; wait $pid 2>/dev/null || true
    rm -rf "$dir"
  done
done
