#!/usr/bin/env bash
# import-linter on the package as it is installed: pyproject maps contrib/ to crudkit.contrib,
# which the import graph cannot follow in the source tree, so check a staged copy laid out
# that way (as scripts/typecheck.sh does for mypy). The contracts are in pyproject.toml.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
stage="$root/build/lint-imports"
rm -rf "$stage" && mkdir -p "$stage"
cp -r "$root/crudkit" "$stage/crudkit"
cp -r "$root/contrib" "$stage/crudkit/contrib"
# Run from the stage: lint-imports puts the working directory first on sys.path, so
# `crudkit` is the staged copy rather than the editable install.
cd "$stage"
"$(dirname "$python")/lint-imports" --no-cache --no-logo "$root/pyproject.toml"
