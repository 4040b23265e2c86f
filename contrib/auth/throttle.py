"""Login throttling per username and client address.

Every password check first reserves an attempt: the counter of that username
and client is raised atomically (Redis `INCR` + `EXPIRE` in one transaction, or
in memory with no await between the read and the write) *before* the password
is looked at, so parallel attempts cannot all see the same count. Once the
reserved count passes `login_attempts` within `login_window` seconds, the
attempt is refused with 429 (even with the right password) until the window
passes; a successful check clears the count. Other usernames and clients are
unaffected. Counters live in Redis when `redis_url` is set (shared by every
worker and machine), else in memory.

    await throttle.reserve(username, client)      # 429 when over the limit
    if not await hasher.verify(...): raise ...     # the attempt stays counted
    await throttle.succeeded(username, client)
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Protocol

from crudkit.contrib.auth.identity import username_key
from crudkit.exceptions import Throttled


class CounterStore(Protocol):
    async def incr(self, key: str, window: int) -> tuple[int, int]:
        """Raise the count under `key` (expiring `window` seconds after its first
        attempt) in one atomic step; the new count, and seconds until it expires."""

    async def reset(self, key: str) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise when the store cannot be reached."""


class MemoryStore:
    """Counters of one process (development, a single worker)."""

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

        self._redis: Any = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    async def incr(self, key: str, window: int) -> tuple[int, int]:
        async with self._redis.pipeline(transaction=True) as pipe:
            count, _, ttl = await pipe.incr(key).expire(key, window, nx=True).ttl(key).execute()
        return int(count), max(1, int(ttl))

    async def reset(self, key: str) -> None:
        await self._redis.delete(key)

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> None:
        await self._redis.ping()


class LoginThrottle:
    def __init__(self, store: CounterStore, *, attempts: int, window: int) -> None:
        self.store = store
        self.attempts = attempts
        self.window = window

    @staticmethod
    def key(username: str, client: str) -> str:
        # Every spelling that logs in as one user (`Admin`, `admin `, fullwidth) counts as one.
        name = username_key(username)
        digest = hashlib.sha256(f"{name}\0{client}".encode()).hexdigest()[:32]
        return f"crudkit:login:{digest}"

    async def reserve(self, username: str, client: str) -> None:
        """Count an attempt of this username and client before its password is checked;
        429 (`Throttled`) once the attempts counted pass `attempts` within the window."""
        count, ttl = await self.store.incr(self.key(username, client), self.window)
        if count > self.attempts:
            raise Throttled(ttl)

    async def succeeded(self, username: str, client: str) -> None:
        """The password was right: the attempts counted so far no longer count."""
        await self.store.reset(self.key(username, client))


def make_throttle(redis_url: str | None, *, attempts: int, window: int) -> LoginThrottle:
    store: CounterStore = RedisStore(redis_url) if redis_url else MemoryStore()
    return LoginThrottle(store, attempts=attempts, window=window)
