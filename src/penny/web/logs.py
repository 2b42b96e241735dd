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

import atexit
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from penny.epoch import from_seconds, to_datetime

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
    fields = {
        "request_id": entry.request_id,
        "action": _cut(entry.action),
        "access_key_id": _cut(entry.access_key_id),
        "status": entry.status,
        "error_code": entry.error_code,
        "duration_us": entry.duration_us,
    }
    access_log.info("fps request", extra={"fps": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the
    ``fps`` fields of an access record, and the exception text when there is one."""

    _second = -1
    _prefix = ""

    def _time(self, record: logging.LogRecord) -> str:
        """``2026-12-02T18:05:40.123Z``; the part up to the second is made once a second."""
        second = int(record.created)
        if second != self._second:
            moment = to_datetime(from_seconds(second))
            self._prefix = moment.strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._prefix}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": self._time(record),
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
    handler = BufferedStderrHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)


#: Longest a log line waits in :class:`BufferedStderrHandler`'s buffer.
FLUSH_INTERVAL: Final = timedelta(milliseconds=100)


class BufferedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines to standard error through a 64 KiB buffer, written out at most
    :data:`FLUSH_INTERVAL` after a line arrives (a flusher thread), at once for warnings and
    worse, and at exit: one ``write`` per batch of lines instead of one per line (the access
    log writes a line per request, #14)."""

    def __init__(self) -> None:
        super().__init__(open(2, "w", buffering=65536, closefd=False, encoding="utf-8"))  # noqa: SIM115
        self._dirty = threading.Event()
        flusher = threading.Thread(target=self._flush_loop, name="penny-log-flush", daemon=True)
        flusher.start()
        atexit.register(self.flush)

    def flush(self) -> None:
        self._dirty.clear()
        super().flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(line + self.terminator)
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.flush()
        else:
            self._dirty.set()

    def _flush_loop(self) -> None:
        while True:
            self._dirty.wait()
            time.sleep(FLUSH_INTERVAL.total_seconds())
            self.flush()
