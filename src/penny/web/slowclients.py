"""A deadline for reading each request, against slowloris-style slow clients.

uvicorn has a keep-alive timeout for idle connections but no limit on how long a client may
take to send a request: one that dribbles its headers (or its body) a byte at a time holds a
connection — and, many times over, the server — for as long as it likes.
:class:`GuardedHttpToolsProtocol` is uvicorn's httptools protocol with one addition: from the
moment a connection opens, or a response ends on a kept-alive connection, the client has
``request_timeout`` seconds to send a complete request (headers and body). If it has not, the
server answers ``408 Request Timeout`` (when the headers were not complete yet) and closes the
connection. ``penny serve --request-timeout`` sets the deadline (default
:data:`DEFAULT_REQUEST_TIMEOUT_S`) through ``$PENNY_REQUEST_TIMEOUT``, which every worker
process reads.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_REQUEST_TIMEOUT_S: Final = 10
REQUEST_TIMEOUT_ENV: Final = "PENNY_REQUEST_TIMEOUT"

REQUEST_TIMEOUT_RESPONSE: Final = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 38\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"The request took too long to arrive.\r\n"
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for receiving each request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Seconds a client has to send one complete request.
        self.request_timeout = request_timeout_from_env()
        self._deadline: asyncio.TimerHandle | None = None
        self._headers_done = False

    def _arm(self) -> None:
        self._disarm()
        self._headers_done = False
        self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if not self._headers_done:
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._headers_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()


def request_timeout_from_env() -> int:
    """``$PENNY_REQUEST_TIMEOUT`` (whole seconds, > 0), else :data:`DEFAULT_REQUEST_TIMEOUT_S`."""
    text = os.environ.get(REQUEST_TIMEOUT_ENV, "")
    if not text.isdigit() or int(text) == 0:
        return DEFAULT_REQUEST_TIMEOUT_S
    return int(text)
