"""The history is served read-only in the admin, never through the API.

Its permissions are Django's: `admin.view_logentry` shows the whole history;
anyone who may see a row sees that row's own history from its details page.
"""

from __future__ import annotations

import crudkit
from crudkit.contrib.admin.models import LogEntry


@crudkit.register(LogEntry)
class LogEntryResource(crudkit.Resource):
    api = False
    verbose_name = "history entry"
    search_fields = ["object_repr", "username"]
    filter_fields = ["app_label", "model", "object_id", "user_id", "action", "channel"]
    ordering_fields = ["action_time"]
    default_ordering = ["-action_time"]
