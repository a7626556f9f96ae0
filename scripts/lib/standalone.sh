#!/usr/bin/env bash
# Sourced by the scripts that test against a live federation (grpcurl-test.sh,
# python-client-test.sh): fail, step, require_binaries and make_venv for their set-up;
# `standalone_tmp TEMPLATE` makes the temporary directory $tmp and installs the traps that stop
# the federation and remove $tmp whatever happens; `start_standalone` starts `fedflow
# standalone` (parties 9999, 10000, 10001, data in $tmp/data, its stdout in
# $tmp/standalone.out) and waits for its 3 party lines.
# The sourcing script sets $repo, $fedflow and $startup_deadline.

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "==> $*"; }

# Fails unless `cargo build --workspace --bins` has made the fedflow and worker binaries.
require_binaries() {
    if [[ ! -x "$fedflow" || ! -x "$repo/target/debug/fedflow-worker" ]]; then
        fail "target/debug/fedflow or target/debug/fedflow-worker is missing; run: cargo build --workspace --bins"
    fi
}

# Creates the venv DIR unless it is there; WHAT (optional) says what it is for.
make_venv() {
    step "venv $1${2:+ ($2)}"
    if [[ ! -x "$1/bin/python" ]]; then
        python3 -m venv "$1"
    fi
}

# Makes $tmp from the mktemp TEMPLATE and arms the cleanup traps.
standalone_tmp() {
    tmp=$(mktemp -d -t "$1")
    pid=""
    trap standalone_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# The EXIT trap: stops the standalone it started (SIGTERM, then SIGKILL after 10 s), shows the
# end of its log when the script fails, removes $tmp and exits with the script's status.
standalone_cleanup() {
    local status=$?
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "standalone (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -s "$tmp/standalone.err" ]]; then
        echo "--- last lines of the standalone log ---" >&2
        tail -n 30 "$tmp/standalone.err" >&2 || true
    fi
    rm -rf "$tmp"
    exit "$status"
}

# Starts `fedflow standalone` in the background ($pid) and waits until it has printed one line
# per party (within $startup_deadline seconds), then prints them. PARTIES (default
# 9999,10000,10001) and any further arguments go to `fedflow standalone`.
start_standalone() {
    local parties="${1:-9999,10000,10001}"
    shift || true
    local count
    count=$(tr ',' '\n' <<<"$parties" | grep -c .)
    step "starting fedflow standalone (parties $parties, data in $tmp/data)"
    mkdir -p "$tmp/data"
    : >"$tmp/standalone.out"   # exists before the background job opens it
    "$fedflow" standalone --parties "$parties" --data-dir "$tmp/data" "$@" \
        >"$tmp/standalone.out" 2>"$tmp/standalone.err" &
    pid=$!

    local deadline=$((SECONDS + startup_deadline))
    while (( $(grep -c '^party ' "$tmp/standalone.out" || true) < count )); do
        kill -0 "$pid" 2>/dev/null || { pid=""; fail "fedflow standalone exited before it was up"; }
        (( SECONDS < deadline )) || fail "fedflow standalone did not print its $count party lines within ${startup_deadline}s"
        sleep 0.2
    done
    grep '^party ' "$tmp/standalone.out"
}
