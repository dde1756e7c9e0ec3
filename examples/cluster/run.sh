#!/usr/bin/env bash
# Three chat nodes sharing one Redis behind a round-robin nginx, on this
# machine: open http://127.0.0.1:8080 in a few tabs (or browsers), then stop a
# node with `kill` and watch its pages move to the others without losing a message.
#
#   bash examples/cluster/run.sh
#
# Needs redis-server and nginx (Debian: apt-get install redis-server nginx).
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -p tidewire-examples --bin chat
BIN=${CARGO_TARGET_DIR:-target}/debug/chat
WORK=$(mktemp -d)
mkdir -p "$WORK/redis" "$WORK/nginx/tmp"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$WORK"' EXIT

redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis" &
pids+=($!)
for n in 1 2 3; do
    REDIS_URL=redis://127.0.0.1:6390/ NODE_NAME=node-$n PORT=300$n "$BIN" &
    pids+=($!)
done
sed "s|@PREFIX@|$WORK/nginx|g" examples/cluster/nginx.conf > "$WORK/nginx/nginx.conf"
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
pids+=($!)
echo "chat cluster: http://127.0.0.1:8080 (nodes on 3001-3003, Redis on 6390)"
wait
