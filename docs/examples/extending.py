"""A blog's posts: the extension points the example shop does not use.

The model's `@validates`, a `@crudkit.computed` field, the `before_*`/`after_*` hooks
with `crudkit.on_commit` and `current_caller`, and `Resource.dependencies`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, validates
from starlette.requests import Request

import crudkit
from crudkit.writes import current_caller

SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")

outbox: list[str] = []
"""Stands in for a mail queue: what `send_mail` sent."""


def send_mail(message: str) -> None:
    outbox.append(message)


class Post(crudkit.Model):
    __tablename__ = "extending_post"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    body: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("auth_user.id"))

    @validates("slug")
    def check_slug(self, key: str, value: str) -> str:
        slug = value.strip().lower()
        if not SLUG.fullmatch(slug):
            raise ValueError("Use letters, digits and single hyphens.")
        return slug


async def require_client(x_client: Annotated[str | None, Header()] = None) -> None:
    """API clients name themselves; the admin and scripts do not pass through here."""
    if not x_client:
        raise HTTPException(400, "Send an X-Client header naming your application.")


@crudkit.register(Post)
class PostResource(crudkit.Resource):
    owner_field = "owner_id"
    public_read = True
    search_fields = ["title"]
    dependencies = [Depends(require_client)]

    @crudkit.computed
    def reading_minutes(self, row: Any) -> int:
        return max(1, len(row.body.split()) // 200)

    async def before_create(self, request: Request, values: dict[str, Any]) -> dict[str, Any]:
        values["title"] = values["title"].strip()
        return values

    async def after_create(self, request: Request, obj: Any) -> None:
        caller = current_caller()
        if caller is not None and not caller.check:
            return  # a trusted import (check=False) of old posts: no mail
        # Sent once the post is committed; never if the write is rolled back.
        crudkit.on_commit(lambda: send_mail(f"New post: {obj.title}"))
