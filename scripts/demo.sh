#!/usr/bin/env bash
# Install crudkit and run the example project on SQLite: migrations, sample data,
# a superuser (credentials printed once), then the server on http://127.0.0.1:8000.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/bootstrap.sh"
cd "$root/example_project"
python=$root/.venv/bin/python
"$python" manage.py migrate
"$python" manage.py seed
password_file=.demo-admin-password
if [ ! -f "$password_file" ]; then
  password=$("$python" -c "import secrets; print(secrets.token_urlsafe(12))")
  if CRUDKIT_SUPERUSER_PASSWORD="$password" "$python" manage.py createsuperuser \
      --noinput --username admin --email admin@example.com >/dev/null; then
    umask 077 && printf '%s\n' "$password" > "$password_file"
    echo
    echo "  Admin:    http://127.0.0.1:8000/admin   username: admin   password: $password"
    echo "            (printed once; change it with: python manage.py changepassword admin)"
  fi
else
  echo "  Admin user 'admin' exists (its password was printed on the first run)."
fi
echo "  API docs: http://127.0.0.1:8000/docs"
echo
exec "$python" manage.py runserver --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
