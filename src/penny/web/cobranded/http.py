"""Reading a Co-Branded UI request, and what a page answers (no database, no templates).

:class:`Settings` says how the pages see themselves: whether unsigned start requests are
accepted and Penny's public URL (the base of the signed return, and TLS behind a proxy).
:func:`read_incoming` takes what the pages need of an HTTP request on the event loop: the query
string, a form body of at most :data:`MAX_FORM_BYTES` (``application/x-www-form-urlencoded``
only), the session cookie. Anything unreadable raises :class:`BadRequestError`, which the pages
show as a plain error page. :func:`decode_query` refuses invalid UTF-8, NUL characters and a
parameter given twice (a signature cannot say which of two values it covered).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.requests import Request

from penny.api.auth import live_from_env
from penny.web.cobranded import security

MAX_FORM_BYTES: Final = 16 * 1024
MAX_QUERY_BYTES: Final = 16 * 1024
PREFIX: Final = "/cobranded-ui"
START_PATH: Final = f"{PREFIX}/actions/start"
ALLOW_UNSIGNED_ENV: Final = "PENNY_CBUI_ALLOW_UNSIGNED"
PUBLIC_URL_ENV: Final = "PENNY_PUBLIC_URL"


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a page needs of an HTTP request, read on the event loop."""

    method: str
    path: str
    host: str
    server_port: int | None
    base_url: str
    secure: bool
    client: str
    cookie: str | None
    query: bytes
    form: dict[str, str] | None
    path_params: dict[str, str]


@dataclass
class Page:
    """An answer: a rendered template or a redirect, with the cookie to set."""

    status: int = 200
    template: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    location: str | None = None
    set_cookie: str | None = None
    form_targets: tuple[str, ...] = ()
    #: Whether the request came over TLS (the cookie is then ``Secure``).
    secure: bool = False


def to_step(pid: str, step: str) -> Page:
    """A redirect to ``step`` (``signin``, ``method``, ``review``…) of pipeline ``pid``."""
    return Page(location=f"{PREFIX}/pipelines/{pid}/{step}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Read from the environment when the application is built (docs/cobranded-ui.md)."""

    allow_unsigned: bool = False
    public_url: str | None = None
    #: A sandbox server (not ``PENNY_MODE=production``): the pages wear a "Sandbox" badge.
    sandbox: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        allow = env.get(ALLOW_UNSIGNED_ENV, "").strip().lower() in {"1", "true", "yes"}
        return cls(allow, env.get(PUBLIC_URL_ENV) or None, not live_from_env(env))

    def base_url(self, incoming: Incoming) -> str:
        """Penny's base URL: the public one when set, else the one the request came to."""
        return self.public_url or incoming.base_url

    def secure(self, incoming: Incoming) -> bool:
        """TLS as seen by Penny, or a public URL that says https (a TLS-terminating proxy)."""
        public = self.public_url or ""
        return incoming.secure or public.startswith("https://")


class BadRequestError(Exception):
    """A request this UI refuses before looking at it further (shown as a plain error page)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


_UNREADABLE_REQUEST: Final = "This payment request cannot be read"


def decode_query(raw: bytes) -> dict[str, str]:
    if len(raw) > MAX_QUERY_BYTES:
        raise BadRequestError(414, "This payment request is too long", "The request is too long.")
    params: dict[str, str] = {}
    for name, value in _pairs(raw, "strict", _UNREADABLE_REQUEST, "request"):
        if name in params or "\x00" in name or "\x00" in value:
            raise BadRequestError(
                400,
                _UNREADABLE_REQUEST,
                "The request repeats a parameter or holds a control character.",
            )
        params[name] = value
    return params


def _pairs(raw: bytes, errors: str, title: str, what: str) -> list[tuple[str, str]]:
    """URL-encoded ``raw`` as name/value pairs (blank values kept; ``errors`` is how a
    %-escape that is not UTF-8 decodes), or a 400 titled ``title`` when it is not UTF-8."""
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors=errors)
    except (UnicodeDecodeError, ValueError):
        raise BadRequestError(400, title, f"The {what} is not valid UTF-8.") from None


async def read_incoming(request: Request) -> Incoming:
    form: dict[str, str] | None = None
    if request.method == "POST":
        form = await _read_form(request)
    server = request.scope.get("server")
    client = request.client.host if request.client else ""
    return Incoming(
        method=request.method,
        path=request.url.path,
        host=request.headers.get("host", ""),
        server_port=server[1] if server and len(server) > 1 else None,
        base_url=str(request.base_url).rstrip("/"),
        secure=request.url.scheme == "https",
        client=client,
        cookie=request.cookies.get(security.COOKIE_NAME),
        query=request.scope.get("query_string", b""),
        form=form,
        path_params={k: str(v) for k, v in request.path_params.items()},
    )


_UNREADABLE: Final = "This form cannot be read"


async def _read_form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type and request.headers.get("content-length", "0") == "0":
        return {}  # an empty form (a button and nothing else, sent without a body)
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequestError(415, _UNREADABLE, "The form was not sent as a web form.")
    declared = request.headers.get("content-length", "")
    too_large = BadRequestError(413, "This form is too large", "The form is too large.")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise too_large
        chunks.append(chunk)
    form: dict[str, str] = {}
    for name, value in _pairs(b"".join(chunks), "replace", _UNREADABLE, "form"):
        if "\x00" in name or "\x00" in value:
            raise BadRequestError(400, _UNREADABLE, "The form holds a NUL character.")
        form.setdefault(name, value)
    return form
