#!/usr/bin/env bash
# Builds every binary (the end-to-end tests run the real worker, services and CLI) and runs
# the whole test suite. Same feature set for both steps, so nothing is compiled twice.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
