"""Bearer-token authentication for the API, and the auth services an app holds.

@router.get("/mine")
async def mine(user: AuthenticatedUser) -> ...: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from crudkit.authentication import UserLike, get_user
from crudkit.conf import Settings
from crudkit.contrib.auth.hashing import PasswordHasher
from crudkit.contrib.auth.throttle import LoginThrottle
from crudkit.contrib.auth.tokens import TokenCodec
from crudkit.contrib.auth.users import AuthUser, load_user
from crudkit.counters import CounterStore, counter_store
from crudkit.db import Database
from crudkit.exceptions import NotAuthenticated


@dataclass
class AuthServices:
    """Per-app token codec, login throttle, password hasher and the counters (Redis,
    falling back to memory) limits count with, at `app.state.auth`."""

    tokens: TokenCodec
    throttle: LoginThrottle
    hasher: PasswordHasher
    counters: CounterStore

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthServices:
        counters = counter_store(settings.redis_url)
        return cls(
            tokens=TokenCodec(
                settings.secret_key,
                fallbacks=settings.secret_key_fallbacks,
                access_ttl=settings.access_token_ttl,
                refresh_ttl=settings.refresh_token_ttl,
            ),
            throttle=LoginThrottle(
                counters, attempts=settings.login_attempts, window=settings.login_window
            ),
            hasher=PasswordHasher(settings.password_hash_concurrency),
            counters=counters,
        )

    async def close(self) -> None:
        await self.counters.close()


def get_services(request: Request) -> AuthServices:
    services: AuthServices = request.app.state.auth
    return services


class JWTAuthentication:
    """`Authorization: Bearer <access token>` -> the active user it was issued to."""

    async def authenticate(self, request: Request) -> AuthUser | None:
        header = request.headers.get("authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("Invalid authorization header; expected 'Bearer <token>'.")
        claims = get_services(request).tokens.decode(token.strip(), "access")
        try:
            user_id = int(claims["sub"])
        except (TypeError, ValueError):
            raise NotAuthenticated("Invalid or expired token.") from None
        db: Database = request.app.state.db
        async with db.reader() as reader:
            user = await load_user(reader, user_id=user_id)
        if user is None or not user.is_active or user.token_version != claims["ver"]:
            raise NotAuthenticated("Invalid or expired token.")
        return user


async def get_authenticated_user(user: Annotated[UserLike, Depends(get_user)]) -> AuthUser:
    """Dependency: the caller, who must be authenticated (401 otherwise)."""
    if not isinstance(user, AuthUser):
        raise NotAuthenticated()
    return user


AuthenticatedUser = Annotated[AuthUser, Depends(get_authenticated_user)]
