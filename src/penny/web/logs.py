"""Structured access logs: one JSON line per FPS request, and per page request (the hosted
pages and the account site, :func:`log_page`).

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
    """Emit ``entry`` as one INFO record on :data:`ACCESS_LOGGER`.

    When the record would reach exactly one handler, Penny's own :class:`BufferedStderrHandler`
    with a :class:`JsonFormatter` (what ``penny serve`` sets up), the line is written to it
    directly, the same line the formatter would make, without building a ``LogRecord`` and
    walking the logging machinery (about two thirds of the access log's cost, #14). Any other
    set-up (another handler, a filter, tests capturing records) takes the ordinary way.
    """
    if not access_log.isEnabledFor(logging.INFO):
        return
    action, key = _cut(entry.action), _cut(entry.access_key_id)
    handler = _only_json_handler()
    if handler is not None and handler.write_line(_access_line(entry, action, key, time.time_ns())):
        return
    fields = {
        "request_id": entry.request_id,
        "action": action,
        "access_key_id": key,
        "status": entry.status,
        "error_code": entry.error_code,
        "duration_us": entry.duration_us,
    }
    access_log.info(ACCESS_MESSAGE, extra={"fps": fields})


def log_page(request_id: str, method: str, route: str, status: int, duration_us: int) -> None:
    """A page request as an access line like an FPS request's: its action is the method and
    the route's pattern (``GET /account/buyer/tokens/{tid}``), never the path's own ids (a
    pipeline id is a session's capability), the query (a start request's signature), the form
    (passwords, card numbers, CSRF tokens) or a cookie."""
    log_request(RequestLog(request_id, f"{method} {route}", None, status, None, duration_us))


#: The message of every access record.
ACCESS_MESSAGE: Final = "fps request"


def _only_json_handler() -> BufferedStderrHandler | None:
    """The one handler an access record would reach, if it is a plain
    :class:`BufferedStderrHandler` with a :class:`JsonFormatter` and nothing filters on the
    way; otherwise ``None``."""
    found: BufferedStderrHandler | None = None
    logger: logging.Logger | None = access_log
    while logger is not None:
        if logger.filters:
            return None
        for handler in logger.handlers:
            if (
                found is not None
                or type(handler) is not BufferedStderrHandler
                or handler.filters
                or handler.level > logging.INFO
                or type(handler.formatter) is not JsonFormatter
            ):
                return None
            found = handler
        if not logger.propagate:
            break
        logger = logger.parent
    return found


def _json_text(value: str | None) -> str:
    """``value`` as a JSON string (or ``null``), as :func:`json.dumps` writes it here."""
    if value is None:
        return "null"
    if value.isascii() and value.isalnum():
        return f'"{value}"'  # nothing to escape: most ids, actions and codes
    return json.dumps(value, ensure_ascii=False)


def _access_line(entry: RequestLog, action: str | None, key: str | None, now_ns: int) -> str:
    """The line :class:`JsonFormatter` makes of an access record (its keys in its order)."""
    return (
        f'{{"time":"{_time_text(now_ns)}","level":"INFO","logger":"{ACCESS_LOGGER}",'
        f'"message":"{ACCESS_MESSAGE}","request_id":{_json_text(entry.request_id)},'
        f'"action":{_json_text(action)},"access_key_id":{_json_text(key)},'
        f'"status":{entry.status},"error_code":{_json_text(entry.error_code)},'
        f'"duration_us":{entry.duration_us}}}'
    )


_NS_PER_SECOND: Final = 1_000_000_000
_NS_PER_MS: Final = 1_000_000
_second_shown: list[tuple[int, str]] = [(-1, "")]


def _time_text(now_ns: int) -> str:
    """``2026-12-02T18:05:40.123Z`` for ``now_ns`` (the part up to the second made once a
    second), as :meth:`JsonFormatter._time` writes a record's time."""
    second = now_ns // _NS_PER_SECOND
    shown_second, prefix = _second_shown[0]
    if second != shown_second:
        prefix = to_datetime(from_seconds(second)).strftime("%Y-%m-%dT%H:%M:%S")
        _second_shown[0] = (second, prefix)
    return f"{prefix}.{now_ns // _NS_PER_MS % 1000:03d}Z"


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
        """Write the buffer out; nothing once the stream was closed (the flusher thread and
        the exit hook may still call it)."""
        self._dirty.clear()
        with self.lock:  # type: ignore[union-attr]
            if not getattr(self.stream, "closed", False):
                self.stream.flush()

    def write_line(self, line: str) -> bool:
        """Write one INFO line (already formatted) to the buffer; ``False`` if that failed
        (the caller then logs the ordinary way, which reports the failure)."""
        try:
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(line + self.terminator)
        except Exception:
            return False
        self._dirty.set()
        return True

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
