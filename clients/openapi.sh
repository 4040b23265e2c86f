#!/usr/bin/env bash
# Write the example project's OpenAPI document to FILE: bash clients/openapi.sh FILE
set -euo pipefail
out=$(realpath -m "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/example_project"
# Building the app reads settings only: no database is opened, no key file is written.
export CRUDKIT_SECRET_KEY=${CRUDKIT_SECRET_KEY:-openapi-document-only-no-server-runs}
if ../.venv/bin/python manage.py openapi --help >/dev/null 2>&1; then
  ../.venv/bin/python manage.py openapi -o "$out"
else
  ../.venv/bin/python -c '
import json, sys
import crudkit
from settings import settings
json.dump(crudkit.create_app(settings).openapi(), open(sys.argv[1], "w"), indent=2)
' "$out"
fi
