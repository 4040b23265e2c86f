#!/usr/bin/env bash
# Create .venv (if missing) and install crudkit into it, editable, with the given extras.
# Usage: scripts/bootstrap.sh [EXTRAS]   e.g. scripts/bootstrap.sh dev
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
extras=${1:-}
python=${PYTHON:-python3}
log="$root/.venv/install.log"
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
  "$root/.venv/bin/python" -m pip install --quiet --upgrade pip >"$log" 2>&1 || { cat "$log"; exit 1; }
fi
spec="$root"
[ -n "$extras" ] && spec="$root[$extras]"
echo "Installing crudkit${extras:+ [$extras]} into .venv (log: .venv/install.log)"
# Quiet unless it fails: pip and setuptools warnings would bury what matters.
"$root/.venv/bin/python" -m pip install --editable "$spec" >"$log" 2>&1 || { cat "$log"; exit 1; }
