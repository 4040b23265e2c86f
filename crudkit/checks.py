"""System checks: configuration mistakes reported with stable ids, like Django's.

`manage.py check` runs the core checks below, then those apps add from
`AppConfig.ready()` with `apps.add_check(fn)`; a check takes the populated
`Apps` and returns `Message`s. `check --deploy` also runs the deployment
checks. Checks run outside any event loop.

crudkit.E001  error                 models have changes that no migration describes
crudkit.E002  error                 the project cannot be loaded (settings, an app, a resource)
crudkit.E003  error, --deploy       no `secret_key`: `debug` generated a development key
crudkit.E004  error, --deploy       `secret_key` is weak: well known, short or low-entropy
crudkit.E005  error                 CORS allows every origin *with* credentials
crudkit.E006  error                 `allowed_hosts` is empty with `debug` off: the app cannot start
crudkit.E007  error, --deploy       `/metrics` answers anyone (`debug` on, no `metrics_token`)
crudkit.E008  error, --deploy       `metrics_token` is weak: well known, short or low-entropy
crudkit.W001  warning               `debug` is on (a generated secret key, readable logs)
crudkit.W002  warning, --deploy     SQLite: one machine, one writer at a time
crudkit.W003  warning, --deploy     `https_only` is off: cookies without `Secure`, no HSTS
crudkit.W004  warning, --deploy     `/docs`, `/redoc` and `/openapi.json` are served (`docs_url`)
crudkit.W005  warning, --deploy     `cors_origins` is `*`: any web site may call the API
crudkit.W006  warning, --deploy     `allowed_hosts` is `*`: any `Host` is answered
crudkit.W007  warning, --deploy     several workers (`WEB_CONCURRENCY`) without `redis_url`
crudkit.W008  warning, --deploy     a pooler (PgBouncer) in front of PostgreSQL, `db_pgbouncer` off

The number of workers is `WEB_CONCURRENCY`, the variable gunicorn and uvicorn read
their default `--workers` from (the Dockerfile sets it): a check cannot see the
command line a server will be started with.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi.middleware.cors import CORSMiddleware

from crudkit import metrics
from crudkit.app import create_app
from crudkit.apps import Apps
from crudkit.apps import Check as Check  # what apps write their checks against
from crudkit.check_messages import Message as Message
from crudkit.conf import Settings
from crudkit.db import make_engine

MAX_LISTED_CHANGES = 3
SECRET_KEY_MIN_LENGTH = 50
"""Django's threshold for a production secret key."""
SECRET_KEY_MIN_UNIQUE = 5
SECRET_KEY_MIN_BITS = 128
"""Entropy estimated from the key's own character frequencies."""
METRICS_TOKEN_MIN_LENGTH = 32
WELL_KNOWN_SECRET_KEYS = {
    # crudkit's own test suite and docs: public, so anyone can sign tokens with them.
    "test-secret-key-that-is-long-enough-for-hs256",
}
WELL_KNOWN_MARKERS = ("changeme", "change-me", "change_me", "insecure", "example", "your-secret")


def check_migrations(apps: Apps) -> list[Message]:
    """crudkit.E001: models and migrations agree (what `makemigrations --check` compares)."""
    # Alembic is loaded when this check runs, not by every process whose apps declare checks.
    from crudkit.migrator import Migrations, pending_changes

    messages = []
    for draft in asyncio.run(pending_changes(Migrations(apps))):
        changes = [change.lstrip("+-~ ") for change in draft.changes]
        listed = ", ".join(changes[:MAX_LISTED_CHANGES])
        if len(changes) > MAX_LISTED_CHANGES:
            listed += f" and {len(changes) - MAX_LISTED_CHANGES} more"
        messages.append(
            Message(
                "crudkit.E001",
                "error",
                f"the models of app {draft.app_label!r} have changes no migration describes: "
                f"{listed}",
                hint=f"run `manage.py makemigrations {draft.app_label}`, then `migrate`",
            )
        )
    return messages


def load_error(error: str) -> Message:
    """crudkit.E002: the project could not be loaded, so no other check could run."""
    return Message(
        "crudkit.E002",
        "error",
        f"the project cannot be loaded: {error}",
        hint="fix this first; `--traceback` shows where it was raised",
    )


def check_debug(apps: Apps) -> list[Message]:
    """crudkit.W001: `debug` is meant for development only."""
    if not apps.settings.debug:
        return []
    return [
        Message(
            "crudkit.W001",
            "warning",
            "debug is on: development logs, and a generated secret key when none is set",
            hint="set CRUDKIT_DEBUG=false and CRUDKIT_SECRET_KEY in production",
        )
    ]


def check_cors_credentials(apps: Apps) -> list[Message]:
    """crudkit.E005: no CORS middleware may allow every origin and credentials together.

    crudkit's own (from `cors_origins`) never does; a middleware an app adds might,
    and with credentials Starlette echoes the caller's origin: any site could then
    act with a visitor's cookies. The built app is inspected, whoever added it.
    """
    settings = apps.settings
    if not settings.debug and not settings.allowed_hosts:  # crudkit.E006's finding
        settings = settings.model_copy(update={"allowed_hosts": ["*"]})
    app = create_app(settings, apps=apps)
    for middleware in app.user_middleware:
        if not (isinstance(middleware.cls, type) and issubclass(middleware.cls, CORSMiddleware)):
            continue
        options: dict[str, Any] = dict(middleware.kwargs)
        origins = options.get("allow_origins") or ()
        every_origin = "*" in origins or options.get("allow_origin_regex") in (".*", "^.*$")
        if every_origin and options.get("allow_credentials"):
            return [
                Message(
                    "crudkit.E005",
                    "error",
                    "a CORS middleware allows every origin with credentials: any web site "
                    "can send requests with a visitor's cookies and read the answers",
                    hint="list the origins allowed (cors_origins), or turn credentials off",
                )
            ]
    return []


def check_secret_key(apps: Apps) -> list[Message]:
    """crudkit.E003 and E004: production needs a secret key of its own, hard to guess."""
    settings = apps.settings
    key = settings.secret_key
    if settings.debug and key == _read(settings.secret_key_file):
        return [
            Message(
                "crudkit.E003",
                "error",
                f"no secret_key is set: debug generated a development key "
                f"({settings.secret_key_file})",
                hint='set CRUDKIT_SECRET_KEY, e.g. from python -c "import secrets; '
                'print(secrets.token_urlsafe(48))"',
            )
        ]
    weakness = secret_key_weakness(key)
    if weakness is None:
        return []
    return [
        Message(
            "crudkit.E004",
            "error",
            f"secret_key is weak: {weakness}; whoever guesses it can sign tokens and sessions",
            hint=f"use a random key of at least {SECRET_KEY_MIN_LENGTH} characters, e.g. "
            'python -c "import secrets; print(secrets.token_urlsafe(48))"',
        )
    ]


def secret_key_weakness(key: str, min_length: int = SECRET_KEY_MIN_LENGTH) -> str | None:
    """Why `key` is easy to guess (a well-known value, short, low-entropy), or None."""
    lowered = key.lower()
    if key in WELL_KNOWN_SECRET_KEYS or any(marker in lowered for marker in WELL_KNOWN_MARKERS):
        return "it is a well-known value"
    if len(key) < min_length:
        return f"it is shorter than {min_length} characters"
    counts = Counter(key)
    bits = sum(n * math.log2(len(key) / n) for n in counts.values())
    if len(counts) < SECRET_KEY_MIN_UNIQUE or bits < SECRET_KEY_MIN_BITS:
        return f"it has little entropy (about {bits:.0f} bits)"
    return None


def check_database(apps: Apps) -> list[Message]:
    """crudkit.W002: production runs on PostgreSQL."""
    if not apps.settings.is_sqlite:
        return []
    return [
        Message(
            "crudkit.W002",
            "warning",
            "the database is SQLite: one machine, one writer at a time, no concurrent workers "
            "across machines",
            hint="set CRUDKIT_DATABASE_URL=postgresql+asyncpg://... in production",
        )
    ]


def check_https(apps: Apps) -> list[Message]:
    """crudkit.W003: served over HTTPS, cookies are `Secure` and HSTS is sent."""
    if apps.settings.https_only:
        return []
    return [
        Message(
            "crudkit.W003",
            "warning",
            "https_only is off: the admin's session cookie is not Secure and no HSTS header "
            "is sent",
            hint="serve over HTTPS and set CRUDKIT_HTTPS_ONLY=true",
        )
    ]


def check_docs(apps: Apps) -> list[Message]:
    """crudkit.W004: the interactive docs describe every endpoint to anyone."""
    if not apps.settings.docs_url:
        return []
    return [
        Message(
            "crudkit.W004",
            "warning",
            f"the API docs ({apps.settings.docs_url}, /redoc, /openapi.json) are served to anyone",
            hint="set CRUDKIT_DOCS_URL= (empty) unless the API is public on purpose",
        )
    ]


def check_allowed_hosts(apps: Apps) -> list[Message]:
    """crudkit.E006: without `debug`, the app answers only the hosts it is told."""
    settings = apps.settings
    if settings.debug or settings.allowed_hosts:
        return []
    return [
        Message(
            "crudkit.E006",
            "error",
            "allowed_hosts is empty and debug is off: the app refuses to start",
            hint="set CRUDKIT_ALLOWED_HOSTS to the host names it is served at, e.g. "
            "api.example.com,.example.com",
        )
    ]


def check_any_host(apps: Apps) -> list[Message]:
    """crudkit.W006: answering any `Host` lets a forged one into redirects and links."""
    if "*" not in apps.settings.allowed_hosts:
        return []
    return [
        Message(
            "crudkit.W006",
            "warning",
            "allowed_hosts is '*': a request naming any host is answered, and redirects and "
            "absolute URLs use that host",
            hint="list the host names in CRUDKIT_ALLOWED_HOSTS, unless a proxy in front "
            "already refuses the others",
        )
    ]


def check_metrics(apps: Apps) -> list[Message]:
    """crudkit.E007 and E008: `/metrics` is for the monitoring system only."""
    settings = apps.settings
    if not (settings.metrics_enabled and metrics.available()):
        return []
    hint = (
        'set CRUDKIT_METRICS_TOKEN to a random string (e.g. from python -c "import secrets; '
        'print(secrets.token_urlsafe(32))"), sent by Prometheus as a bearer token, or '
        "CRUDKIT_METRICS_ENABLED=false"
    )
    if not settings.metrics_token:
        if not settings.debug:
            return []  # `/metrics` answers 404
        return [
            Message(
                "crudkit.E007",
                "error",
                "/metrics answers anyone: debug is on and no metrics_token is set",
                hint=hint,
            )
        ]
    weakness = secret_key_weakness(settings.metrics_token, METRICS_TOKEN_MIN_LENGTH)
    if weakness is None:
        return []
    return [
        Message(
            "crudkit.E008",
            "error",
            f"metrics_token is weak: {weakness}; whoever guesses it reads /metrics",
            hint=hint,
        )
    ]


def check_cors_origins(apps: Apps) -> list[Message]:
    """crudkit.W005: `cors_origins = ["*"]` lets every web site call the API from a browser."""
    if "*" not in apps.settings.cors_origins:
        return []
    return [
        Message(
            "crudkit.W005",
            "warning",
            "cors_origins is '*': any web site may call the API from its visitors' browsers "
            "(without cookies)",
            hint="list your front ends' origins in CRUDKIT_CORS_ORIGINS",
        )
    ]


def check_workers_share_state(apps: Apps) -> list[Message]:
    """crudkit.W007: without Redis, each worker throttles logins on its own."""
    workers = os.environ.get("WEB_CONCURRENCY", "").strip()
    if apps.settings.redis_url or not workers.isdigit() or int(workers) <= 1:
        return []
    return [
        Message(
            "crudkit.W007",
            "warning",
            f"WEB_CONCURRENCY is {workers} and no redis_url is set: each worker counts failed "
            f"logins on its own, so a client gets up to {workers} times login_attempts",
            hint='set CRUDKIT_REDIS_URL (pip install "crudkit[redis]") to share the counts',
        )
    ]


def check_pooler(apps: Apps) -> list[Message]:
    """crudkit.W008: behind a connection pooler, say whether it pools by transaction."""
    settings = apps.settings
    if settings.is_sqlite or settings.db_pgbouncer:
        return []
    try:
        pooled = asyncio.run(_behind_pooler(settings))
    except Exception:  # an unreachable database is not this check's finding
        return []
    if not pooled:
        return []
    return [
        Message(
            "crudkit.W008",
            "warning",
            "database_url leads to a connection pooler (PgBouncer?), not to PostgreSQL itself, "
            "and db_pgbouncer is off: in transaction pooling mode requests fail at random "
            "with 'prepared statement ... does not exist'",
            hint="set CRUDKIT_DB_PGBOUNCER=true if it pools by transaction (pool_mode = "
            "transaction); session pooling needs nothing",
        )
    ]


async def _behind_pooler(settings: Settings) -> bool:
    """Whether the server process the connection reports at startup is not the one that
    runs its queries: a pooler answers the startup itself (with its own cancel key)."""
    # Statements behind a pooler are sent as `db_pgbouncer` sends them, whatever it says.
    engine = make_engine(settings.model_copy(update={"db_pgbouncer": True}))
    try:
        async with engine.connect() as conn:
            backend = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
            driver: Any = (await conn.get_raw_connection()).driver_connection
            return bool(backend != driver.get_server_pid())
    finally:
        await engine.dispose()


CORE_CHECKS: list[Check] = [
    check_debug,
    check_allowed_hosts,
    check_cors_credentials,
    check_migrations,
]
DEPLOY_CHECKS: list[Check] = [
    check_secret_key,
    check_database,
    check_https,
    check_docs,
    check_cors_origins,
    check_any_host,
    check_metrics,
    check_workers_share_state,
    check_pooler,
]


def run_checks(apps: Apps, *, deploy: bool = False) -> list[Message]:
    """Every finding of the core checks (and deployment checks), then of the apps' checks."""
    checks = [*CORE_CHECKS, *(DEPLOY_CHECKS if deploy else []), *apps.checks]
    messages: list[Message] = []
    for check in checks:
        messages.extend(check(apps))
    return messages


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
