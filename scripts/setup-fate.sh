#!/usr/bin/env bash
# Creates (or reuses) a Python venv holding FATE 2.2's components (pyfate) with the pins they
# need beside them, and prints the path of its python on the last line.
#
#   FEDFLOW_FATE_VENV   where the venv goes (default ~/.cache/fedflow/fate-venv)
#   PYTHON              the interpreter the venv is made from (default python3)
#
# pyfate pulls torch with its CUDA wheels: a cold install takes about 8 minutes and 5.9 GB; pip's
# cache makes a repeat install short. setuptools<70 keeps pkg_resources (pyfate's component CLI
# imports it); pandas 3 breaks coordinated_lr, so pandas is pinned to 2.2.2.
set -euo pipefail

venv="${FEDFLOW_FATE_VENV:-$HOME/.cache/fedflow/fate-venv}"
python="${PYTHON:-python3}"
pins=(pyfate==2.2.0 "setuptools<70" pandas==2.2.2)

ready() {
    [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
want = {"pyfate": "2.2.0", "pandas": "2.2.2"}
for name, version in want.items():
    if m.version(name) != version:
        sys.exit(1)
if int(m.version("setuptools").split(".")[0]) >= 70:
    sys.exit(1)
import fate.components  # noqa: F401  the component CLI imports
PY
}

# One install at a time (tests may ask for the venv from several processes at once).
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if ready; then
    echo "setup-fate: reusing $venv" >&2
else
    echo "setup-fate: installing ${pins[*]} into $venv (a cold install takes about 8 minutes)" >&2
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
    # pyfate's own requirements can move pandas or setuptools again: put the pins back last.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "setuptools<70" pandas==2.2.2 >&2
    ready || { echo "setup-fate: $venv was installed but fate.components does not import" >&2; exit 1; }
fi
echo "$venv/bin/python"
