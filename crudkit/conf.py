"""Settings, read from the environment (`CRUDKIT_*`), a `.env` file and a settings module.

A project's settings module subclasses `Settings` to change defaults, so that the
environment still overrides them in deployment::

    # settings.py
    import crudkit

    class Settings(crudkit.Settings):
        installed_apps: list[str] = ["crudkit.contrib.auth", "crudkit.contrib.admin", "shop"]
        allow_registration: bool = True

    settings = Settings()

`load_settings("settings")` imports such a module and returns its `settings`
(an instance) or instantiates its `Settings` class.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from crudkit.exceptions import ImproperlyConfigured
from crudkit.hosts import normalize_host

logger = logging.getLogger("crudkit")

MIN_SECRET_KEY_BYTES = 32
DEFAULT_APPS = ["crudkit.contrib.auth", "crudkit.contrib.admin"]
ENVIRONMENT_NOT_SETTINGS = frozenset(
    {
        "CRUDKIT_SETTINGS_MODULE",  # which settings module to load
        # `createsuperuser --noinput` (the auth app)
        "CRUDKIT_SUPERUSER_USERNAME",
        "CRUDKIT_SUPERUSER_EMAIL",
        "CRUDKIT_SUPERUSER_PASSWORD",
    }
)
"""`CRUDKIT_` environment variables that are read elsewhere than in `Settings`. Any other
that names no setting fails start-up: a misspelt setting would otherwise be ignored."""
ENVIRONMENT_NOT_SETTINGS_PREFIXES = ("CRUDKIT_TEST_",)
"""Prefixes of such variables: crudkit's own test suite (`CRUDKIT_TEST_DATABASE_URL`...)."""


def _split_list(value: Any) -> Any:
    """Accept `a,b,c` or a JSON list from the environment."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            import json

            try:
                return json.loads(stripped)
            except json.JSONDecodeError:
                pass  # not JSON: a bracketed host such as `[::1]` in a comma list
        return [part.strip() for part in stripped.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting crudkit reads; environment variables are `CRUDKIT_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="CRUDKIT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        # Lists come as JSON or "a,b,c" (parsed below), in subclasses too.
        enable_decoding=False,
    )

    database_url: str = "sqlite+aiosqlite:///./db.sqlite3"
    """SQLAlchemy async URL: `sqlite+aiosqlite:///path` or `postgresql+asyncpg://...`."""
    secret_key: str = Field(default="", repr=False)
    """Signs tokens, sessions and cursors; at least 32 bytes. Required unless `debug`."""
    secret_key_fallbacks: list[str] = Field(default_factory=list, repr=False)
    """Former secret keys, still accepted to verify tokens during a key rotation."""
    secret_key_file: Path = Path(".crudkit-secret-key")
    """Where `debug` keeps the generated development key (git-ignored)."""
    debug: bool = False
    """Development mode: tracebacks in logs, a generated secret key, readable logs."""
    installed_apps: list[str] = Field(default_factory=lambda: list(DEFAULT_APPS))
    """Dotted module paths of the apps to load, in order."""
    api_prefix: str = "/api/v1"
    """Where the generated REST API is mounted."""
    admin_path: str = "/admin"
    """Where the admin panel is mounted."""
    allow_registration: bool = False
    """Whether `POST {api_prefix}/auth/register` is open."""
    redis_url: str | None = None
    """Redis for state shared across workers (login throttling); memory when unset, and in
    each worker while Redis does not answer."""
    cors_origins: list[str] = Field(default_factory=list)
    """Origins allowed to call the API from a browser."""
    access_token_ttl: int = Field(default=900, gt=0)
    """Lifetime of an access token, in seconds."""
    refresh_token_ttl: int = Field(default=14 * 24 * 3600, gt=0)
    """Lifetime of a refresh token, in seconds."""
    page_size_default: int = Field(default=50, gt=0)
    """Rows per list page when `limit` is not given."""
    page_size_max: int = Field(default=1000, gt=0)
    """The largest `limit` a client may ask for."""
    max_body_size: int = Field(default=1024 * 1024, gt=0)
    """Request bodies larger than this many bytes are refused with 413."""
    https_only: bool = False
    """Served over HTTPS only: secure cookies and HSTS."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names the app answers to (`Host` header); others get 400. `.example.com` also
    matches its subdomains, `*` any host. Required unless `debug`, which allows localhost."""
    forwarded_allow_ips: list[str] = Field(default_factory=list)
    """Addresses of the proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed
    (`*` any); empty: the client address is the connection's."""
    shutdown_timeout: int = Field(default=30, gt=0)
    """Seconds a worker told to stop (SIGTERM) lets the requests in flight finish before it
    cancels them (each write then rolls back whole); `runserver` hands it to uvicorn, under
    gunicorn pass it as `--graceful-timeout`."""
    docs_url: str | None = "/docs"
    """Where Swagger UI is served (ReDoc at `/redoc`, the schema at `/openapi.json`); empty
    disables all three."""
    metrics_enabled: bool = True
    """Serve Prometheus metrics at `/metrics` (needs the `metrics` extra)."""
    metrics_token: str | None = Field(default=None, repr=False)
    """Bearer token `/metrics` requires; without one, `/metrics` answers 404 unless `debug`."""
    login_attempts: int = Field(default=5, gt=0)
    """Failed logins allowed per username and client before throttling."""
    login_window: int = Field(default=300, gt=0)
    """Seconds over which failed logins are counted, and the throttle lasts."""
    argon2_time_cost: int = Field(default=3, ge=1)
    """argon2id passes over memory when hashing a password."""
    argon2_memory_cost: int = Field(default=65536, ge=8)
    """argon2id memory per hash, in KiB (64 MiB by default)."""
    argon2_parallelism: int = Field(default=4, ge=1)
    """argon2id lanes per hash."""
    password_hash_concurrency: int = Field(default=2, ge=1)
    """Password hashes (and checks) one worker runs at once; each takes `argon2_memory_cost`,
    so hashing holds at most this x `argon2_memory_cost` KiB per worker (2 x 64 MiB =
    128 MiB by default), whatever the burst. More wait their turn (up to 10 s), then get
    503 with `Retry-After`."""
    db_pool_size: int = Field(default=10, gt=0)
    """Connections per worker (PostgreSQL), and as many again under bursts: opened when
    needed, then kept."""
    db_pool_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for a pooled connection before answering 503."""
    db_direct_reads: bool = True
    """On PostgreSQL, run the statements of generated endpoints straight on asyncpg
    (`crudkit._sqla`, engine events still fire); off, they go through SQLAlchemy's
    asyncio adapter."""
    database_replica_urls: list[str] = Field(default_factory=list, repr=False)
    """Streaming replicas of `database_url` (PostgreSQL, same database name): lists and
    retrieves read from a healthy one; writes, auth and reads after a write stay on the
    primary. One that cannot be reached is skipped (a warning), never fatal."""
    replica_max_lag: float = Field(default=5.0, gt=0)
    """Seconds a replica may replay behind the primary before reads skip it."""
    db_pgbouncer: bool = False
    """The database URL points at PgBouncer (or another pooler) in transaction pooling
    mode: no prepared statement is kept on a connection from one transaction to the next
    (each is parsed again as it runs, unnamed), and nothing relies on session state."""

    @field_validator(
        "installed_apps",
        "cors_origins",
        "secret_key_fallbacks",
        "allowed_hosts",
        "forwarded_allow_ips",
        "database_replica_urls",
        mode="before",
    )
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: list[str]) -> list[str]:
        return [normalize_host(host) for host in value]

    @field_validator("docs_url")
    @classmethod
    def _check_docs_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith("/"):
            raise ValueError("must start with '/' (or be empty, to serve no docs)")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {value!r}") from exc
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError("only sqlite+aiosqlite and postgresql+asyncpg are supported")
        if url.get_driver_name() not in {"aiosqlite", "asyncpg"}:
            raise ValueError(
                f"use an async driver: sqlite+aiosqlite:// or postgresql+asyncpg://, not "
                f"{url.drivername}://"
            )
        return value

    @field_validator("database_replica_urls")
    @classmethod
    def _check_replica_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            try:
                parsed = make_url(url)
            except ArgumentError as exc:
                raise ValueError(f"not a database URL: {url!r}") from exc
            if parsed.drivername != "postgresql+asyncpg":
                raise ValueError(f"a replica is a postgresql+asyncpg:// URL, not {url!r}")
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: str) -> str:
        if value and len(value.encode()) < MIN_SECRET_KEY_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_KEY_BYTES} bytes long")
        return value

    @field_validator("api_prefix", "admin_path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.page_size_default > self.page_size_max:
            raise ValueError("page_size_default must not exceed page_size_max")
        if self.database_replica_urls and not self.database_url.startswith("postgresql"):
            raise ValueError("database_replica_urls needs a PostgreSQL database_url")
        if "*" in self.cors_origins and len(self.cors_origins) > 1:
            raise ValueError("cors_origins: '*' cannot be combined with other origins")
        if not self.secret_key:
            if not self.debug:
                raise ValueError(
                    "secret_key is required unless debug is on: set CRUDKIT_SECRET_KEY (generate "
                    'one with: python -c "import secrets; print(secrets.token_urlsafe(48))")'
                )
            self.secret_key = _development_secret_key(self.secret_key_file)
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The sources are those of this instantiation (its `_env_file` included).
        for source in (env_settings, dotenv_settings):
            if isinstance(source, EnvSettingsSource):
                refuse_unknown_variables(settings_cls, source.env_vars)
        return init_settings, env_settings, dotenv_settings, file_secret_settings


def refuse_unknown_variables(settings_cls: type[BaseSettings], names: Iterable[str]) -> None:
    """A `ValidationError` naming each variable with the settings' prefix that names none
    of `settings_cls`'s fields, with the closest field's variable as a "did you mean"."""
    prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()
    if not prefix:
        return
    known = {prefix + name.upper() for name in settings_cls.model_fields}
    for field in settings_cls.model_fields.values():
        aliases = field.validation_alias
        choices = aliases.choices if isinstance(aliases, AliasChoices) else [aliases]
        known.update(alias.upper() for alias in choices if isinstance(alias, str))
    # Compared without the prefix, which every candidate shares.
    candidates = {name.removeprefix(prefix): name for name in (*known, *ENVIRONMENT_NOT_SETTINGS)}
    errors: list[InitErrorDetails] = []
    for name in sorted({name.upper() for name in names}):
        if (
            not name.startswith(prefix)
            or name in known
            or name in ENVIRONMENT_NOT_SETTINGS
            or name.startswith(ENVIRONMENT_NOT_SETTINGS_PREFIXES)
        ):
            continue
        close = difflib.get_close_matches(name.removeprefix(prefix), candidates, n=1)
        advice = (
            f"did you mean {candidates[close[0]]}?"
            if close
            else f"unset it, or declare the setting in the project's {settings_cls.__name__}"
        )
        message = f"{name} names no setting: {advice}"
        errors.append(
            {"type": "value_error", "loc": (), "input": name, "ctx": {"error": ValueError(message)}}
        )
    if errors:
        raise ValidationError.from_exception_data(settings_cls.__name__, errors)


def _development_secret_key(path: Path) -> str:
    """Read or create the generated key `debug` uses, so restarts keep sessions valid."""
    try:
        key = path.read_text().strip()
        if len(key.encode()) >= MIN_SECRET_KEY_BYTES:
            return key
    except OSError:
        pass
    key = secrets.token_urlsafe(48)
    try:
        path.write_text(key + "\n")
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        logger.warning(
            "debug is on and no secret_key is set: generated one in %s (keep it out of git; "
            "set CRUDKIT_SECRET_KEY in production)",
            path,
        )
    except OSError:
        logger.warning("debug is on and no secret_key is set: using a temporary random key")
    return key


def format_validation_error(exc: ValidationError) -> str:
    """One readable line per bad setting, naming the environment variable."""
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if error["loc"]:
            name = str(error["loc"][0])
            lines.append(f"{name} (CRUDKIT_{name.upper()}): {message}")
        else:
            lines.append(message)
    return "invalid settings:\n  " + "\n  ".join(lines)


def build_settings(settings_cls: type[Settings] = Settings, **values: Any) -> Settings:
    """Instantiate settings, turning validation errors into `ImproperlyConfigured`."""
    try:
        return settings_cls(**values)
    except ValidationError as exc:
        raise ImproperlyConfigured(format_validation_error(exc)) from None


def load_settings(module_path: str | None = None) -> Settings:
    """Settings from a module path (or `CRUDKIT_SETTINGS_MODULE`), else from the environment."""
    module_path = module_path or os.environ.get("CRUDKIT_SETTINGS_MODULE")
    if not module_path:
        return build_settings()
    try:
        module = importlib.import_module(module_path)
    except ValidationError as exc:
        raise ImproperlyConfigured(format_validation_error(exc)) from None
    except ImportError as exc:
        raise ImproperlyConfigured(f"cannot import settings module {module_path!r}: {exc}") from exc
    instance = getattr(module, "settings", None)
    if isinstance(instance, Settings):
        return instance
    settings_cls = getattr(module, "Settings", None)
    if isinstance(settings_cls, type) and issubclass(settings_cls, Settings):
        return build_settings(settings_cls)
    raise ImproperlyConfigured(
        f"settings module {module_path!r} defines neither `settings = Settings(...)` "
        "nor a `Settings` subclass of crudkit.Settings"
    )
