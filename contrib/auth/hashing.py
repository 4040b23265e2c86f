"""Password hashing: argon2id through passlib's `CryptContext`, older schemes verified.

passlib comes from the `libpass` distribution (its maintained fork); the old
`passlib` 1.7.4 breaks with bcrypt 5, so start-up refuses it. bcrypt hashes
from earlier systems still verify and are replaced with argon2id at the next
login. Every hashing call of the project goes through this module.

Requests hash through a `PasswordHasher` (one per app, `app.state.auth.hasher`):
each argon2id computation takes `argon2_memory_cost` KiB, so it lets at most
`password_hash_concurrency` run at once per worker and turns away (503) a request
that cannot get a turn soon:

    ok, new_hash = await hasher.verify(password, user.hashed_password)
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TypeVar

import anyio
from anyio import to_thread
from passlib.context import CryptContext

from crudkit.exceptions import ImproperlyConfigured, ServiceUnavailable

T = TypeVar("T")

MAX_PASSWORD_LENGTH = 4096
"""Longer passwords are refused before hashing (hashing them would be a denial of service)."""

context = CryptContext(
    schemes=["argon2", "bcrypt"],
    deprecated="auto",
    argon2__type="ID",
    # bcrypt only ever verifies legacy hashes; refuse, never truncate, over 72 bytes.
    bcrypt__truncate_error=True,
)

# Verified when the username does not exist, so both paths take as long.
_dummy_hash = context.hash("crudkit dummy password")


def configure(*, time_cost: int, memory_cost: int, parallelism: int) -> None:
    """Set the argon2id parameters; hashes made with others are rehashed at the next login."""
    global _dummy_hash
    context.update(
        argon2__time_cost=time_cost,
        argon2__memory_cost=memory_cost,
        argon2__parallelism=parallelism,
    )
    _dummy_hash = context.hash("crudkit dummy password")


def check_passlib() -> None:
    """Fail clearly when the unmaintained `passlib` 1.7.4 has replaced `libpass`."""
    try:
        version("libpass")
    except PackageNotFoundError:
        raise ImproperlyConfigured(
            "crudkit needs the 'libpass' distribution (maintained passlib); "
            "run: pip uninstall passlib && pip install --force-reinstall libpass"
        ) from None
    import passlib

    if getattr(passlib, "__version__", "0").startswith("1.7"):
        raise ImproperlyConfigured(
            "the unmaintained 'passlib' 1.7 has overwritten libpass and fails with bcrypt 5; "
            "run: pip uninstall -y passlib && pip install --force-reinstall libpass"
        )


def hash_password(password: str) -> str:
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"passwords are limited to {MAX_PASSWORD_LENGTH} characters")
    return str(context.hash(password))


def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Whether `password` matches, and a new hash when the stored one is outdated."""
    if len(password) > MAX_PASSWORD_LENGTH or not hashed:
        context.verify("x", _dummy_hash)
        return False, None
    try:
        ok, new_hash = context.verify_and_update(password, hashed)
    except (ValueError, TypeError):  # unknown scheme, or over bcrypt's 72 bytes
        return False, None
    return bool(ok), new_hash


def verify_dummy(password: str) -> None:
    """Spend the time a real verification takes; for unknown usernames."""
    context.verify(password[:MAX_PASSWORD_LENGTH], _dummy_hash)


HASH_WAIT = 10.0
"""Seconds a request waits for a free hashing slot before it is turned away with 503."""

BUSY = "Too many password checks at once; try again shortly."


class PasswordHasher:
    """Hashes and checks passwords in threads, at most `concurrency` at once.

    Memory for hashing stays under `concurrency` x `argon2_memory_cost` per worker
    however many requests arrive; the others wait their turn (first come, first
    served) for up to `wait` seconds, then get `ServiceUnavailable` with `Retry-After`.
    """

    def __init__(self, concurrency: int, *, wait: float = HASH_WAIT) -> None:
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.wait = wait

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """Whether `password` matches, and a new hash when the stored one is outdated."""
        return await self._run(verify_password, password, hashed)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time (and the turn) a real check takes; for unknown usernames."""
        await self._run(verify_dummy, password)

    async def _run(self, func: Callable[..., T], *args: object) -> T:
        # The slot is taken here, under the deadline, and held by the thread until it
        # is done: a request whose wait runs out never starts a hash.
        try:
            with anyio.fail_after(self.wait):
                await self.limiter.acquire()
        except TimeoutError:
            raise ServiceUnavailable(BUSY, headers={"Retry-After": "1"}) from None
        try:
            return await to_thread.run_sync(func, *args)
        finally:
            self.limiter.release()
