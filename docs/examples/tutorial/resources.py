from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from starlette.requests import Request

import crudkit

from .models import Note


@crudkit.register(Note)
class NoteResource(crudkit.Resource):
    owner_field = "owner_id"  # rows belong to their creator; others get 404
    search_fields = ["title", "body"]
    filter_fields = ["pinned"]
    ordering_fields = ["created_at", "title"]

    async def validate(
        self, request: Request, values: dict[str, Any], obj: Any = None
    ) -> dict[str, Any]:
        # Runs on every write: the API, the admin, and crudkit.create/update.
        title = values.get("title", obj.title if obj is not None else "")
        if not title.strip():
            raise crudkit.ValidationError({"title": "A note needs a title."})
        return values

    @crudkit.action(detail=True, methods=["POST"], permission="change", admin=True)
    async def pin(self, request: Request, obj: Row[Any]) -> Note:
        """Pin the note: POST /api/v1/notes/{id}/pin, or "Pin" in the admin."""
        # Through the write pipeline, as a PATCH would: validate() and the history run.
        return await crudkit.update(Note, obj.id, {"pinned": True}, request=request)  # type: ignore[return-value]
