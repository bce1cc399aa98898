"""Correlation ids on every log line: the request id and the handoff id.

The web edge binds the request id (X-Request-ID) per request; whoever loads a handoff's
outbox event binds its handoff id. Celery tasks carry both in their message headers
(workers/tracing.py), so a line logged by the worker or beat names the request and handoff
it serves. `configure_logging` installs a filter that puts them on every record, and a JSON
formatter when LOG_FORMAT=json.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
HANDOFF_ID: ContextVar[int | None] = ContextVar("handoff_id", default=None)
# Names of the Celery message headers that carry them.
REQUEST_ID_HEADER = "escalation_request_id"
HANDOFF_ID_HEADER = "escalation_handoff_id"


def bind_handoff(handoff_id: int | None) -> None:
    """From here on in this task or request, log lines name this handoff."""
    HANDOFF_ID.set(int(handoff_id) if handoff_id is not None else None)


def current_ids() -> dict[str, str | int | None]:
    return {"request_id": REQUEST_ID.get(), "handoff_id": HANDOFF_ID.get()}


class ContextFilter(logging.Filter):
    """Adds `request_id` and `handoff_id` (or "-") to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        handoff_id = HANDOFF_ID.get()
        record.handoff_id = handoff_id if handoff_id is not None else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids, and any traceback."""

    def __init__(self, process_type: str = "web") -> None:
        super().__init__()
        self.process_type = process_type

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": self.process_type,
            "pid": record.process,
        }
        for key in ("request_id", "handoff_id"):
            value = getattr(record, key, "-")
            if value not in (None, "-"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [request=%(request_id)s handoff=%(handoff_id)s] %(message)s"
)


def configure_logging(log_format: str, process_type: str, level: int = logging.INFO) -> None:
    """Root handler on stderr with the ids on every line; JSON when `log_format` is "json".

    Idempotent: the handler it installed is replaced, others (Celery's, pytest's) get the
    filter so they can print the ids too."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_escalation", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._escalation = True  # type: ignore[attr-defined]
    if log_format == "json":
        handler.setFormatter(JsonFormatter(process_type))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for other in root.handlers:
        if not any(isinstance(f, ContextFilter) for f in other.filters):
            other.addFilter(ContextFilter())
