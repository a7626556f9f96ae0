#!/usr/bin/env bash
# Makes (once) a venv holding prometheus_client, the Prometheus text-format parser that
# tests/tests/metrics.rs checks each party's endpoint with, and prints its python.
# Usage: scripts/setup-metrics-venv.sh [VENV_DIR]   (default: target/venv-metrics)
# One install at a time: a lock file beside the venv, as several test processes may ask.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$root/target/venv-metrics}"
version="0.26.0"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; import prometheus_client.openmetrics.parser; sys.exit(m.version('prometheus_client') != '$version')" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "prometheus_client==$version" >&2
fi
echo "$venv/bin/python"
