"""Read replicas: the reads of lists and retrieves on streaming replicas of the primary.

    CRUDKIT_DATABASE_REPLICA_URLS=postgresql+asyncpg://app@replica-1/shop,postgresql+asyncpg://app@replica-2/shop

`Database.replica_reader()` hands out a `Reader` on a healthy replica (in turn), or on
the primary when none is. Everything else stays on the primary: writes, the caller's
lookup, reads inside a write, and every read of a request after it wrote (a request
reads its own writes).

Each worker checks its replicas once a second, in the background, on a connection of
its own: a replica that cannot be reached, is no longer in recovery (promoted) or
replays more than `replica_max_lag` seconds behind the primary is skipped until a
check finds it fine again. A statement that fails on a replica for the replica's sake
(connection lost, server shutting down, a recovery conflict) runs again on the
primary, and that replica is skipped until its next good check: the client sees no
error.

The lag is measured against the primary's WAL position, not against the replica's
last replayed commit time, which grows old on an idle primary although the replica
is current: each check samples the primary's `pg_current_wal_lsn()`, and a replica's
lag is the age of the newest sample its `pg_last_wal_replay_lsn()` has reached (0
when it has reached the current one).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    suppress,
)
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Row
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import Executable
from starlette.types import ASGIApp, Receive, Scope, Send

from crudkit._sqla import Connections, Reader
from crudkit.conf import Settings
from crudkit.exceptions import sqlstate

logger = logging.getLogger("crudkit")

CHECK_INTERVAL = 1.0
"""Seconds between two checks of the replicas (per worker)."""
CHECK_TIMEOUT = 1.0
"""Seconds a check of one server may take before the server counts as down."""

State = Literal["unknown", "ok", "lagging", "down", "promoted"]

# SQLSTATE classes of failures that are the server's, not the statement's: connection
# exceptions, operator intervention (shutdown, starting up), insufficient resources,
# system errors, an unknown database, a refused login.
_SERVER_CLASSES = frozenset({"08", "57", "53", "58", "XX", "3D", "28"})
_RECOVERY_CONFLICT = "40001"  # a read cancelled by the replay of a conflicting change


def replica_fault(exc: BaseException) -> Literal["down", "retry"] | None:
    """Whether `exc`, raised on a replica, is the replica's fault: "down" (skip the
    replica), "retry" (only run the statement on the primary), or None (the statement's
    own error, which the primary would raise too)."""
    if isinstance(exc, OSError | TimeoutError | PoolTimeout):
        return "down"
    if isinstance(exc, DBAPIError):
        state = sqlstate(exc)
        if state == _RECOVERY_CONFLICT:
            return "retry"
        if exc.connection_invalidated or state is None or state[:2] in _SERVER_CLASSES:
            return "down"
    return None


def display_url(url: str) -> str:
    """`url` without its password, for logs and `/readyz`."""
    return make_url(url).render_as_string(hide_password=True)


# Read your writes: a request that wrote reads from the primary from then on.


class _Request:
    __slots__ = ("wrote",)

    def __init__(self) -> None:
        self.wrote = False


_request: ContextVar[_Request | None] = ContextVar("crudkit_replica_request", default=None)


def mark_written() -> None:
    """The current request writes: its later reads (and those inside the write) go to
    the primary."""
    request = _request.get()
    if request is not None:
        request.wrote = True


class ReadYourWritesMiddleware:
    """Scopes `mark_written()` to one request (installed when replicas are configured)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _request.set(_Request())
        try:
            await self.app(scope, receive, send)
        finally:
            _request.reset(token)


# The replicas.


@dataclass(frozen=True)
class _Sample:
    at: float
    lsn: int


class Replica:
    """One replica: its engines, and what the last check (or a failed read) found."""

    def __init__(self, url: str, engine: AsyncEngine, probe: AsyncEngine, direct: bool) -> None:
        self.url = display_url(url)
        self.engine = engine
        self.probe = probe
        """A connection of its own for the checks: a busy pool does not fail them."""
        self.connections = Connections(engine, direct=direct)
        self.state: State = "unknown"
        self.lag: float | None = None
        self.error: str | None = None

    @property
    def usable(self) -> bool:
        return self.state == "ok"

    def report(self, state: State, lag: float | None = None, error: str | None = None) -> None:
        """Record a check's (or a read's) finding, logging a change of usability once."""
        was = self.state
        self.state, self.lag, self.error = state, lag, error
        if state == was:
            return
        if state == "ok":
            logger.info("read replica %s is back in use (lag %.1fs)", self.url, lag or 0.0)
        elif state == "lagging":
            logger.warning(
                "read replica %s lags %.1fs behind the primary: reading from the primary",
                self.url,
                lag or 0.0,
            )
        elif state == "promoted":
            logger.warning(
                "read replica %s is no longer in recovery (promoted?): reading from the primary",
                self.url,
            )
        else:
            logger.warning(
                "read replica %s is unavailable (%s): reading from the primary", self.url, error
            )

    def status(self) -> dict[str, Any]:
        lag = None if self.lag is None else round(self.lag, 3)
        status: dict[str, Any] = {"url": self.url, "state": self.state, "lag": lag}
        if self.error is not None:
            status["error"] = self.error
        return status


class Replicas:
    """The replicas of one `Database`, their background checks, and the reader on them."""

    def __init__(
        self,
        settings: Settings,
        primary: Connections,
        engine_for: Callable[[Settings], AsyncEngine],
    ) -> None:
        self.primary = primary
        self.max_lag = settings.replica_max_lag
        self.replicas: list[Replica] = []
        self._probe: AsyncEngine | None = None
        if settings.database_replica_urls:
            probe_settings = settings.model_copy(update={"db_pool_size": 1})
            self._probe = engine_for(probe_settings)
            for url in settings.database_replica_urls:
                replica_settings = settings.model_copy(update={"database_url": url})
                self.replicas.append(
                    Replica(
                        url,
                        engine_for(replica_settings),
                        engine_for(replica_settings.model_copy(update={"db_pool_size": 1})),
                        primary.direct,
                    )
                )
        self._turn = itertools.count()
        # Enough samples of the primary's position to date a lag beyond `max_lag`.
        self._samples: deque[_Sample] = deque(maxlen=int(self.max_lag / CHECK_INTERVAL) + 5)
        self._task: asyncio.Task[None] | None = None

    def __bool__(self) -> bool:
        return bool(self.replicas)

    # Reading.

    def reader(self) -> AbstractAsyncContextManager[Reader]:
        """A reader on a healthy replica, or on the primary (see the module)."""
        request = _request.get()
        if request is not None and request.wrote:
            return self.primary.reader()
        self._ensure_checking()
        usable = [replica for replica in self.replicas if replica.usable]
        if not usable:
            return self.primary.reader()
        return self._on_replica(usable[next(self._turn) % len(usable)])

    @asynccontextmanager
    async def _on_replica(self, replica: Replica) -> AsyncIterator[Reader]:
        opened = replica.connections.reader()
        try:
            inner = await opened.__aenter__()
        except Exception as exc:
            if replica_fault(exc) is None:
                raise
            replica.report("down", error=_describe(exc))
            async with self.primary.reader() as reader:
                yield reader
            return
        async with AsyncExitStack() as stack:
            stack.push_async_exit(_quiet_exit(replica, opened))
            yield _FallbackReader(replica, inner, self.primary, stack)

    # Checking.

    async def start(self) -> None:
        """Check every replica once (a wrong URL is logged now), then every second."""
        if not self.replicas or self._checking():
            return
        await self.check()
        self._ensure_checking()

    def _checking(self) -> bool:
        task = self._task
        if task is None or task.done():
            return False
        # A task of another (closed) event loop, as in tests that run one per test.
        return task.get_loop() is asyncio.get_running_loop()

    def _ensure_checking(self) -> None:
        if not self._checking():
            self._task = asyncio.get_running_loop().create_task(
                self._check_forever(), name="crudkit-replica-checks"
            )

    async def _check_forever(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a bug must not end the checks: log it, try again
                logger.exception("read replica check failed")
            await asyncio.sleep(CHECK_INTERVAL)

    async def check(self) -> None:
        """Sample the primary's WAL position, then check every replica against it."""
        assert self._probe is not None
        try:
            row = await _query(
                self._probe,
                "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint, "
                "(SELECT system_identifier FROM pg_control_system())",
            )
        except Exception as exc:  # the primary's own health is /healthz's business
            logger.debug("read replicas: primary position unknown: %s", exc)
            primary: tuple[int, int] | None = None
        else:
            primary = (int(row[0]), int(row[1]))
            self._samples.append(_Sample(time.monotonic(), primary[0]))
        await asyncio.gather(*(self._check(replica, primary) for replica in self.replicas))

    async def _check(self, replica: Replica, primary: tuple[int, int] | None) -> None:
        try:
            row = await _query(
                replica.probe,
                "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, "
                "(SELECT system_identifier FROM pg_control_system()), "
                "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
            )
        except Exception as exc:
            replica.report("down", error=_describe(exc))
            return
        in_recovery, replayed, system, replay_age = row
        if primary is not None and int(system) != primary[1]:
            replica.report("down", error="not a replica of the primary (another cluster)")
            return
        if not in_recovery:
            replica.report("promoted", error="not in recovery")
            return
        lag = self._lag(int(replayed), replay_age, primary is not None)
        replica.report("ok" if lag <= self.max_lag else "lagging", lag)

    def _lag(self, replayed: int, replay_age: float | None, sampled: bool) -> float:
        """Seconds since the primary was where the replica has replayed to."""
        if not sampled:  # no position from the primary this time: the last commit's age
            return max(replay_age or 0.0, 0.0)
        now = time.monotonic()
        reached = [sample for sample in self._samples if sample.lsn <= replayed]
        if len(reached) == len(self._samples):
            return 0.0  # at (or past) the position just sampled
        if not reached:
            return now - self._samples[0].at  # behind every sample: at least this much
        return now - reached[-1].at

    def status(self) -> list[dict[str, Any]]:
        """Each replica's state and lag, for `/readyz`."""
        self._ensure_checking()
        return [replica.status() for replica in self.replicas]

    async def dispose(self) -> None:
        """Stop the checks and close every connection (they reopen on demand)."""
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        engines = [self._probe, *(e for r in self.replicas for e in (r.engine, r.probe))]
        for engine in engines:
            if engine is not None:
                await engine.dispose()


async def _query(engine: AsyncEngine, sql: str) -> tuple[Any, ...]:
    async def run() -> tuple[Any, ...]:
        async with engine.connect() as conn:
            return tuple((await conn.exec_driver_sql(sql)).one())

    return await asyncio.wait_for(run(), CHECK_TIMEOUT)


def _describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _quiet_exit(
    replica: Replica, opened: AbstractAsyncContextManager[Reader]
) -> Callable[..., Awaitable[bool]]:
    """The exit of a replica's reader: a replica failing to close its connection (it
    went down during the request) fails nothing the client asked for."""

    async def exit_(*exc_info: Any) -> bool:
        try:
            return bool(await opened.__aexit__(*exc_info))
        except Exception as exc:
            if exc is exc_info[1] or replica_fault(exc) is None:
                raise
            replica.report("down", error=_describe(exc))
            return False

    return exit_


class _FallbackReader(Reader):
    """Statements on a replica; from the first one the replica fails, on the primary."""

    def __init__(
        self, replica: Replica, inner: Reader, primary: Connections, stack: AsyncExitStack
    ) -> None:
        self._replica = replica
        self._inner: Reader | None = inner
        self._primary = primary
        self._stack = stack
        self._on_primary: Reader | None = None
        self.connection = inner.connection

    async def _reader(self) -> Reader:
        if self._on_primary is None:
            self._on_primary = await self._stack.enter_async_context(self._primary.reader())
            self.connection = self._on_primary.connection
        return self._on_primary

    async def rows(
        self, stmt: Executable, params: Mapping[str, Any] | None = None
    ) -> list[Row[Any]]:
        inner = self._inner
        if inner is not None:
            try:
                return await inner.rows(stmt, params)
            except Exception as exc:
                fault = replica_fault(exc)
                if fault is None:
                    raise
                if fault == "down":
                    self._replica.report("down", error=_describe(exc))
                self._inner = None
        return await (await self._reader()).rows(stmt, params)
