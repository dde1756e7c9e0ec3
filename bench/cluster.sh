#!/usr/bin/env bash
# Cross-node broadcast through Redis against one node, in one sitting:
#
#   bash bench/cluster.sh            # default sizes (about 4 minutes)
#   bash bench/cluster.sh --quick    # tiny sizes, to keep the script working
#
# Runs tidewire-bench `fanout` (1000 WebSocket clients in room `bench`, one
# publisher, the rate raised until delivery falls behind or p99 > 200 ms) three ways,
# interleaved over ROUNDS rounds (default 2):
#   single  sio-test-server, connection state recovery on, publisher and clients on it
#   local   a cluster-node (Redis adapter, recovery on): publisher and clients on node B
#   cross   publisher on node A, clients on node B: every packet crosses Redis
# Servers and redis-server share core 0, the load generator runs on core 1.
# Prints one JSON line per run, then a summary; needs redis-server on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
ROUNDS=${ROUNDS:-2}
[ "${1:-}" = "--quick" ] && QUICK=1 && ROUNDS=1
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ $QUICK = 1 ]; then
  cargo build --quiet -p tidewire-bench -p tidewire-examples --bin tidewire-bench --bin sio-test-server --bin cluster-node
  BIN=$TARGET/debug
  FAN="--clients 50 --step-secs 0.3 --max-steps 2 --grace-secs 0.5 --overload-secs 0"
else
  cargo build --release --quiet -p tidewire-bench -p tidewire-examples --bin tidewire-bench --bin sio-test-server --bin cluster-node
  BIN=$TARGET/release
  FAN="--clients 1000 --step-secs 1.5 --grace-secs 1.5 --max-steps 10 --start-rate 100 --overload-secs 0"
fi
SERVER_CORE=0 LOAD_CORE=1
pin_server() { if [ "$(nproc)" -ge 2 ]; then taskset -c $SERVER_CORE "$@"; else "$@"; fi; }
pin_load() { if [ "$(nproc)" -ge 2 ]; then taskset -c $LOAD_CORE "$@"; else "$@"; fi; }

WORK=$(mktemp -d)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
pin_server redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis" > "$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

# start NAME CMD...: runs a server, waits for its `listening on` line, sets URL_<NAME>.
start() {
  local name=$1; shift
  local out="$WORK/$name.out"
  HOST=127.0.0.1 PORT=0 RUST_LOG=warn pin_server "$@" > "$out" 2> "$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q '^listening on ' "$out" 2>/dev/null && break; sleep 0.1; done
  local url; url=$(sed -n 's/^listening on //p' "$out" | head -1)
  [ -n "$url" ] || { echo "$name did not start:" >&2; cat "$WORK/$name.err" >&2; exit 1; }
  printf -v "URL_$name" '%s' "$url"
}
RECOVERY_WINDOW_MS=60000 start single "$BIN/sio-test-server"
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/ NODE_NAME=a start a "$BIN/cluster-node"
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/ NODE_NAME=b start b "$BIN/cluster-node"
sleep 2 # both nodes in the heartbeat table and subscribed

RESULTS="$WORK/results.jsonl"
for round in $(seq "$ROUNDS"); do
  for mode in single local cross; do
    case $mode in
      single) url=$URL_single pub=$URL_single ;;
      local) url=$URL_b pub=$URL_b ;;
      cross) url=$URL_b pub=$URL_a ;;
    esac
    echo "round $round: $mode" >&2
    line=$(pin_load timeout 300 "$BIN/tidewire-bench" fanout --transport websocket $FAN --url "$url" --publish-url "$pub" --label "$mode")
    echo "{\"round\":$round,\"mode\":\"$mode\",\"result\":$line}" | tee -a "$RESULTS"
  done
done

python3 - "$RESULTS" "$FAN" <<'EOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    res = r["result"]
    by.setdefault(r["mode"], []).append(res)
def med(mode, key):
    vals = [x.get(key) for x in by.get(mode, []) if isinstance(x.get(key), (int, float))]
    return statistics.median(vals) if vals else None
print("\nfanout over WebSocket (tidewire-bench fanout %s)" % sys.argv[2])
print("%-8s %16s %10s %10s" % ("mode", "delivered msg/s", "p50 ms", "p99 ms"))
single = med("single", "delivered_per_sec")
for mode in ("single", "local", "cross"):
    d = med(mode, "delivered_per_sec")
    ratio = "" if not (d and single) else "  %.2fx single" % (d / single)
    print("%-8s %16s %10s %10s%s" % (mode, d, med(mode, "p50_ms"), med(mode, "p99_ms"), ratio))
EOF
