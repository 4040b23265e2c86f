"""Login throttling per username and client address.

Every password check first reserves an attempt: the counter of that username
and client is raised atomically (Redis `INCR` + `EXPIRE` in one transaction, or
in memory with no await between the read and the write) *before* the password
is looked at, so parallel attempts cannot all see the same count. Once the
reserved count passes `login_attempts` within `login_window` seconds, the
attempt is refused with 429 (even with the right password) until the window
passes; a successful check clears the count. Other usernames and clients are
unaffected. Counters (`crudkit.counters`) live in Redis when `redis_url` is set
(shared by every worker and machine), else in memory; while Redis is down each
worker counts in its own memory, still atomically, so logins keep working.

    await throttle.reserve(username, client)      # 429 when over the limit
    if not await hasher.verify(...): raise ...     # the attempt stays counted
    await throttle.succeeded(username, client)
"""

from __future__ import annotations

import hashlib

from crudkit.contrib.auth.identity import username_key
from crudkit.counters import CounterStore
from crudkit.exceptions import Throttled


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
