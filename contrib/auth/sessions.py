"""Ending every session of a user: logout, and a refresh token replayed.

    await end_sessions(request, user.id)               # POST /auth/logout
    await end_sessions(request, user.id, via="admin")  # the admin's logout

The user's `token_version` is raised and their refresh tokens are deleted, in one
transaction: every access token, refresh token and admin session issued before
stops working on every worker at once. The change goes through the write
pipeline, so it is recorded in the history like any other change of the user.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from starlette.requests import Request

from crudkit.contrib.auth.models import RefreshToken, User
from crudkit.db import table_of
from crudkit.events import Channel
from crudkit.writes import Caller, WritePipeline

users = table_of(User)
refresh_tokens = table_of(RefreshToken)


async def end_sessions(request: Request, user_id: int, *, via: Channel = "api") -> None:
    """Revoke every token and session of the user (a no-op for a user that is gone)."""
    pipeline = WritePipeline.of(request.app)
    async with pipeline.transaction() as writer:
        # Locked until the commit (PostgreSQL; SQLite writes one at a time anyway), so
        # two revocations at once each move the version on: no token outlives either.
        version = await writer.scalar(
            select(users.c.token_version).where(users.c.id == user_id).with_for_update()
        )
        if version is None:
            return
        await pipeline.update(
            User, user_id, {"token_version": version + 1}, Caller(request, via=via, check=False)
        )
        await writer.rows(delete(refresh_tokens).where(refresh_tokens.c.user_id == user_id))
