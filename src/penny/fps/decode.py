"""The decode stage: an FPS request's parameters from its query string or form body.

Requests arrive either as ``GET /?Action=…`` (boto, Ruby and Python clients) or as
``POST /`` with an ``application/x-www-form-urlencoded`` body (Amazon's Java, PHP and C#
libraries) (spec ``fps-api.md`` §1, ``clients.md`` §3.2). :func:`parse_request` turns either
into one flat ``dict[str, str]``, or a :class:`~penny.fps.wire.WireFault` that renders as an
FPS error. The limits and refusals are recorded in ``docs/fps-wire.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final
from urllib.parse import unquote_to_bytes

from penny.fps.wire import HTTP_METHOD_NOT_ALLOWED, INVALID_REQUEST, WireFault

#: Largest query string or form body accepted, in bytes as received (encoded).
MAX_REQUEST_BYTES: Final = 64 * 1024
#: Most parameters in one request (no FPS action takes more than a few dozen).
MAX_PARAMETERS: Final = 200
#: Longest parameter name, in UTF-8 bytes after decoding.
MAX_NAME_BYTES: Final = 128
#: Longest parameter value, in UTF-8 bytes after decoding.
MAX_VALUE_BYTES: Final = 8 * 1024

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"

_BAD_PERCENT: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _too_large(what: str, size: int) -> WireFault:
    return WireFault(
        INVALID_REQUEST, f"The {what} is {size} bytes; at most {MAX_REQUEST_BYTES} are accepted."
    )


def _shown(raw: bytes) -> str:
    """``raw`` for a message: ASCII, at most 100 characters."""
    text = raw.decode("ascii", "backslashreplace")
    return text if len(text) <= 100 else text[:100] + "…"


def _decode(raw: bytes, what: str) -> str | WireFault:
    """Percent-decode one name or value (``+`` is a space) and decode it as strict UTF-8."""
    if b"%" not in raw and b"+" not in raw:
        try:
            return raw.decode("utf-8")  # nothing escaped: most names and values
        except UnicodeDecodeError:
            return WireFault(INVALID_REQUEST, f"The {what} ({_shown(raw)}) is not valid UTF-8.")
    if _BAD_PERCENT.search(raw):
        return WireFault(INVALID_REQUEST, f"The {what} ({_shown(raw)}) has a malformed %-escape.")
    octets = unquote_to_bytes(raw.replace(b"+", b" "))
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError:
        return WireFault(INVALID_REQUEST, f"The {what} ({_shown(raw)}) is not valid UTF-8.")


def _segments(raw: bytes) -> Iterator[bytes]:
    return (segment for segment in raw.split(b"&") if segment)


def _decode_pair(segment: bytes) -> tuple[str, str] | WireFault:
    raw_name, _, raw_value = segment.partition(b"=")
    name = _decode(raw_name, "parameter name")
    if isinstance(name, WireFault):
        return name
    if not name:
        return WireFault(INVALID_REQUEST, "A parameter has an empty name.")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return WireFault(
            INVALID_REQUEST, f"A parameter name is longer than {MAX_NAME_BYTES} bytes."
        )
    value = _decode(raw_value, f"value of parameter {name}")
    if isinstance(value, WireFault):
        return value
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        return WireFault(
            INVALID_REQUEST,
            f"The value of parameter {name} is longer than {MAX_VALUE_BYTES} bytes.",
        )
    return name, value


def parse_urlencoded(raw: bytes, what: str = "query string") -> dict[str, str] | WireFault:
    """Parse ``name=value&…`` (a query string or a form body) into a dict.

    ``+`` and ``%20`` both decode to a space; a segment without ``=`` is a parameter with an
    empty value; empty segments (``a=1&&b=2``, a trailing ``&``) are ignored. Refused with
    ``InvalidRequest``: more than :data:`MAX_REQUEST_BYTES`, more than :data:`MAX_PARAMETERS`
    parameters, an over-long name or value, a malformed ``%``-escape, bytes that are not UTF-8,
    an empty name, and a name given twice (FPS parameters are single-valued).
    """
    if len(raw) > MAX_REQUEST_BYTES:
        return _too_large(what, len(raw))
    params: dict[str, str] = {}
    for segment in _segments(raw):
        if len(params) == MAX_PARAMETERS:
            return WireFault(
                INVALID_REQUEST, f"The request has more than {MAX_PARAMETERS} parameters."
            )
        pair = _decode_pair(segment)
        if isinstance(pair, WireFault):
            return pair
        name, value = pair
        if name in params:
            return WireFault(
                INVALID_REQUEST,
                f"The parameter {name} is given more than once; each parameter may appear once.",
            )
        params[name] = value
    return params


def _is_form(content_type: str | None) -> WireFault | None:
    """``None`` when ``content_type`` is a UTF-8 form (or absent); the error otherwise."""
    if content_type is None or not content_type.strip():
        return None
    media_type, *options = (part.strip() for part in content_type.split(";"))
    if media_type.lower() != FORM_CONTENT_TYPE:
        return WireFault(
            INVALID_REQUEST,
            f"Content-Type {media_type} is not supported; POST the parameters as "
            f"{FORM_CONTENT_TYPE} (the SOAP interface is not offered).",
        )
    for option in options:
        key, _, charset = option.partition("=")
        if key.strip().lower() == "charset" and charset.strip().strip('"').lower() != "utf-8":
            return WireFault(
                INVALID_REQUEST, f"Charset {charset.strip()} is not supported; use UTF-8."
            )
    return None


def parse_request(
    method: str, query_string: bytes, body: bytes, content_type: str | None
) -> dict[str, str] | WireFault:
    """The parameters of a request: the query string of a GET, the form body of a POST.

    A POST must carry its parameters in the body only: a POST with a query string is refused
    (``InvalidRequest``), so that one request never has two sources of parameters. Verbs other
    than GET and POST are refused with HTTP 405.
    """
    verb = method.upper()
    if verb == "GET":
        return parse_urlencoded(query_string, "query string")
    if verb != "POST":
        return WireFault(
            INVALID_REQUEST,
            f"HTTP method {verb} is not supported; use GET or POST.",
            HTTP_METHOD_NOT_ALLOWED,
        )
    if query_string:
        return WireFault(
            INVALID_REQUEST, "A POST carries its parameters in the body, not in the URL."
        )
    bad_type = _is_form(content_type)
    if bad_type is not None:
        return bad_type
    return parse_urlencoded(body, "request body")
