#!/usr/bin/env bash
# Builds the previous landed version's binaries (once; the mixed-version tests run them), then
# every binary of this one (the end-to-end tests run the real worker, services and CLI) and
# runs the whole test suite. Same feature set for both steps, so nothing is compiled twice.
set -euo pipefail
cd "$(dirname "$0")/.."
# The previous landed version's binaries, for the mixed-version tests; built first because its
# build leaves its own binaries in target/debug, which the build of this version then replaces.
FEDFLOW_PREVIOUS_BIN="$(scripts/build-previous.sh | tail -n 1)"
export FEDFLOW_PREVIOUS_BIN
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
