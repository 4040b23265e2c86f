"""Counters that expire, shared by every worker through Redis, or kept in memory.

A counter is raised atomically and expires `window` seconds after its first count:
what login throttling, and any other limit per key and time window, needs.
`counter_store(redis_url)` gives Redis counters (`INCR` + `EXPIRE` in one
transaction), or this worker's memory when no URL is set.

Redis does not take the app down with it. While it cannot be reached, counting goes
on in the worker's memory (each worker counting on its own), with one warning when
that starts and one info line when Redis answers again. Meanwhile Redis is tried
again by one request every `RETRY_AFTER` seconds, not by every request, so an outage
does not add a connect timeout to each of them.

    store = counter_store(settings.redis_url)
    count, ttl = await store.incr("crudkit:login:<key>", window=300)
    await store.reset("crudkit:login:<key>")
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

logger = logging.getLogger("crudkit.counters")

T = TypeVar("T")

RETRY_AFTER = 5.0
"""Seconds between two tries of an unreachable Redis."""

TIMEOUT = 0.75
"""Seconds a Redis call may take (connecting included) before Redis counts as down;
below `/readyz`'s 1 s, so the readiness check reports the fallback rather than failing."""


class StoreUnavailable(Exception):
    """The store cannot be reached (or did not answer in time)."""


class CounterStore(Protocol):
    async def incr(self, key: str, window: int) -> tuple[int, int]:
        """Raise the count under `key` (expiring `window` seconds after its first
        attempt) in one atomic step; the new count, and seconds until it expires."""

    async def reset(self, key: str) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` when the store cannot be reached."""


class MemoryStore:
    """Counters of one process (development, a single worker, or Redis being down)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}

    def _live(self, key: str) -> tuple[int, float] | None:
        entry = self._counts.get(key)
        if entry is not None and entry[1] <= time.monotonic():
            del self._counts[key]
            return None
        return entry

    async def incr(self, key: str, window: int) -> tuple[int, int]:
        # No await from the read to the write: one event loop makes this atomic.
        entry = self._live(key)
        count, expires = (entry[0] + 1, entry[1]) if entry else (1, time.monotonic() + window)
        self._counts[key] = (count, expires)
        if len(self._counts) > 100_000:  # bound memory under a credential-stuffing flood
            now = time.monotonic()
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        return count, max(1, round(expires - time.monotonic()))

    async def reset(self, key: str) -> None:
        self._counts.pop(key, None)

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None


class RedisStore:
    """Counters shared through Redis: INCR + EXPIRE in one transaction."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        self._errors = (RedisError, OSError, TimeoutError)
        # One immediate retry on a new connection: a pooled connection that died
        # with a Redis restart is replaced without the caller noticing.
        self._redis: Any = Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 1)
        )

    @asynccontextmanager
    async def _reached(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(TIMEOUT):
                yield
        except self._errors as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    async def incr(self, key: str, window: int) -> tuple[int, int]:
        async with self._reached(), self._redis.pipeline(transaction=True) as pipe:
            count, _, ttl = await pipe.incr(key).expire(key, window, nx=True).ttl(key).execute()
        return int(count), max(1, int(ttl))

    async def reset(self, key: str) -> None:
        async with self._reached():
            await self._redis.delete(key)

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> None:
        async with self._reached():
            await self._redis.ping()


class FallbackStore:
    """`primary` while it answers; this worker's memory while it does not."""

    def __init__(self, primary: CounterStore, *, retry_after: float = RETRY_AFTER) -> None:
        self.primary = primary
        self.retry_after = retry_after
        self.memory = MemoryStore()
        self.down = False
        """Whether counts go to memory now."""
        self._next_try = 0.0

    async def _call(self, call: Callable[[CounterStore], Awaitable[T]]) -> T:
        if self.down:
            if time.monotonic() < self._next_try:
                return await call(self.memory)
            # This request tries the primary; the others keep to memory meanwhile.
            self._next_try = time.monotonic() + self.retry_after
        try:
            result = await call(self.primary)
        except StoreUnavailable as exc:
            self._fell(exc)
            return await call(self.memory)
        self._answered()
        return result

    def _fell(self, exc: StoreUnavailable) -> None:
        self._next_try = time.monotonic() + self.retry_after
        if not self.down:  # once per outage, however many requests notice it
            self.down = True
            logger.warning(
                "Redis unreachable (%s): counters (login throttling) are kept in this "
                "worker's memory, each worker counting on its own, until it answers; "
                "trying again every %g s",
                exc,
                self.retry_after,
            )

    def _answered(self) -> None:
        if self.down:
            self.down = False
            # Counts made meanwhile stay with this outage, not the next one.
            self.memory = MemoryStore()
            logger.info("Redis answers again: counters are shared by every worker again")

    async def incr(self, key: str, window: int) -> tuple[int, int]:
        return await self._call(lambda store: store.incr(key, window))

    async def reset(self, key: str) -> None:
        await self._call(lambda store: store.reset(key))

    async def close(self) -> None:
        await self.primary.close()

    async def ping(self) -> None:
        """Try the primary now, whatever the back-off: raise `StoreUnavailable` while
        it does not answer (counting falls back), switch back to it when it does."""
        try:
            await self.primary.ping()
        except StoreUnavailable as exc:
            self._fell(exc)
            raise
        self._answered()


def counter_store(redis_url: str | None) -> CounterStore:
    """Redis counters falling back to memory while Redis is down, or memory alone."""
    return FallbackStore(RedisStore(redis_url)) if redis_url else MemoryStore()
