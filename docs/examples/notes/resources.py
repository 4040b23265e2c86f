from __future__ import annotations

import crudkit

from .models import Note


@crudkit.register(Note)
class NoteResource(crudkit.Resource):
    owner_field = "owner_id"  # rows belong to their creator; others get 404
    search_fields = ["title", "body"]
    filter_fields = ["pinned"]
    ordering_fields = ["created_at", "title"]
