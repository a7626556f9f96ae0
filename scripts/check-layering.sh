#!/usr/bin/env bash
# The layering check: fedflow's floors point one way, and the libraries that belong to one
# layer stay in it. Plain bash and grep, well under a second:
#
#   scripts/check-layering.sh [ROOT]      (ROOT: the repository to check; default this one)
#
# Rules (each violation prints `file:line: rule (x) ...: what`; exit 1 if there is any):
#   (a) no crate under crates/ depends on a service, an app or the test harness
#       (a Cargo.toml dependency, or the crate's name in Rust source);
#   (b) no service depends on another service or on an app;
#   (c) sea_orm (sea-orm in Cargo.toml) appears only where the `store` rows below allow;
#   (d) generated protobuf types (fedflow_proto) and tonic::Request appear only where the
#       `proto` rows below allow: the gRPC adapters and the clients.
# Comment lines (`//`, `#`) are not read. Service, app and test-harness crate names are read
# from their Cargo.toml files, so a new service is covered without editing this file.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# THE ALLOWLIST: one row per place, `<rule> <extended regex over the path from ROOT>`. A file
# renamed or moved means one row edited here, nothing else.
ALLOW=(
    # (c) sea_orm / sea-orm: the shared store crate, each service's store module, and the
    #     workspace's version table.
    "store  ^Cargo\.toml$"
    "store  ^crates/store/"
    "store  ^services/[^/]+/src/store(\.rs|/)"
    # (d) fedflow_proto / tonic::Request: proto itself, the rpc plumbing, the clients ...
    "proto  ^proto/"
    "proto  ^crates/rpc/"
    "proto  ^crates/worker/"
    "proto  ^crates/osx/"
    "proto  ^apps/"
    "proto  ^tests/"
    "proto  ^fuzz/"
    "proto  ^services/[^/]+/tests/"
    #     ... and in a service its adapters (incoming grpc, outgoing remote) and its
    #     composition root, which builds the servers.
    "proto  ^services/[^/]+/src/(grpc|remote)(\.rs|/)"
    "proto  ^services/[^/]+/src/lib\.rs$"
    #     ... and the scheduler's web board, an incoming adapter like grpc (HTTP instead), which
    #     asks its party's task-controller for a task's log, outputs and metric.
    "proto  ^services/scheduler/src/board(\.rs|/)"
)
# ---------------------------------------------------------------------------------------------

root=${1:-"$(dirname "$0")/.."}
cd "$root"

# The files to read: git's view (tracked plus untracked, not ignored) in a checkout, else every
# file below ROOT except build output.
if git rev-parse --show-toplevel >/dev/null 2>&1 &&
    [[ "$(git rev-parse --show-toplevel)" == "$(pwd -P)" ]]; then
    mapfile -t files < <(git ls-files --cached --others --exclude-standard | sort -u)
else
    mapfile -t files < <(find . \( -name target -o -name .git -o -name node_modules -o -name '.venv*' \) -prune \
        -o -type f -print | sed 's|^\./||' | sort)
fi
sources=() manifests=()
for f in "${files[@]}"; do
    [[ -f "$f" ]] || continue
    case "$f" in
        *.rs) sources+=("$f") ;;
        Cargo.toml | */Cargo.toml) manifests+=("$f") ;;
    esac
done

allowed() { # allowed RULE PATH: does a row of ALLOW let PATH hold RULE's thing?
    local row
    for row in "${ALLOW[@]}"; do
        read -r rule regex <<<"$row"
        [[ "$rule" == "$1" && "$2" =~ $regex ]] && return 0
    done
    return 1
}

# The package names of the crates on a floor ("dir name" lines).
packages() { # packages FLOOR...
    local manifest floor name
    for manifest in "${manifests[@]}"; do
        for floor in "$@"; do
            if [[ "$manifest" == "$floor"/Cargo.toml || "$manifest" == "$floor"/*/Cargo.toml ]]; then
                name=$(sed -n 's/^name *= *"\([^"]*\)".*/\1/p' "$manifest" | head -n 1)
                [[ -n "$name" ]] && echo "$(dirname "$manifest") $name"
            fi
        done
    done
    return 0
}
mapfile -t services < <(packages services)
mapfile -t apps < <(packages apps)
mapfile -t harness < <(packages tests)

violations=0
# found RULE PATTERN FILE...: reports each non-comment line of FILE... matching PATTERN (ERE).
found() {
    local rule=$1 pattern=$2 hit file rest
    shift 2
    (($# > 0)) || return 0
    while IFS= read -r hit; do
        file=${hit%%:*} rest=${hit#*:}
        [[ "${rest#*:}" =~ ^[[:space:]]*(//|#) ]] && continue
        echo "$file:${rest%%:*}: rule $rule: $(sed 's/^[[:space:]]*//' <<<"${rest#*:}")"
        violations=$((violations + 1))
    done < <(grep -HnE -- "$pattern" "$@" 2>/dev/null || true)
}

# depends PACKAGE-LINES: the pattern that finds a dependency on any of those crates: its name
# in Rust source (`fedflow_x`) or in a manifest (a `fedflow-x = ...` / `fedflow-x.workspace`
# key, or a `path = ".../<dir>"`). Prints two lines: the source pattern, the manifest pattern.
depends() {
    local entry dir name rs=() keys=() dirs=()
    for entry in "$@"; do
        read -r dir name <<<"$entry"
        rs+=("${name//-/_}") keys+=("$name") dirs+=("${dir##*/}")
    done
    local IFS='|'
    echo "\\b(${rs[*]})\\b"
    echo "^[[:space:]]*(${keys[*]})[[:space:]]*(=|\\.)|path[[:space:]]*=[[:space:]]*\"[^\"]*/(${dirs[*]})/?\""
}

# in_dir DIR FILE...: the files under DIR.
in_dir() {
    local dir=$1 f
    shift
    for f in "$@"; do [[ "$f" == "$dir"/* ]] && echo "$f"; done
    return 0
}

# (a) crates/ never depends on services/, apps/ or the test harness.
{ read -r rs; read -r toml; } < <(depends "${services[@]}" "${apps[@]}" "${harness[@]}")
mapfile -t these < <(in_dir crates "${sources[@]}")
found "(a) crates never depend on services, apps or tests" "$rs" "${these[@]}"
mapfile -t these < <(in_dir crates "${manifests[@]}")
found "(a) crates never depend on services, apps or tests" "$toml" "${these[@]}"

# (b) a service never depends on another service or on an app.
for own in "${services[@]}"; do
    read -r own_dir _ <<<"$own"
    others=()
    for entry in "${services[@]}" "${apps[@]}"; do
        [[ "$entry" == "$own" ]] || others+=("$entry")
    done
    ((${#others[@]} > 0)) || continue
    { read -r rs; read -r toml; } < <(depends "${others[@]}")
    mapfile -t these < <(in_dir "$own_dir" "${sources[@]}")
    found "(b) a service never depends on another service or an app" "$rs" "${these[@]}"
    mapfile -t these < <(in_dir "$own_dir" "${manifests[@]}")
    found "(b) a service never depends on another service or an app" "$toml" "${these[@]}"
done

# (c) sea_orm only in store modules.
rs=() toml=()
for f in "${sources[@]}"; do allowed store "$f" || rs+=("$f"); done
for f in "${manifests[@]}"; do allowed store "$f" || toml+=("$f"); done
found "(c) sea_orm only in store modules" '\bsea_orm' "${rs[@]}"
found "(c) sea_orm only in store modules" '^[[:space:]]*sea-orm' "${toml[@]}"

# (d) protobuf types and tonic::Request only in gRPC adapters and clients.
rs=()
for f in "${sources[@]}"; do allowed proto "$f" || rs+=("$f"); done
found "(d) protobuf types and tonic::Request only in gRPC adapters" \
    '\bfedflow_proto\b|\btonic::Request\b|\buse tonic::\{[^}]*\bRequest\b' "${rs[@]}"

if ((violations > 0)); then
    echo "check-layering: $violations violation(s); the allowlist is at the top of scripts/check-layering.sh" >&2
    exit 1
fi
echo "check-layering: ok (${#sources[@]} Rust files, ${#manifests[@]} manifests)"
