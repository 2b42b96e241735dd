"""The HTTP edge of the FPS endpoint: a bare ASGI callable for ``/``.

:class:`FpsFront` reads one request straight from the ASGI scope (the body size-limited),
hands it to :meth:`FpsEndpoint.answer_async`, answers with the XML body, then counts, times
and logs it (:mod:`penny.web.metrics`, :mod:`penny.web.logs`). :class:`PennyApp` is the
application: requests to ``/`` with a method the FPS route takes go to the front directly, past
Starlette's middleware and router (about a fifth of a Pay's CPU went there, #14); everything
else — the other routes, unknown paths and methods, the lifespan — is Starlette's. The same
front is also the Starlette route for ``/``, so both ways answer alike. A browser's ``GET /``
(no ``Action``, ``Accept: text/html``) gets the landing page instead
(:mod:`penny.web.console.landing`); an FPS request pays one cheap test for it. ``/v1/…`` goes to the
JSON API's own bare front (:class:`penny.web.api.ApiFront`) the same way.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Final, Generic, NoReturn, Protocol, TypeVar

from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, ExceptionHandler, Lifespan, Receive, Scope, Send

from penny.fps.decode import MAX_REQUEST_BYTES
from penny.fps.wire import (
    HTTP_BAD_REQUEST,
    INVALID_REQUEST,
    WireFault,
    new_request_id,
    render_error,
)
from penny.web.console.landing import wants_landing
from penny.web.endpoint import INTERNAL_ERROR, Answer, FpsEndpoint, FpsRequest
from penny.web.logs import RequestLog, log_request
from penny.web.metrics import SUCCESS, AppMetrics

#: FPS answered with XML bodies; ``text/xml`` is what its responses carried.
XML_CONTENT_TYPE: Final = "text/xml; charset=utf-8"
#: HTTP status of a body over :data:`MAX_REQUEST_BYTES`.
HTTP_TOO_LARGE: Final = 413
#: The methods the FPS route takes (HEAD with GET); the FPS layer refuses all but GET and POST
#: with its own error, Starlette any other method with 405.
FPS_METHODS: Final = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
_ROUTED: Final = frozenset((*FPS_METHODS, "HEAD"))
#: Paths the JSON API answers (all of them, its 404s and 405s included).
API_PREFIX: Final = "/v1/"

_XML_HEADER: Final = (b"content-type", XML_CONTENT_TYPE.encode("latin-1"))
_TOO_LARGE: Final = WireFault(
    INVALID_REQUEST, f"The request body is larger than {MAX_REQUEST_BYTES} bytes.", HTTP_TOO_LARGE
)
# Gone before its body arrived (or cut off by penny.web.slowclients): nobody to answer.
_DISCONNECTED: Final = WireFault(INVALID_REQUEST, "The client disconnected.", HTTP_BAD_REQUEST)


class Answered(Protocol):
    """What logs and metrics read of an answer (the FPS door's and the JSON API's)."""

    @property
    def status(self) -> int: ...
    @property
    def action(self) -> str | None: ...
    @property
    def access_key_id(self) -> str | None: ...
    @property
    def error_code(self) -> str | None: ...


class Sent(Answered, Protocol):
    """An answer as a bare front sends it."""

    @property
    def body(self) -> bytes: ...


A = TypeVar("A", bound=Sent)


class BareFront(ABC, Generic[A]):
    """What the two bare fronts (``/``'s :class:`FpsFront`, ``/v1/…``'s
    :class:`~penny.web.api.ApiFront`) do around an answer: time the request and give it an id,
    have :meth:`_answer` answer it, count and log the answer (:func:`account_for`) and send it
    with the front's :meth:`_headers`. A failure of :meth:`_answer` that is one of ``handles``
    goes to :meth:`_on_failure` (an answer, or it raises); any other propagates."""

    metrics: AppMetrics
    handles: type[BaseException]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter_ns()
        request_id = new_request_id()
        try:
            answer = await self._answer(scope, receive, request_id)
        except self.handles as error:
            answer = self._on_failure(error, started, request_id)
        account_for(self.metrics, started, request_id, answer)
        headers = self._headers(answer, request_id)
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    @abstractmethod
    async def _answer(self, scope: Scope, receive: Receive, request_id: str) -> A:
        """The answer to one request."""

    @abstractmethod
    def _on_failure(self, error: BaseException, started: int, request_id: str) -> A:
        """The answer when :meth:`_answer` failed with ``error`` (or raise)."""

    @abstractmethod
    def _headers(self, answer: A, request_id: str) -> list[tuple[bytes, bytes]]:
        """The response headers of ``answer``."""


class FpsFront(BareFront[Answer]):
    """``/`` as a bare ASGI application over an :class:`FpsEndpoint`."""

    #: A failure is counted (an internal error) and propagates: the server answers it.
    handles = BaseException

    def __init__(self, endpoint: FpsEndpoint, metrics: AppMetrics) -> None:
        self.endpoint = endpoint
        self.metrics = metrics

    def _on_failure(self, error: BaseException, started: int, request_id: str) -> NoReturn:
        self.metrics.observe(None, INTERNAL_ERROR.code, started)
        raise error

    def _headers(self, answer: Answer, request_id: str) -> list[tuple[bytes, bytes]]:
        return [(b"content-length", b"%d" % len(answer.body)), _XML_HEADER]

    async def _answer(self, scope: Scope, receive: Receive, request_id: str) -> Answer:
        host, content_type, length = "", None, ""
        for name, value in scope["headers"]:
            if name == b"host" and not host:
                host = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif name == b"content-length" and not length:
                length = value.decode("latin-1")
        body = await read_body(receive, length)
        if isinstance(body, WireFault):
            content = render_error(body.code, body.message, request_id)
            return Answer(body.http_status, content, None, None, body.code)
        server = scope.get("server")
        request = FpsRequest(
            method=scope["method"],
            host=host,
            path=scope.get("path", "/"),
            query_string=scope.get("query_string", b""),
            body=body,
            content_type=content_type,
            server_port=server[1] if server and len(server) > 1 else None,
        )
        return await self.endpoint.answer_async(request, request_id)


def account_for(metrics: AppMetrics, started: int, request_id: str, answer: Answered) -> None:
    """Count, time and log one answered request (``started``: :func:`time.perf_counter_ns`)."""
    metrics.observe(answer.action, answer.error_code or SUCCESS, started)
    log_request(
        RequestLog(
            request_id=request_id,
            action=answer.action,
            access_key_id=answer.access_key_id,
            status=answer.status,
            error_code=answer.error_code,
            duration_us=(time.perf_counter_ns() - started) // 1000,
        )
    )


async def read_body(receive: Receive, declared_length: str) -> bytes | WireFault:
    """The body, refused (without reading on) once it passes :data:`MAX_REQUEST_BYTES`."""
    if declared_length.isdigit() and int(declared_length) > MAX_REQUEST_BYTES:
        return _TOO_LARGE
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _DISCONNECTED
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return _TOO_LARGE
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class PennyApp(Starlette):
    """Starlette, with ``/`` answered by :class:`FpsFront` before any middleware or routing."""

    def __init__(
        self,
        front: FpsFront,
        *,
        routes: Sequence[BaseRoute],
        lifespan: Lifespan[Starlette],
        exception_handlers: Mapping[Any, ExceptionHandler],
        landing: ASGIApp | None = None,
        api: ASGIApp | None = None,
    ) -> None:
        super().__init__(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers)
        self.front = front
        self.landing = landing
        #: The JSON API, answering every ``/v1/…`` path itself (penny.web.api).
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/" and scope["method"] in _ROUTED:
                # A browser's GET (no Action, Accept: text/html) gets the landing page (#16).
                if scope["method"] == "GET" and self.landing is not None and wants_landing(scope):
                    await self.landing(scope, receive, send)
                    return
                await self.front(scope, receive, send)
                return
            if self.api is not None and path.startswith(API_PREFIX):
                await self.api(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
