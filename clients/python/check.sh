#!/usr/bin/env bash
# Generate a Python client from the example project's OpenAPI document and run a CRUD round
# trip with it (roundtrip.py) against the example server on a fresh SQLite database.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools="$here/.venv"  # the generator's own venv: its pins stay out of the project's
tmp=$(mktemp -d)
server=""
cleanup() {
  if [[ -n $server ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

[[ -x $tools/bin/python ]] || "$root/.venv/bin/python" -m venv "$tools"
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

bash "$root/clients/openapi.sh" "$tmp/openapi.json"
# Its ruff post-hooks need ruff on PATH; a warning means part of the API was skipped.
PATH="$tools/bin:$PATH" "$tools/bin/openapi-python-client" generate --path "$tmp/openapi.json" \
  --meta none --output-path "$tmp/example_client" --fail-on-warning

py="$root/.venv/bin/python"
# The round trip type-checks against the generated package (mypy strict, the project's config).
(cd "$root" && MYPYPATH="$tmp" "$py" -m mypy --follow-imports=silent --cache-dir=/dev/null \
  clients/python/roundtrip.py)

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export CRUDKIT_DATABASE_URL="sqlite+aiosqlite:///$tmp/db.sqlite3" CRUDKIT_DEBUG=true
CRUDKIT_SECRET_KEY=$("$py" -c 'import secrets; print(secrets.token_urlsafe(32))')
export CRUDKIT_SECRET_KEY CRUDKIT_SUPERUSER_USERNAME=admin
export CRUDKIT_SUPERUSER_EMAIL=admin@example.com CRUDKIT_SUPERUSER_PASSWORD=roundtrip-pass-7391
cd "$root/example_project"
"$py" manage.py migrate >/dev/null
"$py" manage.py createsuperuser --noinput >/dev/null
"$py" manage.py runserver --port "$port" >"$tmp/server.log" 2>&1 &
server=$!
for attempt in $(seq 150); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
  if ! kill -0 "$server" 2>/dev/null || ((attempt == 150)); then
    echo "the server did not come up:" >&2; cat "$tmp/server.log" >&2; exit 1
  fi
  sleep 0.2
done

PYTHONPATH="$tmp" "$tools/bin/python" "$here/roundtrip.py" "http://127.0.0.1:$port" \
  || { cat "$tmp/server.log" >&2; exit 1; }
