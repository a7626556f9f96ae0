#!/usr/bin/env bash
# Runs the Python client (clients/python) against a live federation: creates the venv
# .venv-python, installs clients/python/requirements.txt, generates the stubs from proto/,
# starts `fedflow standalone` (parties 9999, 10000, 10001) in a temporary data directory,
# submits examples/sum-diamond to party 9999's scheduler with client.py and checks that the
# client exits 0 after printing a final success. Stops the federation it started and removes
# the temporary directory whatever happens.
#
# Needs `cargo build --workspace --bins` to have been run, and python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

fedflow="$repo/target/debug/fedflow"
venv="$repo/.venv-python"
client_dir="$repo/clients/python"
startup_deadline=${FEDFLOW_STARTUP_DEADLINE:-30}
job_deadline=${FEDFLOW_JOB_DEADLINE:-120}

# shellcheck source=lib/standalone.sh
source "$repo/scripts/lib/standalone.sh"

require_binaries
make_venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$client_dir/requirements.txt"

step "generating stubs (clients/python/generate.py)"
"$venv/bin/python" "$client_dir/generate.py"

standalone_tmp fedflow-python-client.XXXXXX

start_standalone
scheduler=$(awk '$1 == "party" && $2 == "9999" && $3 == "scheduler" { print $4 }' "$tmp/standalone.out")
[[ -n "$scheduler" ]] || fail "no scheduler address for party 9999 in: $(cat "$tmp/standalone.out")"

step "client.py --scheduler $scheduler (examples/sum-diamond)"
status=0
"$venv/bin/python" "$client_dir/client.py" --scheduler "$scheduler" \
    --dsl examples/sum-diamond/dsl.json --conf examples/sum-diamond/conf.json \
    --timeout "$job_deadline" | tee "$tmp/client.out" || status=$?
[[ $status -eq 0 ]] || fail "client.py exited $status (expected 0)"
grep -Eq '^job [^ ]+ final status: success$' "$tmp/client.out" \
    || fail "client.py did not print a final success"
grep -Eq '^[0-9:.]+  task [^ ]+ v[0-9]+ guest 9999: ' "$tmp/client.out" \
    || fail "client.py printed no per-party task status"

echo "PASS: the Python client submitted examples/sum-diamond and watched it to success"
