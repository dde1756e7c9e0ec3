#!/usr/bin/env bash
# Runs every benchmark scenario against tidewire and its peers, interleaved, and writes
# docs/benchmarks.md (the section between the bench markers) and docs/benchmarks.svg.
#
#   bench/run.sh                 default sizes, all peers (needs node + npm for the Node peer)
#   bench/run.sh --rounds 3      more rounds (default 2)
#   bench/run.sh --quick         tiny sizes, tidewire only, checks the tool works; writes no docs
#   bench/run.sh --only fanout   only the scenarios whose name contains the word
#   bench/run.sh --only fanout- --servers tidewire --rounds 3
#                                only these servers (here: tidewire's WebSocket, SSE and
#                                polling fan-out, three interleaved rounds)
#
# A full run rewrites docs/benchmarks.md and docs/benchmarks.svg. A partial one (--only,
# --servers) writes its report next to its results instead and prints how to merge it.
#
# Servers run pinned to core 0 (taskset -c 0), the load generator on core 1. Every run
# is bounded in time (timeout) and every wait loop in count. Loopback only.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
QUICK=0
ROUNDS=2
ONLY=""
SERVERS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --rounds) ROUNDS="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --servers) SERVERS="$2"; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--rounds N] [--only WORD] [--servers 'NAME ...']" >&2; exit 2 ;;
  esac
  shift
done

TARGET="${BENCH_TARGET_DIR:-$ROOT/target/bench}"
OUT="$TARGET/results"
mkdir -p "$OUT"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$OUT/$([ $QUICK = 1 ] && echo quick || echo full)-$STAMP.jsonl"
: > "$RESULTS"

# Servers inherit this: 15,000 idle sessions need more than the usual 1024 files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
SERVER_CORE=0
LOAD_CORE=1
if [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; then
  SERVER_CORE=""; LOAD_CORE=""
  echo "note: fewer than 2 cores or no taskset: running unpinned" >&2
fi
pin() { if [ -n "$1" ]; then shift; taskset -c "$SERVER_CORE" "$@"; else shift; "$@"; fi; }

if [ $QUICK = 1 ]; then
  # The smoke test reuses the workspace's debug build (what scripts/test.sh builds):
  # the load generator, and sio-test-server, which implements the bench contract too.
  DEBUG_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
  echo "== quick: debug binaries from $DEBUG_DIR" >&2
  cargo build --quiet -p tidewire-bench -p tidewire-examples --bin tidewire-bench --bin sio-test-server
else
  echo "== building (release, target dir $TARGET)" >&2
  export CARGO_TARGET_DIR="$TARGET"
  cargo build --release --quiet -p tidewire-bench
  for s in tidewire socketioxide raw-ws; do
    (cd bench/servers/$s && cargo build --release --quiet)
  done
fi
if [ $QUICK = 0 ]; then
  if ! [ -d bench/servers/node/node_modules/socket.io ]; then
    (cd bench/servers/node && timeout 300 npm ci --no-audit --no-fund --silent)
  fi
fi
LOADGEN="$TARGET/release/tidewire-bench"
[ $QUICK = 1 ] && LOADGEN="$DEBUG_DIR/tidewire-bench"

SERVER_PID=""
PORT=4300
start_server() { # name -> sets SERVER_PID, SERVER_URL
  local name="$1" log="$OUT/server-$1.log"
  PORT=$((PORT + 1))
  case "$name" in
    tidewire)
      if [ $QUICK = 1 ]; then cmd=("$DEBUG_DIR/sio-test-server"); else cmd=("$TARGET/release/bench-tidewire"); fi ;;
    socketioxide) cmd=("$TARGET/release/bench-socketioxide") ;;
    raw-ws) cmd=("$TARGET/release/bench-raw-ws") ;;
    node) cmd=(node "$ROOT/bench/servers/node/server.mjs") ;;
  esac
  local fifo="$OUT/listen.$$"
  : > "$fifo"
  if [ -n "$SERVER_CORE" ]; then
    PORT=$PORT HOST=127.0.0.1 taskset -c "$SERVER_CORE" "${cmd[@]}" > "$fifo" 2>>"$log" &
  else
    PORT=$PORT HOST=127.0.0.1 "${cmd[@]}" > "$fifo" 2>>"$log" &
  fi
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    if grep -q "^listening on http://" "$fifo"; then break; fi
    sleep 0.05
  done
  if ! grep -q "^listening on http://" "$fifo"; then
    echo "server $name did not start (log: $log)" >&2; stop_server; return 1
  fi
  SERVER_URL="$(grep -m1 '^listening on ' "$fifo" | sed 's/^listening on //')"
  rm -f "$fifo"
}
stop_server() {
  [ -z "$SERVER_PID" ] && return 0
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT

# The machine may be shared: before each run wait (at most QUIET_WAIT seconds) until
# the other processes use less than a quarter of a core, sampled over one second.
QUIET_WAIT="${QUIET_WAIT:-90}"
busy_ticks() { awk 'NR==1 {print $2+$3+$4+$7+$8+$9}' /proc/stat; }
wait_quiet() {
  local waited=0 a b
  while [ "$waited" -lt "$QUIET_WAIT" ]; do
    a=$(busy_ticks); sleep 1; b=$(busy_ticks)
    if [ $((b - a)) -lt 25 ]; then return 0; fi
    waited=$((waited + 1))
  done
  echo "note: machine still busy after ${QUIET_WAIT}s; running anyway (see other_cpu)" >&2
}

# name | servers | load-generator arguments
if [ $QUICK = 1 ]; then
  SCENARIOS=(
    "idle-websocket|tidewire|idle --transport websocket --n 200 --hold-secs 0.5"
    "idle-sse|tidewire|idle --transport sse --n 100 --hold-secs 0.5"
    "idle-polling|tidewire|idle --transport polling --n 100 --hold-secs 0.5"
    "fanout-websocket|tidewire|fanout --transport websocket --clients 50 --step-secs 0.3 --max-steps 2 --grace-secs 0.5 --overload-secs 0"
    "fanout-sse|tidewire|fanout --transport sse --clients 50 --step-secs 0.3 --max-steps 2 --grace-secs 0.5 --overload-secs 0"
    "fanout-polling|tidewire|fanout --transport polling --clients 50 --step-secs 0.3 --max-steps 2 --grace-secs 0.5 --overload-secs 0"
    "echo-websocket|tidewire|echo --transport websocket --clients 20 --rate 500 --secs 0.5 --warmup-secs 0.2"
    "echo-sse|tidewire|echo --transport sse --clients 20 --rate 500 --secs 0.5 --warmup-secs 0.2"
    "echo-polling|tidewire|echo --transport polling --clients 20 --rate 500 --secs 0.5 --warmup-secs 0.2"
  )
  ROUNDS=1
else
  FAN="--clients 1000 --step-secs 1.5 --grace-secs 1.5 --max-steps 16 --start-rate 100 --overload-secs 4"
  SCENARIOS=(
    "idle-websocket|tidewire socketioxide node|idle --transport websocket --n 15000 --hold-secs 2 --concurrency 128"
    "idle-sse|tidewire|idle --transport sse --n 4000 --hold-secs 2"
    "idle-polling|tidewire socketioxide node|idle --transport polling --n 4000 --hold-secs 2"
    "fanout-websocket|tidewire socketioxide raw-ws node|fanout --transport websocket $FAN"
    "fanout-sse|tidewire|fanout --transport sse $FAN"
    "fanout-polling|tidewire socketioxide node|fanout --transport polling $FAN"
    "echo-websocket|tidewire socketioxide node|echo --transport websocket --clients 1000 --rate 50000 --secs 5"
    "echo-sse|tidewire|echo --transport sse --clients 1000 --rate 10000 --secs 5"
    "echo-polling|tidewire socketioxide node|echo --transport polling --clients 1000 --rate 10000 --secs 5"
  )
fi

echo "== running $ROUNDS round(s); results in $RESULTS" >&2
for round in $(seq 1 "$ROUNDS"); do
  for spec in "${SCENARIOS[@]}"; do
    IFS='|' read -r name servers loadargs <<< "$spec"
    if [ -n "$ONLY" ] && [[ "$name" != *"$ONLY"* ]]; then continue; fi
    order=()
    for server in $servers; do
      if [ -z "$SERVERS" ] || [[ " $SERVERS " == *" $server "* ]]; then order+=("$server"); fi
    done
    [ ${#order[@]} = 0 ] && continue
    if [ $((round % 2)) = 0 ]; then # A B, then B A: interleaved
      rev=(); for ((i=${#order[@]}-1; i>=0; i--)); do rev+=("${order[$i]}"); done; order=("${rev[@]}")
    fi
    for server in "${order[@]}"; do
      [ $QUICK = 1 ] || wait_quiet
      start_server "$server" || continue
      echo "-- round $round  $name  $server  ($SERVER_URL, pid $SERVER_PID)" >&2
      # shellcheck disable=SC2086
      line="$( (if [ -n "$LOAD_CORE" ]; then taskset -c "$LOAD_CORE" timeout 300 "$LOADGEN" $loadargs --url "$SERVER_URL" --pid "$SERVER_PID" --label "$server"; \
               else timeout 300 "$LOADGEN" $loadargs --url "$SERVER_URL" --pid "$SERVER_PID" --label "$server"; fi) 2>>"$OUT/loadgen.log" | tail -n 1 || true)"
      stop_server
      [ -z "$line" ] && line="{\"error\":\"no output\",\"label\":\"$server\"}"
      echo "{\"round\":$round,\"name\":\"$name\",\"server\":\"$server\",\"cmd\":\"tidewire-bench $loadargs\",\"result\":$line}" >> "$RESULTS"
      echo "   $line" | cut -c1-220 >&2
    done
  done
done

if [ $QUICK = 1 ]; then
  python3 bench/report.py --check "$RESULTS"
elif [ -n "$ONLY$SERVERS" ]; then
  python3 bench/report.py "$RESULTS" --md "${RESULTS%.jsonl}.md" --svg "${RESULTS%.jsonl}.svg"
  echo "== partial run: report in ${RESULTS%.jsonl}.md; to merge it with a full run:" >&2
  echo "   python3 bench/report.py FULL.jsonl $RESULTS --md docs/benchmarks.md --svg docs/benchmarks.svg" >&2
else
  python3 bench/report.py "$RESULTS" --md docs/benchmarks.md --svg docs/benchmarks.svg
  echo "== wrote docs/benchmarks.md and docs/benchmarks.svg" >&2
fi
