#!/usr/bin/env bash
# Create .venv (if missing) and install crudkit into it, editable, with the given extras.
# Usage: scripts/bootstrap.sh [EXTRAS]   e.g. scripts/bootstrap.sh dev
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
extras=${1:-}
python=${PYTHON:-python3}
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
  "$root/.venv/bin/python" -m pip install --quiet --upgrade pip
fi
spec="$root"
[ -n "$extras" ] && spec="$root[$extras]"
"$root/.venv/bin/python" -m pip install --quiet --editable "$spec"
