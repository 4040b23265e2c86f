"""Login throttling per username and client address.

After `login_attempts` failures within `login_window` seconds, that username from
that client is refused with 429 until the window passes, even with the right
password; other usernames and clients are unaffected. Counters live in Redis
when `redis_url` is set (shared by every worker and machine), else in memory.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Protocol

from crudkit.exceptions import Throttled


class CounterStore(Protocol):
    async def get(self, key: str) -> tuple[int, int]:
        """Failures counted under `key`, and seconds until the count expires."""

    async def incr(self, key: str, window: int) -> tuple[int, int]: ...

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

    async def get(self, key: str) -> tuple[int, int]:
        entry = self._live(key)
        if entry is None:
            return 0, 0
        return entry[0], max(1, round(entry[1] - time.monotonic()))

    async def incr(self, key: str, window: int) -> tuple[int, int]:
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

    async def get(self, key: str) -> tuple[int, int]:
        async with self._redis.pipeline(transaction=True) as pipe:
            count, ttl = await pipe.get(key).ttl(key).execute()
        if count is None:
            return 0, 0
        return int(count), max(1, int(ttl))

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
        digest = hashlib.sha256(f"{username.casefold()}\0{client}".encode()).hexdigest()[:32]
        return f"crudkit:login:{digest}"

    async def check(self, username: str, client: str) -> None:
        """Refuse with 429 while this username and client are throttled."""
        count, ttl = await self.store.get(self.key(username, client))
        if count >= self.attempts:
            raise Throttled(ttl)

    async def failed(self, username: str, client: str) -> None:
        await self.store.incr(self.key(username, client), self.window)

    async def succeeded(self, username: str, client: str) -> None:
        await self.store.reset(self.key(username, client))


def make_throttle(redis_url: str | None, *, attempts: int, window: int) -> LoginThrottle:
    store: CounterStore = RedisStore(redis_url) if redis_url else MemoryStore()
    return LoginThrottle(store, attempts=attempts, window=window)
