#!/usr/bin/env bash
# The benchmark suite: Sluice against the reference servers, in one job, with the server
# and the load generator (`sluice bench`) pinned to separate cores when there are two.
#
#   bench/suite.sh [seconds per run, default 10]
#
# Runs, in order:
#   1. reference: a minimal hyper "hello" GET server (the ceiling of HTTP here);
#   2. reference: a minimal hyper server that parses the ingest body and answers 201
#      without storing (the ceiling of ingest);
#   3. Sluice GET /v1/health;
#   4. Sluice mixed producers + consumers on an empty inbox (ingest→consume latency);
#   5. Sluice durable POST /v1/events, closed loop, 100 connections, then reference 2
#      again (the ratio is against the mean of the two: the machine drifts);
#   6. the same, open loop at 50 % of the peak of 5 (the p99 target's setting), then
#      the parse-only reference at that rate, alone and beside another process syncing
#      at Sluice's sync rate (bench/tail_floor.sh: the tail the disk's traffic alone
#      gives any server here);
#   7. Sluice batch ingest, 100 events a request;
#   8. the consumer loop (poll with a lease, ack), draining what 5 to 7 stored;
#   9. a concurrency sweep of durable ingest up to 10,000 connections, with its SVG;
#  10. wrk on the same targets as 1 and 5, if wrk is installed: req/s and each client's
#      CPU time per request (is the load generator the limit?).
# Before all of them it probes the disk alone (bench/disk_probe.py), and it reports the
# store's fsync histogram over run 6: the disk's share of the latency tail. For runs 1
# to 8 it also reports the server's CPU time per request and how busy its core was
# (from /proc/<pid>/stat): the cost of a request, which the machine's phase moves less
# than req/s, and whether a run was bound by the CPU or by waiting.
# and prints every figure, and the ratios against 1 and 2. Files go to $OUT
# (default target/bench-suite): one JSON report per run, suite.md and sweep.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
OUT="${OUT:-target/bench-suite}"
SWEEP="${SWEEP:-10,100,500,2000,10000}"
mkdir -p "$OUT"
rm -f "$OUT"/*.json
echo "building release binaries..." >&2
cargo build --release -q -p sluice -p sluice-bench-reference
BIN=target/release

CORES=$(nproc)
if [ "$CORES" -ge 2 ]; then SERVER_CPU=(taskset -c 0); CLIENT_CPU=(taskset -c 1); PINNING="server on core 0, load generator on core 1"
else SERVER_CPU=(); CLIENT_CPU=(); PINNING="one core: server and load generator share it"; fi
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# The disk alone, on the server's core: write+fdatasync at 1,000 syncs/s (about what
# Sluice issues under concurrent load) and flat out. Its tail is the floor of every
# durable figure below.
echo "[disk] write+fdatasync probe" >&2
"${SERVER_CPU[@]}" python3 bench/disk_probe.py --dir target --seconds 3 1000 0 | grep -v "^writing" > "$OUT/disk.txt"

wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# CPU time (user + system, all threads) a process has used, in clock ticks. Field 2 of
# /proc/<pid>/stat is the name in parentheses, so fields are counted after its ")".
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
TICKS_PER_S=$(getconf CLK_TCK)

bench() { # $1 label, $2 the server's pid, then sluice bench flags; writes $OUT/NN.json and echoes its path
  local label="$1" server="$2"; shift 2
  # Numbered by the files already there (this may run in a $(...) subshell).
  local n; n=$(( $(find "$OUT" -maxdepth 1 -name '[0-9]*.json' | wc -l) + 1 ))
  local file; file=$(printf '%s/%02d.json' "$OUT" "$n")
  echo "[$n] $label" >&2
  # The server's CPU time over the run: per request it is the cost of a request whether
  # or not the server was saturated, and against the run's length it says how busy the
  # server's core was (a closed loop that leaves it idle is bound by latency, not CPU).
  local before; before=$(cpu_ticks "$server")
  "${CLIENT_CPU[@]}" "$BIN/sluice" bench --duration "${DURATION}s" --json "$@" > "$file.tmp"
  local after; after=$(cpu_ticks "$server")
  python3 -c 'import json,sys
r = json.load(open(sys.argv[1])); r["label"] = sys.argv[2]
r["server_cpu_s"] = (int(sys.argv[4]) - int(sys.argv[3])) / int(sys.argv[5])
json.dump(r, sys.stdout)' "$file.tmp" "$label" "$before" "$after" "$TICKS_PER_S" > "$file"
  rm -f "$file.tmp"
  echo "$file"
}
field() { python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$1" "$2"; }

"${SERVER_CPU[@]}" "$BIN/hello-server" 127.0.0.1:9091 2>/dev/null & HELLO=$!
"${SERVER_CPU[@]}" "$BIN/parse-server" 127.0.0.1:9092 2>/dev/null & PARSE=$!
wait_port 9091; wait_port 9092
HELLO_JSON=$(bench "reference: hyper hello GET" "$HELLO" --url http://127.0.0.1:9091/ --workload get)
PARSE_JSON=$(bench "reference: hyper parse + 201, no storage" "$PARSE" --url http://127.0.0.1:9092/v1/events --workload ingest)
kill "$PARSE"

"${SERVER_CPU[@]}" "$BIN/sluice" serve --listen 127.0.0.1:9093 --data-dir "$WORK/data" \
  --max-connections 20000 > "$WORK/sluice.out" 2> "$WORK/sluice.err" & SLUICE=$!
wait_port 9093
export SLUICE_API_KEY; SLUICE_API_KEY=$(sed -n 's/^API key for tenant "default": //p' "$WORK/sluice.out")
S=http://127.0.0.1:9093
bench "sluice GET /v1/health" "$SLUICE" --url $S/v1/health --workload get >/dev/null
MIXED_JSON=$(bench "sluice mixed: 90 producers, 10 consumers (empty inbox)" "$SLUICE" --url $S --workload mixed --connections 100)
INGEST_JSON=$(bench "sluice POST /v1/events, durable" "$SLUICE" --url $S --workload ingest)
PEAK=$(field "$INGEST_JSON" req_per_s)
# The reference again, right after: this machine drifts by tens of percent within a
# minute, so the ratio is taken against the mean of the runs just before and after.
"${SERVER_CPU[@]}" "$BIN/parse-server" 127.0.0.1:9092 2>/dev/null & PARSE=$!
wait_port 9092
bench "reference again: hyper parse + 201, no storage" "$PARSE" --url http://127.0.0.1:9092/v1/events --workload ingest >/dev/null
kill "$PARSE"
syncs() { curl -s "$S/metrics" | awk '/^sluice_store_fsync_seconds_bucket/ {printf "%s ", $2}'; }
SYNCS_BEFORE=$(syncs)
bench "sluice POST /v1/events, open loop at 50 % of peak ($((PEAK / 2)) req/s)" "$SLUICE" --url $S --workload ingest --rate $((PEAK / 2)) >/dev/null
SYNCS_AFTER=$(syncs)
# The same open-loop rate against the parse-only reference, alone and while another
# process syncs at the rate Sluice just did: the tail any server gets here from the
# disk's traffic alone (see bench/tail_floor.sh).
SYNC_RATE=$(( ($(echo "$SYNCS_AFTER" | awk '{print $NF}') - $(echo "$SYNCS_BEFORE" | awk '{print $NF}')) / DURATION ))
echo "[floor] reference at $((PEAK / 2)) req/s, alone and beside $SYNC_RATE syncs/s" >&2
bash bench/tail_floor.sh $((PEAK / 2)) "$SYNC_RATE" "$DURATION" | tail -n +2 > "$OUT/floor.txt"
bench "sluice POST /v1/events/batch x100, durable" "$SLUICE" --url $S --workload batch --batch-size 100 >/dev/null
bench "sluice consumer loop: poll 100 with lease, ack (10 conns)" "$SLUICE" --url $S --workload consume --connections 10 --batch-size 100 >/dev/null
echo "[sweep] $SWEEP connections" >&2
"${CLIENT_CPU[@]}" "$BIN/sluice" bench --url $S --workload ingest --duration "${DURATION}s" \
  --sweep "$SWEEP" --plot "$OUT/sweep.svg" --json > "$OUT/sweep.json"
RSS_KB=$(awk '/VmHWM/ {print $2}' /proc/$SLUICE/status)

# wrk side by side: the same target, the same core, one thread each. Besides req/s
# (which a slower server caps for both), each client's CPU time per request, from
# getrusage: the client's own cost, which says whether it could be the bottleneck.
WRK=""
cpu_run() { # $1 file for "cpu_seconds", then the command; the command's stdout passes through
  local file="$1"; shift
  python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[2:], check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(str(r.ru_utime + r.ru_stime))' "$file" "$@"
}
if command -v wrk >/dev/null; then
  cat > "$WORK/ingest.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $SLUICE_API_KEY"
wrk.body = '{"event_type":"bench.event","payload":{"pad":"$(printf 'x%.0s' $(seq 390))"}}'
LUA
  echo "[wrk] side by side" >&2
  for target in hello ingest; do
    if [ $target = hello ]; then URL=http://127.0.0.1:9091/; LUA=(); FLAGS=(--workload get); else URL=$S/v1/events; LUA=(-s "$WORK/ingest.lua"); FLAGS=(--workload ingest); fi
    cpu_run "$WORK/wrk.cpu" "${CLIENT_CPU[@]}" wrk -t1 -c100 -d"${DURATION}s" "${LUA[@]}" "$URL" > "$WORK/wrk.out"
    W_REQ=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
    cpu_run "$WORK/bench.cpu" "${CLIENT_CPU[@]}" "$BIN/sluice" bench --url "$URL" "${FLAGS[@]}" --duration "${DURATION}s" --json > "$WORK/bench.json"
    B_REQ=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$WORK/bench.json")
    WRK="$WRK $target:$W_REQ:$(cat "$WORK/wrk.cpu"):$B_REQ:$(cat "$WORK/bench.cpu")"
  done
fi
kill -TERM "$SLUICE"; wait "$SLUICE" 2>/dev/null || true
kill "$HELLO" 2>/dev/null || true

python3 - "$OUT" "$RSS_KB" "$PINNING" "$DURATION" "$WRK" "$SYNCS_BEFORE" "$SYNCS_AFTER" <<'PY' | tee "$OUT/suite.md"
import glob, json, os, subprocess, sys
out, rss_kb, pinning, duration, wrk, syncs_before, syncs_after = sys.argv[1:8]
runs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, "[0-9]*.json")))]
sweep = json.load(open(os.path.join(out, "sweep.json")))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
date = subprocess.run(["date", "-u", "+%Y-%m-%dT%H:%MZ"], capture_output=True, text=True).stdout.strip()
print(f"date: {date}; commit: {commit}; cpu: {cpu}; cores: {os.cpu_count()}; {pinning}; {duration}s per run; sluice bench, 1 thread\n")
def row(label, r):
    l = r["latency_ms"]
    errs = [f"{s}: {n}" for s, n in r["statuses"].items() if not 200 <= int(s) < 300]
    errs += [f"{k}: {r[k]}" for k in ("connect_errors", "io_errors", "timeouts", "invalid_answers") if r[k]]
    rate = r["rate"] if r["rate"] else "closed"
    cpu = r.get("server_cpu_s")
    if cpu is not None and r["requests"]:
        server = f"{1e6 * cpu / r['requests']:.1f} | {100 * cpu / r['elapsed_s']:.0f} %"
    else:
        server = "– | –"
    return (f"| {label} | {r['connections']} | {rate} | {r['req_per_s']:,.0f} | {r['events_per_s']:,.0f} | {r['success_pct']:.2f} % "
            f"| {l['p50']:.2f} | {l['p99']:.2f} | {l['p999']:.2f} | {l['max']:.1f} | {server} | {', '.join(errs) or 'none'} |")
print("| run | conns | rate | req/s | events/s | success | p50 ms | p99 ms | p99.9 ms | max ms | server CPU µs/req | server busy | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in runs:
    print(row(r["label"], r))
for r in sweep:
    print(row(f"sweep: durable ingest at {r['connections']} connections", r))
hello = runs[0]["req_per_s"]
parse_runs = [r["req_per_s"] for r in runs if "hyper parse" in r["label"]]
parse = sum(parse_runs) / len(parse_runs)
ingest = next(r for r in runs if r["label"] == "sluice POST /v1/events, durable")
openl = next(r for r in runs if "open loop" in r["label"])
batch = next(r for r in runs if "batch" in r["label"])
mixed = next(r for r in runs if r["workload"] == "mixed")
health = next(r for r in runs if "health" in r["label"])
print()
print(f"- durable ingest / parse-only reference: {100 * ingest['req_per_s'] / parse:.1f} % (target >= 85 %; "
      f"reference {' and '.join(f'{p:,.0f}' for p in parse_runs)} req/s, before and after)")
print(f"- durable ingest / hello reference: {100 * ingest['req_per_s'] / hello:.1f} %")
# The same comparison in CPU per request, which the machine's phase moves less and a
# latency-bound closed loop does not hide: how much more a durable request costs.
def cpu_per_request(r):
    return r["server_cpu_s"] / r["requests"] if r.get("server_cpu_s") and r["requests"] else None
parse_cpu = [c for c in (cpu_per_request(r) for r in runs if "hyper parse" in r["label"]) if c]
ingest_cpu = cpu_per_request(ingest)
if parse_cpu and ingest_cpu:
    reference_cpu = sum(parse_cpu) / len(parse_cpu)
    print(f"- server CPU per request: durable ingest {1e6 * ingest_cpu:.1f} µs, parse-only reference {1e6 * reference_cpu:.1f} µs "
          f"(the reference costs {100 * reference_cpu / ingest_cpu:.1f} % of a durable request; "
          f"Sluice's core was {100 * ingest['server_cpu_s'] / ingest['elapsed_s']:.0f} % busy)")
print(f"- GET /v1/health / hello reference: {100 * health['req_per_s'] / hello:.1f} %")
print(f"- batch ingest: {batch['events_per_s']:,.0f} events/s (target >= 500k)")
print(f"- open-loop p99 at 50 % of peak: {openl['latency_ms']['p99']:.2f} ms (target < 2 ms)")
# The store's fsync histogram (cumulative buckets: 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50,
# 100, 250 ms, +Inf) over the open-loop run: how much of its tail the disk explains.
before, after = [list(map(int, x.split())) for x in (syncs_before, syncs_after)]
if len(before) == len(after) == 12:
    d = [b - a for a, b in zip(before, after)]
    total = d[-1]
    if total:
        print(f"  - its {total:,} syncs: {total - d[4]} ({100 * (total - d[4]) / total:.2f} %) over 2 ms, "
              f"{total - d[5]} over 5 ms, {total - d[6]} over 10 ms")
floor = open(os.path.join(out, "floor.txt")).read().strip().splitlines()
if floor:
    print("  - the parse-only reference (no disk I/O) at the same rate (bench/tail_floor.sh):")
    for line in floor:
        print(f"    - {line.strip()}")
disk = open(os.path.join(out, "disk.txt")).read().strip().splitlines()
if disk:
    print("- the disk alone (bench/disk_probe.py, 8 KiB write + fdatasync, server's core):")
    for line in disk:
        print(f"  - {line.strip()}")
e = mixed["end_to_end_ms"]
if e:
    print(f"- mixed: {mixed['events_per_s']:,.0f} events/s ingested, {mixed['consumed_per_s']:,.0f}/s consumed; ingest→consume p50 {e['p50']:.2f} ms, p99 {e['p99']:.2f} ms")
top = sweep[-1]
print(f"- sweep at {top['connections']} connections: {top['success_pct']:.2f} % answered 2xx; connect errors {top['connect_errors']}, resets {top['io_errors']}, timeouts {top['timeouts']}")
print(f"- sluice peak RSS over the whole suite: {int(rss_kb) // 1024} MiB")
for part in wrk.split():
    target, w_req, w_cpu, b_req, b_cpu = part.split(":")
    w_req, w_cpu, b_req, b_cpu = int(w_req), float(w_cpu), int(b_req), float(b_cpu)
    print(f"- sluice bench vs wrk -t1 -c100 on {target} (same core, {duration}s each): {b_req / float(duration):,.0f} vs {w_req / float(duration):,.0f} req/s ({100 * b_req / w_req:.0f} %); "
          f"client CPU per request {1e6 * b_cpu / b_req:.2f} vs {1e6 * w_cpu / w_req:.2f} us")
print(f"\nplot: {os.path.join(out, 'sweep.svg')}")
PY
