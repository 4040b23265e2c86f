"""Logging: one structured line per event, with the request id bound in.

JSON lines in production (one object per line, for log shippers); a readable
line in `debug`. The request id of the request being served is added to every
record, whoever logs it.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

request_id_var: ContextVar[str | None] = ContextVar("crudkit_request_id", default=None)

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which worker, when several serve one app
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return to_json(entry, fallback=str).decode()


def configure_logging(debug: bool) -> None:
    """Install crudkit's handler on the `crudkit` logger (idempotent)."""
    logger = logging.getLogger("crudkit")
    for handler in list(logger.handlers):
        if getattr(handler, "_crudkit", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._crudkit = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    if debug:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    else:
        handler.setFormatter(JSONFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
