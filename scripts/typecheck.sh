#!/usr/bin/env bash
# mypy on the package as it is installed: pyproject maps contrib/ to crudkit.contrib,
# which mypy cannot follow in the source tree, so check a staged copy laid out that way.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
stage="$root/build/typecheck"
rm -rf "$stage" && mkdir -p "$stage"
cp -r "$root/crudkit" "$stage/crudkit"
cp -r "$root/contrib" "$stage/crudkit/contrib"
cd "$stage"
"$python" -m mypy --config-file "$root/pyproject.toml" --cache-dir "$root/.mypy_cache" crudkit \
  | sed -e "s#^crudkit/contrib/#contrib/#"
