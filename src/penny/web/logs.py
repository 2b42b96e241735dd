"""Structured access logs: one JSON line per FPS request.

:func:`log_request` emits one record on the ``penny.web.access`` logger (level INFO) whose
fields are also attached to the record (``record.fps``) for handlers that want them as data.
:class:`JsonFormatter` renders any record as one JSON object per line, with those fields at
the top level.

What is logged: the request id, the action, the caller's access key id as claimed in the
request (not yet verified when authentication fails), the HTTP status, the FPS error code (or
``null``), the duration in integer microseconds. Never a secret, a ``Signature``, card data or
any other parameter value: the request's parameters are not logged at all. The two values
taken from the request are cut to :data:`MAX_FIELD` characters.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Final

ACCESS_LOGGER: Final = "penny.web.access"
#: Longest action or access key id written to a log line (they come from the client).
MAX_FIELD: Final = 128

access_log = logging.getLogger(ACCESS_LOGGER)


@dataclass(frozen=True, slots=True)
class RequestLog:
    """The fields of one access log line."""

    request_id: str
    action: str | None
    access_key_id: str | None
    status: int
    error_code: str | None
    duration_us: int


def _cut(value: str | None) -> str | None:
    if value is None:
        return None
    return value if len(value) <= MAX_FIELD else value[:MAX_FIELD] + "…"


def log_request(entry: RequestLog) -> None:
    """Emit ``entry`` as one INFO record on :data:`ACCESS_LOGGER`."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    fields = asdict(entry)
    fields["action"] = _cut(entry.action)
    fields["access_key_id"] = _cut(entry.access_key_id)
    access_log.info("fps request", extra={"fps": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the
    ``fps`` fields of an access record, and the exception text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        data: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fps", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def configure_logging(level: int = logging.INFO) -> None:
    """Send the ``penny`` loggers to stderr as JSON lines (once per process)."""
    root = logging.getLogger("penny")
    root.setLevel(level)
    if any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
