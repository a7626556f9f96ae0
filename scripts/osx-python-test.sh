#!/usr/bin/env bash
# Runs clients/python/osx_test.py against a live federation: pyfate-style OSX pushes through
# party 9999's gateway transfer port to party 10000, pops on party 10000's, with the headers
# pyfate sends. Creates the venv .venv-python (clients/python/requirements.txt), generates
# fedflow's stubs (generate.py) and the OSX stubs from proto/osx/osx.proto with grpcio-tools,
# starts `fedflow standalone` in a temporary data directory and stops it whatever happens.
#
# Needs `cargo build --workspace --bins` to have been run, and python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

fedflow="$repo/target/debug/fedflow"
venv="$repo/.venv-python"
client_dir="$repo/clients/python"
startup_deadline=${FEDFLOW_STARTUP_DEADLINE:-30}

# shellcheck source=lib/standalone.sh
source "$repo/scripts/lib/standalone.sh"

require_binaries
make_venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$client_dir/requirements.txt"

step "generating stubs (clients/python/generate.py, proto/osx/osx.proto)"
"$venv/bin/python" "$client_dir/generate.py"
standalone_tmp fedflow-osx-python.XXXXXX
mkdir -p "$tmp/osx-stubs"
"$venv/bin/python" -m grpc_tools.protoc -I "$repo/proto/osx" \
    --python_out="$tmp/osx-stubs" --grpc_python_out="$tmp/osx-stubs" "$repo/proto/osx/osx.proto"

start_standalone
line() { awk -v p="$1" '$1 == "party" && $2 == p' "$tmp/standalone.out"; }
field() { awk -v k="$2" '{ for (i = 3; i < NF; i++) if ($i == k) print $(i + 1) }' <<<"$1"; }
scheduler=$(field "$(line 9999)" scheduler)
guest_osx=$(field "$(line 9999)" osx)
host_osx=$(field "$(line 10000)" osx)
[[ -n "$scheduler" && -n "$guest_osx" && -n "$host_osx" ]] \
    || fail "no scheduler or osx address in: $(cat "$tmp/standalone.out")"

step "osx_test.py: push through 9999 ($guest_osx), pop on 10000 ($host_osx)"
"$venv/bin/python" "$client_dir/osx_test.py" --scheduler "$scheduler" \
    --guest "9999=$guest_osx" --host "10000=$host_osx" --stubs "$tmp/osx-stubs"
