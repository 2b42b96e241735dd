"""The access log's direct line (penny.web.logs, #14) is the line JsonFormatter makes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penny.web import logs
from penny.web.logs import (
    ACCESS_LOGGER,
    ACCESS_MESSAGE,
    BufferedStderrHandler,
    JsonFormatter,
    RequestLog,
    log_request,
)

NS = 1_000_000_000

texts = st.none() | st.text(max_size=40)
entries = st.builds(
    RequestLog,
    request_id=st.uuids().map(str),
    action=texts,
    access_key_id=texts,
    status=st.sampled_from([200, 400, 403, 404, 413, 503]),
    error_code=st.none() | st.sampled_from(["InvalidParams", "SignatureDoesNotMatch"]),
    duration_us=st.integers(min_value=0, max_value=10**9),
)


def _record(entry: RequestLog, now_ns: int) -> logging.LogRecord:
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, ACCESS_MESSAGE, (), None)
    record.created = now_ns // NS + (now_ns // 1_000_000 % 1000) / 1000 + 0.0001
    record.msecs = now_ns // 1_000_000 % 1000
    record.fps = {
        "request_id": entry.request_id,
        "action": entry.action,
        "access_key_id": entry.access_key_id,
        "status": entry.status,
        "error_code": entry.error_code,
        "duration_us": entry.duration_us,
    }
    return record


@given(entry=entries, now_ns=st.integers(min_value=0, max_value=4_000_000_000 * NS))
def test_the_direct_line_is_the_formatters_line(entry: RequestLog, now_ns: int) -> None:
    direct = logs._access_line(entry, entry.action, entry.access_key_id, now_ns)
    assert direct == JsonFormatter().format(_record(entry, now_ns))
    assert json.loads(direct)["request_id"] == entry.request_id


PennyHandler = Callable[[], tuple[BufferedStderrHandler, io.StringIO]]


@pytest.fixture
def penny_handler() -> Iterator[PennyHandler]:
    """Penny's own handler on the ``penny`` logger, writing to a string; records stop there.
    pytest adds its capture handlers to that logger for each test phase: the test calls the
    fixture's value, which removes them and gives the handler and its string."""
    penny = logging.getLogger("penny")
    saved = (list(penny.handlers), penny.level, penny.propagate)
    handler = BufferedStderrHandler()
    handler.setFormatter(JsonFormatter())
    buffer = io.StringIO()
    handler.setStream(buffer)
    penny.handlers, penny.propagate = [handler], False
    penny.setLevel(logging.INFO)

    def alone() -> tuple[BufferedStderrHandler, io.StringIO]:
        penny.handlers = [handler]
        return handler, buffer

    try:
        yield alone
    finally:
        penny.handlers, penny.propagate = saved[0], saved[2]
        penny.setLevel(saved[1])


ENTRY = RequestLog("6f1d8a52-1c4e-4b7a-9a55-0e6c2f1b2a11", "Pay", "PNYKEY", 200, None, 1234)


def test_served_set_up_writes_the_line_directly(penny_handler: PennyHandler) -> None:
    handler, buffer = penny_handler()
    emitted: list[logging.LogRecord] = []
    handler.emit = emitted.append  # type: ignore[method-assign,assignment]
    log_request(ENTRY)
    assert emitted == []  # no LogRecord was made
    data = json.loads(buffer.getvalue())
    assert (data["logger"], data["message"]) == (ACCESS_LOGGER, ACCESS_MESSAGE)
    assert (data["action"], data["status"], data["duration_us"]) == ("Pay", 200, 1234)


def test_any_other_handler_or_filter_takes_the_ordinary_way(penny_handler: PennyHandler) -> None:
    _, buffer = penny_handler()
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    penny = logging.getLogger("penny")
    penny.propagate = True
    logging.root.addHandler(collect := Collect())
    try:
        log_request(ENTRY)
    finally:
        logging.root.removeHandler(collect)
        penny.propagate = False
    assert [record.getMessage() for record in seen] == [ACCESS_MESSAGE]
    assert json.loads(buffer.getvalue())["request_id"] == ENTRY.request_id  # both got it
    access = logging.getLogger(ACCESS_LOGGER)
    access.addFilter(lambda record: False)
    try:
        log_request(ENTRY)
    finally:
        access.filters.clear()
    assert buffer.getvalue().count("\n") == 1  # the filter dropped the second line


def test_flushing_after_the_stream_closed_is_harmless() -> None:
    handler = BufferedStderrHandler()
    stream = io.StringIO()
    handler.setStream(stream)
    with handler.lock:  # type: ignore[union-attr]
        stream.close()
    handler.flush()  # the flusher thread and the exit hook may still call it
    assert handler.write_line("late") is False
