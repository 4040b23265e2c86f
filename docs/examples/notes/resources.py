from __future__ import annotations

from typing import Any

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
