#!/bin/sh
# Create .venv and install unblank with its test and dev tools, once per
# change of pyproject.toml.  Works on a fresh Debian with only python3.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
[ -f "$stamp" ] && exit 0

if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    # Debian splits venv/ensurepip out of python3 (package python3-venv).
    echo "bootstrap: installing Debian's python3-venv" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq python3-venv
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv
    fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,bench]'
rm -f .venv/.installed-*
touch "$stamp"
echo "bootstrap: .venv ready" >&2
