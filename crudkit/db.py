"""The `Model` base, the engine, and a session or connection per request.

    class Product(crudkit.Model):
        __tablename__ = "shop_product"
        id: Mapped[int] = mapped_column(primary_key=True)

`Database` owns one async engine per app. Generated endpoints read through a
`Reader` (no BEGIN/COMMIT round trips; on PostgreSQL straight on asyncpg) and
write through a `Writer` (one transaction, the same driver path), both from the
one execution seam (`crudkit._sqla`); `SessionDep` gives custom endpoints an ORM
session that commits when the endpoint returns and rolls back when it raises.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, Dialect, MetaData, Table, TypeDecorator, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import StaticPool

from crudkit._sqla import Connections
from crudkit._sqla import Reader as Reader  # the executor interface, re-exported
from crudkit._sqla import Writer as Writer
from crudkit._sqla import execute as execute
from crudkit.conf import Settings
from crudkit.exceptions import translate_db_error
from crudkit.replicas import Replicas, mark_written

# Deterministic constraint names: SQLite and PostgreSQL get the same migrations, and
# database errors can be traced back to the columns they name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database.

    SQLite has no time zones and returns naive values; this type stores UTC and
    always returns aware datetimes, so the API answers the same on SQLite and
    PostgreSQL. `Mapped[datetime]` columns of crudkit models use it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Model(DeclarativeBase):
    """Base class of every crudkit model; one metadata with naming conventions."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}

    def __repr__(self) -> str:
        mapper = self.__mapper__
        keys = ", ".join(
            f"{column.key}={getattr(self, str(column.key), None)!r}"
            for column in mapper.primary_key
        )
        return f"<{type(self).__name__} {keys}>"


def table_of(model: type[Any]) -> Table:
    """The `Table` a model is mapped to (typed, unlike `Model.__table__`)."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # LIKE is case-sensitive as on PostgreSQL; ILIKE still compiles to lower() LIKE lower().
    cursor.execute("PRAGMA case_sensitive_like=ON")
    cursor.close()


IDLE_PING_AFTER = 10.0
"""Seconds a pooled connection may sit unused before it is checked at checkout."""


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Check a pooled connection before use only when it sat idle for a while.

    Stale connections (a database restart, a firewall dropping idle sockets) come
    from idle pools; `pool_pre_ping` would instead ping on every checkout, three round
    trips on asyncpg. A connection that fails its ping is replaced at once; one that
    breaks while in use invalidates the whole pool, so the next checkout reconnects.
    """
    sync_engine = engine.sync_engine

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError() from error  # the pool reconnects and retries

    event.listen(sync_engine, "checkin", checkin)
    event.listen(sync_engine, "checkout", checkout)


def connect_args(settings: Settings, url: URL) -> dict[str, Any]:
    """The driver's connect arguments for `url` (the project's database, or any other on
    its server): timeouts, and no prepared statements kept under `db_pgbouncer`."""
    if url.get_backend_name() == "sqlite":
        return {"timeout": 30}  # a busy SQLite file waits for the writer instead of failing
    args: dict[str, Any] = {"timeout": settings.db_pool_timeout}
    if settings.db_pgbouncer:
        # A transaction pooler runs consecutive transactions of one connection on
        # different server connections, which lack each other's prepared statements (and
        # may hold another client's under the same name): asyncpg and SQLAlchemy cache
        # none, and asyncpg sends each statement unnamed, parsed again in its own round trip.
        args.update(statement_cache_size=0, prepared_statement_cache_size=0)
    return args


def make_engine(settings: Settings, url: str | URL | None = None) -> AsyncEngine:
    """The async engine for `url` (default `settings.database_url`), configured for its
    dialect and for `settings`."""
    url = make_url(url or settings.database_url)
    options: dict[str, Any] = {"connect_args": connect_args(settings, url)}
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            # One shared connection, or every checkout would see a new empty database.
            options["poolclass"] = StaticPool
    else:
        options.update(
            # Up to twice `db_pool_size` under a burst, as with an overflow of the same
            # size, but kept once opened: an overflow connection is closed on return and
            # reopened at the next burst, and opening one (TLS, startup, type setup)
            # costs more CPU than hundreds of requests. Connections open only on demand.
            pool_size=2 * settings.db_pool_size,
            max_overflow=0,
            pool_timeout=settings.db_pool_timeout,
        )
    engine = create_async_engine(url, **options)
    if options.get("poolclass") is not StaticPool:
        _ping_idle_connections(engine)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
    return engine


class Database:
    """One engine and session factory; lives on `app.state.db`."""

    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.dialect = self.engine.dialect.name
        self.connections = Connections(self.engine, direct=settings.db_direct_reads)
        """Readers and writers; on asyncpg straight on the driver unless `db_direct_reads`
        is off."""
        self.replicas = Replicas(settings, self.connections, make_engine)
        """`database_replica_urls`, their checks and the reader on them."""

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads only: no transaction round trips."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def reader(self) -> AbstractAsyncContextManager[Reader]:
        """The statements of a read-only request, straight on asyncpg where possible."""
        return self.connections.reader()

    def replica_reader(self) -> AbstractAsyncContextManager[Reader]:
        """`reader()` on a healthy read replica when there is one (lists, retrieves);
        on the primary inside or after a write of the request (`crudkit.replicas`)."""
        if not self.replicas:
            return self.connections.reader()
        return self.replicas.reader()

    def writer(self) -> AbstractAsyncContextManager[Writer]:
        """The statements of one write, in one transaction: committed on exit, rolled
        back on error; on PostgreSQL straight on asyncpg where possible."""
        mark_written()
        return self.connections.writer()

    def request_connection(self) -> AbstractAsyncContextManager[None]:
        """Share one pooled connection among the `reader()`s and `writer()`s of the block
        (one checkout per request instead of one per statement group)."""
        return self.connections.request_connection()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction: committed on exit, rolled back on error."""
        mark_written()
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session that commits on success and rolls back on error."""
        mark_written()  # it may write: the request's reads stay on the primary
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def ping(self) -> None:
        """`SELECT 1`; once more on a fresh connection if a pooled one had gone stale."""
        for attempt in (1, 2):
            try:
                async with self.read() as conn:
                    await conn.exec_driver_sql("SELECT 1")
                return
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise

    async def dispose(self) -> None:
        await self.replicas.dispose()
        await self.engine.dispose()


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Dependency: one ORM session per request, committed before the response is sent."""
    try:
        async with get_database(request).session() as session:
            yield session
    except DBAPIError as exc:
        raise translate_db_error(exc) from exc


DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
