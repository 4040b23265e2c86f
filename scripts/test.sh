#!/usr/bin/env bash
# Install the test dependencies and run the whole test suite (extra arguments go to pytest).
# PostgreSQL runs too when CRUDKIT_TEST_DATABASE_URL is set, e.g.
#   CRUDKIT_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test scripts/test.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/bootstrap.sh" dev
cd "$root"
exec .venv/bin/python -m pytest "$@"
