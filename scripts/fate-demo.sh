#!/usr/bin/env bash
# FATE 2.x on fedflow, end to end, for a newcomer: sets up pyfate (scripts/setup-fate.sh; a cold
# install takes about 8 minutes), builds fedflow, starts `fedflow standalone` with guest 9999 and
# host/arbiter 10000, uploads FATE's breast_hetero data on each party (examples/fate-lr), runs
# FATE's own reader -> psi -> coordinated_lr -> evaluation (examples/fate-lr/train.yaml) and
# prints the evaluation's AUC and KS. Exits 0 when the job succeeds.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
fedflow="$repo/target/debug/fedflow"
startup_deadline=60
# shellcheck source=lib/standalone.sh
source scripts/lib/standalone.sh

step "pyfate"
python=$(scripts/setup-fate.sh | tail -n 1)
echo "$python"
step "build"
cargo build --workspace --bins --quiet
require_binaries

standalone_tmp fedflow-fate.XXXXXX
start_standalone 9999,10000 --fate-python "$python"
scheduler() { awk -v p="$1" '$1 == "party" && $2 == p { print $4 }' "$tmp/standalone.out"; }
guest=$(scheduler 9999)
host=$(scheduler 10000)

step "upload (FATE-Flow's upload conf) on guest 9999 and host 10000"
"$fedflow" --scheduler "$guest" data upload -c examples/fate-lr/upload_guest.json
"$fedflow" --scheduler "$host" data upload -c examples/fate-lr/upload_host.json

step "fedflow job submit -c examples/fate-lr/train.yaml"
job=$("$fedflow" --scheduler "$guest" --json job submit -c examples/fate-lr/train.yaml |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["job_id"])')
echo "job $job"
started=$SECONDS
"$fedflow" --scheduler "$guest" job wait -j "$job" --timeout 1200 ||
    { "$fedflow" --scheduler "$guest" job query -j "$job" >&2; fail "job $job did not succeed"; }
echo "job $job succeeded in $((SECONDS - started)) s"
"$fedflow" --scheduler "$guest" task query -j "$job"

step "evaluation_0's metrics (guest 9999)"
"$fedflow" --scheduler "$guest" --json output metric -j "$job" -c evaluation_0 |
    python3 scripts/lib/fate-scores.py
