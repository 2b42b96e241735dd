"""FPS Query API on the wire: request parameters in, XML envelopes out.

Requests arrive either as ``GET /?Action=…`` (boto, Ruby and Python clients) or as
``POST /`` with an ``application/x-www-form-urlencoded`` body (Amazon's Java, PHP and C#
libraries) (spec ``fps-api.md`` §1, ``clients.md`` §3.2). :func:`parse_request` turns either into
one flat ``dict[str, str]``, or a :class:`WireFault` that renders as an FPS error.

Responses are the FPS envelopes of spec §4.1 (success) and §4.2 (error), built from small
escaped fragments (:func:`leaf`, :func:`element`, :func:`amount_element`) in the order given.
Amounts render with six decimals and dates as UTC with milliseconds (:func:`fps_amount`,
:func:`fps_datetime`).

Decisions (codes, limits, formats) are recorded in ``docs/fps-wire.md``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, NewType
from urllib.parse import unquote_to_bytes

from penny.domain.errors import FPS_ERRORS, Refusal
from penny.money import Money

# -- error codes of the Query API front end ----------------------------------------------------
#
# Codes of the domain (InsufficientBalance, InvalidParams, …) come from
# penny.domain.errors.FPS_ERRORS and nowhere else. The codes below are those of the AWS query
# front end that authenticated and parsed requests before FPS saw them: RequestExpired and
# InvalidParameterValue are seen in real FPS error bodies (spec §2.1, §4.3), InvalidRequest too
# (§4.3, for a request that does not fit the interface); the others are the same front end's
# standard names (see docs/fps-wire.md).

MISSING_PARAMETER: Final = "MissingParameter"
INVALID_PARAMETER_VALUE: Final = "InvalidParameterValue"
INVALID_PARAMETER_COMBINATION: Final = "InvalidParameterCombination"
INVALID_REQUEST: Final = "InvalidRequest"
INVALID_ACTION: Final = "InvalidAction"
REQUEST_EXPIRED: Final = "RequestExpired"
INVALID_CLIENT_TOKEN_ID: Final = "InvalidClientTokenId"  # noqa: S105 (an error code)
SIGNATURE_DOES_NOT_MATCH: Final = "SignatureDoesNotMatch"

#: HTTP status of a client error (spec §4.2: FPS answered validation errors with 400).
HTTP_BAD_REQUEST: Final = 400
#: HTTP status of an authentication failure (unknown key, wrong signature).
HTTP_FORBIDDEN: Final = 403
#: HTTP status for a verb other than GET and POST.
HTTP_METHOD_NOT_ALLOWED: Final = 405
#: HTTP status of a transient failure: every FPS client retries 500/503 with back-off (§4.2).
HTTP_SERVICE_UNAVAILABLE: Final = 503


@dataclass(frozen=True, slots=True)
class WireFault:
    """A request refused before it reached the domain: an FPS error code and a message."""

    code: str
    message: str
    http_status: int = HTTP_BAD_REQUEST


def missing_parameter(name: str) -> WireFault:
    """The standard AWS answer to a required parameter that is absent or empty."""
    return WireFault(MISSING_PARAMETER, f"The request must contain the parameter {name}.")


def invalid_value(name: str, value: str, why: str) -> WireFault:
    """``InvalidParameterValue`` worded like the real FPS message for a bad Timestamp (§2.1)."""
    return WireFault(
        INVALID_PARAMETER_VALUE, f"Value ({value}) for parameter {name} is invalid. {why}"
    )


def refusal_error(refusal: Refusal, detail: str | None = None) -> WireFault:
    """The FPS error of a domain refusal, from the one table in :mod:`penny.domain.errors`.

    Status 400 as FPS answered (spec §4.2), except ``InternalError`` (the service is busy):
    503, which every FPS client retries by itself with back-off.
    """
    fps = FPS_ERRORS[refusal]
    status = HTTP_SERVICE_UNAVAILABLE if fps.code == "InternalError" else HTTP_BAD_REQUEST
    return WireFault(fps.code, detail or fps.message, status)


# -- request parsing ---------------------------------------------------------------------------

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


# -- versions and actions ----------------------------------------------------------------------

#: API versions served (spec §1, §12). 2007-01-08 had other response shapes and is not served.
SUPPORTED_VERSIONS: Final = ("2008-09-17", "2010-08-28")

#: The 27 actions of the 2010-08-28 WSDL (spec §5).
ACTIONS_2010_08_28: Final = frozenset(
    {
        "Cancel",
        "CancelSubscriptionAndRefund",
        "CancelToken",
        "FundPrepaid",
        "GetAccountActivity",
        "GetAccountBalance",
        "GetDebtBalance",
        "GetOutstandingDebtBalance",
        "GetPaymentInstruction",
        "GetPrepaidBalance",
        "GetRecipientVerificationStatus",
        "GetSubscriptionDetails",
        "GetTokenByCaller",
        "GetTokenUsage",
        "GetTokens",
        "GetTotalPrepaidLiability",
        "GetTransaction",
        "GetTransactionStatus",
        "GetTransactionsForSubscription",
        "InstallPaymentInstruction",
        "Pay",
        "Refund",
        "Reserve",
        "Settle",
        "SettleDebt",
        "VerifySignature",
        "WriteOffDebt",
    }
)

#: 2008-09-17 lacks the three actions 2010-08-28 added (spec §12).
ACTIONS_2008_09_17: Final = ACTIONS_2010_08_28 - {
    "GetRecipientVerificationStatus",
    "GetSubscriptionDetails",
    "GetTransactionsForSubscription",
}

ACTIONS: Final[Mapping[str, frozenset[str]]] = {
    "2008-09-17": ACTIONS_2008_09_17,
    "2010-08-28": ACTIONS_2010_08_28,
}


def namespace_for(version: str) -> str:
    """The default XML namespace of responses to ``version`` (spec §4.1)."""
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"unsupported FPS version {version!r}")
    return f"http://fps.amazonaws.com/doc/{version}/"


def version_of(params: Mapping[str, str]) -> str | WireFault:
    """The request's ``Version``: one of :data:`SUPPORTED_VERSIONS`."""
    version = params.get("Version", "")
    if not version:
        return missing_parameter("Version")
    if version not in SUPPORTED_VERSIONS:
        return invalid_value(
            "Version", version, f"Supported versions are {', '.join(SUPPORTED_VERSIONS)}."
        )
    return version


def action_of(params: Mapping[str, str], version: str) -> str | WireFault:
    """The request's ``Action``, known to ``version`` (case-sensitive, as FPS was)."""
    action = params.get("Action", "")
    if not action:
        return missing_parameter("Action")
    if action not in ACTIONS[version]:
        return WireFault(
            INVALID_ACTION,
            f"The action {action} is not valid for this web service (version {version}).",
        )
    return action


def new_request_id() -> str:
    """A fresh request id (a UUID, the shape FPS used; spec §4.1, §4.2)."""
    return str(uuid.uuid4())


# -- XML ---------------------------------------------------------------------------------------

#: An already escaped, well-formed XML fragment. Plain ``str`` is text still to be escaped.
Xml = NewType("Xml", str)

XML_DECLARATION: Final = '<?xml version="1.0"?>\n'

_NAME: Final = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]*\Z")
#: Characters XML 1.0 does not allow at all (§2.2 of the XML spec), lone surrogates included.
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TEXT_ESCAPES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
_TEXT_SPECIAL: Final = re.compile("[&<>\r]")


def escape_text(text: str) -> str:
    """Escape character data: ``& < >`` (and CR, kept as a reference).

    Quotes are left as they are, as real FPS did in text (spec §4.3 shows a Message with
    literal ``"``). Characters XML cannot carry at all become U+FFFD.
    """
    clean = _NOT_XML.sub("\ufffd", text)
    return _TEXT_SPECIAL.sub(lambda match: _TEXT_ESCAPES[match.group()], clean)


def escape_attribute(value: str) -> str:
    """Escape an attribute value written between double quotes."""
    return escape_text(value).replace('"', "&quot;")


def _checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not an XML element name: {name!r}")
    return name


def leaf(name: str, text: str) -> Xml:
    """``<name>text</name>`` with ``text`` escaped."""
    tag = _checked_name(name)
    return Xml(f"<{tag}>{escape_text(text)}</{tag}>")


def element(name: str, *children: Xml | None) -> Xml:
    """``<name>`` around ``children`` in order; ``None`` (an absent optional) is skipped."""
    tag = _checked_name(name)
    inner = "".join(child for child in children if child is not None)
    return Xml(f"<{tag}>{inner}</{tag}>")


def optional_leaf(name: str, value: str | None) -> Xml | None:
    """:func:`leaf` when ``value`` is not empty, else nothing (an absent optional element)."""
    return leaf(name, value) if value else None


def fps_amount(money: Money) -> str:
    """An amount as FPS wrote it: six decimals, ``"1.000000"`` (spec §4.1)."""
    return money.fps()


def amount_element(name: str, money: Money) -> Xml:
    """An ``fps:Amount``: exactly ``CurrencyCode`` then ``Value`` (spec §4.4; boto asserts it)."""
    return element(name, leaf("CurrencyCode", money.currency), leaf("Value", fps_amount(money)))


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def fps_datetime(us: int) -> str:
    """An ``xs:dateTime`` as FPS wrote it, in UTC: ``2009-10-06T05:50:08.010+00:00``.

    Real responses carry milliseconds and a numeric offset (``…08.010-07:00``, spec §4.1);
    Penny keeps that exact shape with the offset ``+00:00``. Sub-millisecond digits are
    truncated.
    """
    moment = _EPOCH + timedelta(microseconds=us)
    millis = moment.microsecond // 1000
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{millis:03d}+00:00"
    )


def render_error(code: str, message: str, request_id: str) -> bytes:
    """The FPS error envelope (spec §4.2), compact as the PHP library's regexes require.

    No namespace, ``RequestID`` with a capital D, and the bare request id (no ``:0``).
    """
    error = element("Error", leaf("Code", code), leaf("Message", message))
    body = element("Response", element("Errors", error), leaf("RequestID", request_id))
    return (XML_DECLARATION + body).encode("utf-8")


def render_success(action: str, version: str, result_xml: str | None, request_id: str) -> bytes:
    """The FPS success envelope of ``action`` in the namespace of ``version`` (spec §4.1).

    ``result_xml`` is the already rendered content of ``<{action}Result>`` (see :func:`leaf`,
    :func:`element`); ``None`` leaves the Result element out, as CancelToken's response has
    none. ``request_id`` is the bare id: the ``RequestId`` of a success is written with the
    ``:0`` suffix real FPS successes carry.
    """
    tag = _checked_name(f"{action}Response")
    result = None if result_xml is None else element(f"{action}Result", Xml(result_xml))
    metadata = element("ResponseMetadata", leaf("RequestId", f"{request_id}:0"))
    inner = "".join(part for part in (result, metadata) if part is not None)
    namespace = escape_attribute(namespace_for(version))
    body = f'<{tag} xmlns="{namespace}">{inner}</{tag}>'
    return (XML_DECLARATION + body).encode("utf-8")
