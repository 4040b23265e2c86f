#!/usr/bin/env bash
# Install crudkit and run the example project on SQLite: migrations, sample data,
# a superuser (credentials printed once), then the server on http://127.0.0.1:8000.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/bootstrap.sh"
cd "$root/example_project"
python=$root/.venv/bin/python
host=${HOST:-127.0.0.1}
port=${PORT:-8000}
"$python" manage.py migrate
"$python" manage.py seed
password=$("$python" -c "import secrets; print(secrets.token_urlsafe(12))")
if CRUDKIT_SUPERUSER_PASSWORD="$password" "$python" manage.py createsuperuser \
    --noinput --username admin --email admin@example.com >/dev/null 2>&1; then
  echo
  echo "  Admin:    http://$host:$port/admin   username: admin   password: $password"
  echo "            (printed once; change it with: python manage.py changepassword admin)"
else
  echo
  echo "  Admin:    http://$host:$port/admin   username: admin (created on the first run,"
  echo "            when its password was printed; reset it: python manage.py changepassword admin)"
fi
echo "  API docs: http://$host:$port/docs"
echo
exec "$python" manage.py runserver --host "$host" --port "$port"
