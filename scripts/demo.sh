#!/usr/bin/env bash
# Builds fedflow and runs the sample 3-party job (examples/sum-diamond) on the embedded default:
# standalone mode, every service of parties 9999, 10000 and 10001 in one process, SQLite.
# Exits 0 when the job succeeds.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins --quiet
data_dir="${FEDFLOW_DATA_DIR:-$(mktemp -d -t fedflow-demo.XXXXXX)}"
exec target/debug/fedflow standalone --parties 9999,10000,10001 --data-dir "$data_dir" --demo
