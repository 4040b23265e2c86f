# The example project, production style: PostgreSQL, Redis, gunicorn with uvicorn workers.
#   docker compose up --build      (see compose.yaml and docs/deploy.md)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /srv/crudkit
COPY pyproject.toml README.md ./
COPY crudkit ./crudkit
COPY contrib ./contrib
RUN pip install ".[postgres,redis,metrics,server]"

COPY example_project ./example_project
WORKDIR /srv/crudkit/example_project
RUN useradd --system --no-create-home crudkit
USER crudkit

# Given at run time: CRUDKIT_SECRET_KEY, CRUDKIT_DATABASE_URL and CRUDKIT_ALLOWED_HOSTS (the
# host names clients use, plus 127.0.0.1 for a health check run inside the container).
ENV CRUDKIT_SETTINGS_MODULE=settings \
    CRUDKIT_DEBUG=false \
    WEB_CONCURRENCY=2
EXPOSE 8000
# Migrations run once per deploy (an advisory lock makes concurrent runs take turns).
CMD ["sh", "-c", "python manage.py migrate && exec gunicorn 'crudkit.app:create_app()' --worker-class uvicorn_worker.UvicornWorker --bind 0.0.0.0:8000 --graceful-timeout 30 --access-logfile -"]
