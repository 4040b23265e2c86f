"""Staff login for the admin: sqladmin's `AuthenticationBackend` over crudkit's users.

Only active staff and superusers get in. The session is a signed cookie
(Starlette's `SessionMiddleware`: HttpOnly, SameSite=Lax, Secure when
`https_only`, scoped to `admin_path`) holding the user's id and their
`token_version`. Every admin request reloads the user and compares the two,
so whatever bumps `token_version` ends admin sessions on the server side, not
only in the browser: logging out (here or through the API), a password change,
a deactivation. Logging out of the admin bumps it too, which ends the user's
API tokens as `POST /auth/logout` does: a stolen copy of the cookie is worth
nothing once its owner has logged out.

Logins share the API's throttle (per username and client, each attempt counted
before the password is checked) and its password hasher (a bounded number of
hashes at once per worker). Logging out goes through the write pipeline, so it
is recorded in the history as the API's logout is.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from sqladmin.authentication import AuthenticationBackend
from sqlalchemy import update
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crudkit.conf import Settings
from crudkit.contrib.admin.csrf import CSRFMiddleware
from crudkit.contrib.auth.deps import AuthServices
from crudkit.contrib.auth.models import User
from crudkit.contrib.auth.sessions import end_sessions
from crudkit.contrib.auth.users import AuthUser, load_user
from crudkit.db import Database, table_of
from crudkit.exceptions import ServiceUnavailable, Throttled

USER_KEY = "user_id"
VERSION_KEY = "token_version"
SESSION_COOKIE = "crudkit_admin"
SESSION_MAX_AGE = 14 * 24 * 3600
"""Two weeks, as Django's `SESSION_COOKIE_AGE`."""

REFUSED = "Please enter the correct username and password for a staff account."

users = table_of(User)


class LoginRefused(Exception):
    """A login the admin turns down, shown on the login page."""

    def __init__(
        self, message: str, status_code: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.headers = headers or {}


def may_enter(user: AuthUser) -> bool:
    """Who may use the admin at all: active staff and superusers."""
    return user.is_active and (user.is_staff or user.is_superuser)


def session_key(secret_key: str) -> str:
    """A key of its own for admin sessions, derived from `secret_key`.

    Sessions and tokens are signed with different keys, so a value signed for
    one can never pass as the other.
    """
    return hmac.new(
        secret_key.encode(), b"crudkit.contrib.admin.session", hashlib.sha256
    ).hexdigest()


class StaffAuthentication(AuthenticationBackend):
    """Logs staff in and out of the admin, and checks the session on every request."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        super().__init__(
            secret_key=session_key(settings.secret_key),
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_MAX_AGE,
            path=settings.admin_path,
            same_site="lax",
            https_only=settings.https_only,
        )
        # CSRF checks need the session: they run right after it is loaded.
        self.middlewares.append(Middleware(CSRFMiddleware))
        self.app = app

    @property
    def db(self) -> Database:
        db: Database = self.app.state.db
        return db

    @property
    def services(self) -> AuthServices:
        services: AuthServices = self.app.state.auth
        return services

    async def login(self, request: Request) -> Response | bool:
        form = await request.form()
        username = str(form.get("username") or "")
        password = str(form.get("password") or "")
        client = request.client.host if request.client else "unknown"  # as the API counts it
        services = self.services
        try:
            # Counted before the password is looked at, as the API's login does.
            await services.throttle.reserve(username, client)
            user = None
            if username and "\x00" not in username:  # no username has NUL; PostgreSQL refuses it
                async with self.db.read() as conn:
                    user = await load_user(conn, username=username)
            if user is None:
                await services.hasher.verify_dummy(password)
                ok, new_hash = False, None
            else:
                ok, new_hash = await services.hasher.verify(password, user.hashed_password)
        except Throttled as exc:
            raise LoginRefused(
                f"Too many failed attempts; try again in {exc.retry_after} seconds.",
                429,
                exc.headers,
            ) from None
        except ServiceUnavailable as exc:
            raise LoginRefused(
                "The server is busy; please try again in a moment.", 503, exc.headers
            ) from None
        if user is None or not ok or not may_enter(user):
            raise LoginRefused(REFUSED)
        await services.throttle.succeeded(username, client)
        # Bookkeeping, not an edit: no history row (as the API's login).
        values: dict[str, Any] = {"last_login": datetime.now(UTC)}
        if new_hash:  # an outdated scheme (bcrypt): upgrade to argon2id now
            values["hashed_password"] = new_hash
        async with self.db.transaction() as conn:
            await conn.execute(update(users).where(users.c.id == user.id).values(values))
        # A fresh session: nothing from before the login (a planted CSRF token) survives.
        request.session.clear()
        request.session.update({USER_KEY: user.id, VERSION_KEY: user.token_version})
        return True

    async def logout(self, request: Request) -> Response | bool:
        user = await self._session_user(request)
        if user is not None:
            request.scope["user"] = user  # who the history names
            await end_sessions(request, user.id, via="admin")
        request.session.clear()
        return RedirectResponse(request.url_for("admin:login"), status_code=302)

    async def authenticate(self, request: Request) -> Response | bool:
        user = await self._session_user(request)
        if user is None:
            request.session.pop(USER_KEY, None)
            request.session.pop(VERSION_KEY, None)
            return False
        # Where permission objects look for the caller, as in the API.
        request.scope["user"] = user
        return True

    async def _session_user(self, request: Request) -> AuthUser | None:
        """The session's user, if the session is still valid for them."""
        user_id = request.session.get(USER_KEY)
        version = request.session.get(VERSION_KEY)
        if not isinstance(user_id, int) or not isinstance(version, int):
            return None
        async with self.db.read() as conn:
            user = await load_user(conn, user_id=user_id)
        if user is None or user.token_version != version or not may_enter(user):
            return None
        return user
