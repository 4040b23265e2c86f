"""Who is calling: the user protocol permissions are checked against, and how it is found.

The core knows users only through `UserLike`; an installed app provides the
`Authenticator` (``crudkit.contrib.auth`` reads JWT bearer tokens) from its
`AppConfig.ready()`. Endpoints ask for the caller with `CurrentUser`::

    @router.get("/hello")
    async def hello(user: CurrentUser) -> dict[str, str]:
        return {"hello": user.username if user.is_authenticated else "stranger"}

The resolved user is also at `request.user`, so permission objects can read it.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol, runtime_checkable

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer


@runtime_checkable
class UserLike(Protocol):
    """What permissions need to know about a caller."""

    @property
    def id(self) -> Any: ...

    @property
    def username(self) -> str: ...

    @property
    def is_authenticated(self) -> bool: ...

    @property
    def is_active(self) -> bool: ...

    @property
    def is_staff(self) -> bool: ...

    @property
    def is_superuser(self) -> bool: ...

    def has_perm(self, codename: str) -> bool: ...


class AnonymousUser:
    """The caller when no credentials were sent."""

    id = None
    username = ""
    is_authenticated = False
    is_active = False
    is_staff = False
    is_superuser = False

    def has_perm(self, codename: str) -> bool:
        return False

    def __repr__(self) -> str:
        return "<AnonymousUser>"


ANONYMOUS = AnonymousUser()


class Authenticator(Protocol):
    """Finds the user of a request; raises `NotAuthenticated` for bad credentials."""

    async def authenticate(self, request: Request) -> UserLike | None: ...


# Declared so the OpenAPI schema shows the bearer scheme and /docs gets an Authorize button.
# Where tokens come from is the authenticating app's to say (`Apps.set_authenticator`);
# `create_app` writes its URL into the schema.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="", auto_error=False)


async def resolve_user(request: Request) -> UserLike:
    """The authenticated user, or `AnonymousUser` when no credentials were sent; once per
    request. Raises `NotAuthenticated` for bad credentials."""
    cached = request.scope.get("user")
    if cached is not None:
        user: UserLike = cached
        return user
    authenticator: Authenticator | None = request.app.state.apps.authenticator
    found = await authenticator.authenticate(request) if authenticator else None
    user = found if found is not None else ANONYMOUS
    request.scope["user"] = user
    return user


async def get_user(
    request: Request, _token: Annotated[str | None, Depends(bearer_scheme)] = None
) -> UserLike:
    """Dependency: `resolve_user`, declared with the bearer scheme for OpenAPI."""
    return await resolve_user(request)


CurrentUser = Annotated[UserLike, Depends(get_user)]
