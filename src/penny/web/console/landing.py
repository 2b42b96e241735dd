"""The landing page: what a browser gets at ``GET /``.

FPS clients send ``Action`` on every request (and boto never asks for HTML), so
:func:`wants_landing` is true only for a GET without ``Action`` in its query string whose
``Accept`` header names ``text/html``; :class:`PennyApp` asks it only for GETs to ``/``, so an
FPS POST pays one string comparison and an FPS GET one substring test more than before.
:class:`Landing` renders the page once, at start, and answers it with the hosted pages'
security headers; it reads nothing per request, and logs it as a page (``GET /``).
"""

from __future__ import annotations

import time
from typing import Final

from starlette.types import Receive, Scope, Send

from penny import __version__
from penny.fps.wire import new_request_id
from penny.web.cobranded import security
from penny.web.logs import log_page
from penny.web.templating import page_templates

_HTML: Final = b"text/html"


def wants_landing(scope: Scope) -> bool:
    """Whether a GET to ``/`` is a browser's (no ``Action``, ``Accept: text/html``)."""
    if b"Action=" in scope.get("query_string", b""):
        return False
    for name, value in scope["headers"]:
        if name == b"accept":
            return _HTML in value
    return False


class Landing:
    """``GET /`` for browsers, as a bare ASGI application."""

    def __init__(self) -> None:
        templates = page_templates("penny.web.console")
        self.body = templates.get_template("landing.html").render(version=__version__).encode()
        headers = security.security_headers()
        self.headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", b"%d" % len(self.body)),
            *(
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in headers.items()
            ),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter_ns()
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})
        took = (time.perf_counter_ns() - started) // 1000
        log_page(new_request_id(), "GET", "/", 200, took)
