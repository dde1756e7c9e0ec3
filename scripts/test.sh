#!/usr/bin/env bash
# Runs every test and check of the project; CI runs it through .ci/run.
#
#   bash scripts/test.sh
#
# Idempotent and self-installing: it installs what is missing (npm packages,
# the Python venv, later Debian packages) and skips what is already there.
# Stops at the first failure with a non-zero exit code.
#
# Order: one debug build of the whole workspace, shared by `cargo test`, the
# Node interop tests and the Python tests (they run the binaries it built);
# then fmt and clippy, last, so a lint never hides a test result (they still
# fail the run).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

# Absolute, so every tool (and the test suites) agrees on where binaries are.
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $CARGO_TARGET_DIR in /*) ;; *) CARGO_TARGET_DIR=$ROOT/$CARGO_TARGET_DIR ;; esac
export CARGO_TARGET_DIR
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

section() {
    printf '\n==== %s ====\n' "$*"
}

# --- background processes --------------------------------------------------
# Servers this script starts itself (later: redis, nginx) go through start_bg
# so the trap below stops them however the script ends. The test suites stop
# the servers they spawn themselves.
BG_PIDS=()
start_bg() {
    "$@" &
    BG_PIDS+=("$!")
}
cleanup() {
    local pid
    for pid in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
# Turn signals into a normal exit so the EXIT trap runs once.
trap 'exit 130' INT
trap 'exit 143' TERM

# --- installers -------------------------------------------------------------
# need_apt PKG[:BINARY]... installs the Debian packages whose binary (by
# default named like the package) is missing; `apt-get update` runs at most
# once per run, and only when something is missing.
APT_UPDATED=0
need_apt() {
    local spec pkg bin missing=()
    for spec in "$@"; do
        pkg=${spec%%:*}
        bin=${spec#*:}
        # Daemons live in sbin, which may not be on a CI PATH.
        if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    section "apt-get install ${missing[*]}"
    if [ "$APT_UPDATED" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# hash_of FILE...: one checksum for the files' contents (to detect changes).
hash_of() {
    cat "$@" | sha256sum | cut -d' ' -f1
}

# npm_deps DIR: npm ci in DIR, only when node_modules is missing or the lock
# file changed since the last install (recorded in a stamp inside node_modules).
npm_deps() {
    local dir=$1 stamp=$1/node_modules/.tidewire-lock-sha256 want
    want=$(hash_of "$dir/package-lock.json")
    if [ -d "$dir/node_modules" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "node_modules up to date"
        return 0
    fi
    (cd "$dir" && npm ci --no-audit --no-fund)
    echo "$want" >"$stamp"
}

# The Python venv for tests/python, at target/pyenv; reinstalls only when
# requirements.txt changed.
PYENV=$ROOT/target/pyenv
python_deps() {
    local req=tests/python/requirements.txt stamp=$PYENV/.tidewire-req-sha256 want
    want=$(hash_of "$req")
    if [ ! -x "$PYENV/bin/python" ]; then
        mkdir -p "$(dirname "$PYENV")"
        python3 -m venv "$PYENV"
    fi
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "python requirements up to date"
        return 0
    fi
    "$PYENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    echo "$want" >"$stamp"
}

# counted CMD...: runs a test suite, keeping its output for the closing tally.
TALLY_LOG=$(mktemp)
counted() {
    "$@" 2>&1 | tee -a "$TALLY_LOG"
}

# The closing line CI reads: every suite's passed and failed tests added up.
tally() {
    awk '
        /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
        /^# pass [0-9]+$/ { p += $3 }
        /^# fail [0-9]+$/ { f += $3 }
        /^=* ?[0-9]+ passed/ && !/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
        END { printf "tests: %d passed, %d failed\n", p, f }
    ' "$TALLY_LOG"
}

# --- the run ------------------------------------------------------------------
section "toolchain"
cargo --version
node --version
python3 --version

section "npm dependencies (tests/interop)"
npm_deps tests/interop

section "cargo build --workspace --all-targets"
cargo build --workspace --all-targets

section "cargo test --workspace"
counted cargo test --workspace

section "node interop tests (tests/interop)"
# The suites find the binaries under $CARGO_TARGET_DIR/debug/.
counted node --test tests/interop/

section "npm dependencies (client-js)"
npm_deps client-js

section "client-js: committed bundle matches its source"
node client-js/scripts/check-dist.mjs

section "client-js tests (unit, and against the built servers)"
counted node --test client-js/test/

# --- fault injection (issue #7) ---
# Connection state recovery through a cutting TCP proxy (tests/faults), at CI size;
# the full proof (20 clients, 10,000 numbers, >= 20 cuts each, every transport) is
# `node --test tests/faults/` (about 6 minutes).
section "npm dependencies (tests/faults)"
npm_deps tests/faults

section "fault-injection tests (tests/faults, CI size)"
counted env FAULT_COUNT=2000 FAULT_CUTS=5 node --test tests/faults/
# --- end of fault injection (issue #7) ---

# --- browser end-to-end (issue #4) ---
# The chat example (examples/chat) in Debian's chromium driven by playwright-core:
# direct, behind real nginx proxies (tests/nginx), across a server restart, and
# as three nodes on a real redis-server behind round-robin nginx (cluster.test.mjs).
# Screenshots go to $CARGO_TARGET_DIR/screenshots/. Never downloads a browser:
# playwright-core launches /usr/bin/chromium.
section "debian packages for the browser tests (nginx, chromium, redis-server)"
need_apt nginx chromium redis-server:redis-server

section "npm dependencies (tests/browser)"
npm_deps tests/browser

section "browser end-to-end tests (tests/browser)"
counted node --test tests/browser/
# --- end of browser end-to-end (issue #4) ---

# --- multi-node: tidewire-redis (tests/cluster) ---
# 3 cluster-node processes ($CARGO_TARGET_DIR/debug/cluster-node) on a real
# redis-server (each test file starts its own, on a free port): the adapter
# across nodes and against Node's @socket.io/redis-adapter and redis-emitter,
# sessions behind round-robin nginx (no sticky sessions), a node killed
# mid-stream, a Redis outage. One file at a time (they are timing-sensitive).
section "debian packages for the cluster tests (redis-server)"
need_apt redis-server:redis-server

section "npm dependencies (tests/cluster)"
npm_deps tests/cluster

section "multi-node tests (tests/cluster)"
counted node --test --test-concurrency=1 tests/cluster/
# --- end of multi-node ---

section "python dependencies (target/pyenv)"
python_deps

section "python interop tests (tests/python)"
counted "$PYENV/bin/python" -m pytest -q tests/python

section "benchmark tool smoke test (bench/run.sh --quick)"
# Tiny sizes against the debug build, so the load generator keeps working; real
# figures come from `bench/run.sh` (docs/benchmarks.md).
QUIET_WAIT=0 bash bench/run.sh --quick

section "cargo fmt --all --check"
cargo fmt --all --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

section "all tests and checks passed"
tally
