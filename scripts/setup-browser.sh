#!/usr/bin/env bash
# Makes a headless browser available to the board's browser test (tests/tests/board.rs):
#   1. Debian's chromium and chromium-driver, installed with apt-get when missing (as root or
#      with sudo -n); nothing is fetched by Selenium Manager;
#   2. a Python venv with a pinned Selenium, made or reused at FEDFLOW_BROWSER_VENV
#      (default ~/.cache/fedflow/browser-venv), one install at a time (a lock file beside it).
# The last line printed on stdout is the venv's python; progress goes to stderr.
#
# Environment: PYTHON, the interpreter the venv is made from (default python3).
set -euo pipefail

venv="${FEDFLOW_BROWSER_VENV:-$HOME/.cache/fedflow/browser-venv}"
python="${PYTHON:-python3}"
selenium_pin="selenium==4.40.0"

die() {
    echo "setup-browser: $*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        return 1
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    echo "setup-browser: installing $* with apt-get" >&2
    as_root apt-get update -qq >&2 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver || true
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 ||
        die "chromium or chromedriver not found and 'apt-get install -y chromium chromium-driver' did not provide them"
fi

ready() {
    [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" -c "import sys, selenium; sys.exit(selenium.__version__ != '${selenium_pin#selenium==}')" 2>/dev/null
}

if ready; then
    echo "setup-browser: reusing $venv" >&2
else
    command -v "$python" >/dev/null 2>&1 || die "$python not found"
    echo "setup-browser: installing $selenium_pin into $venv" >&2
    if [ ! -x "$venv/bin/python" ]; then
        rm -rf "$venv"
        if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            apt_install python3-venv || true
            "$python" -m venv "$venv" || die "cannot create a venv at $venv ($python -m venv)"
        fi
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$selenium_pin" >&2
    ready || die "$venv was installed but selenium $selenium_pin does not import"
fi
echo "$venv/bin/python"
