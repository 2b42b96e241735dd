"""FPS Query API on the wire: error codes and faults, versions and actions, XML envelopes out.

Request parameters are decoded by :mod:`penny.fps.decode`; a refusal anywhere on the request
path is a :class:`WireFault`, which renders as an FPS error.

Responses are the FPS envelopes of spec §4.1 (success) and §4.2 (error), built from small
escaped fragments (:func:`leaf`, :func:`element`, :func:`amount_element`) in the order given.
Amounts render with six decimals and dates as UTC with milliseconds (:func:`fps_amount`,
:func:`fps_datetime`).

Decisions (codes, limits, formats) are recorded in ``docs/fps-wire.md``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NewType

from penny.domain import errors
from penny.domain.errors import FPS_ERRORS, Refusal
from penny.epoch import to_datetime
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

#: HTTP status of an authentication failure (unknown key, wrong signature).
HTTP_FORBIDDEN: Final = 403
#: HTTP status for a verb other than GET and POST.
HTTP_METHOD_NOT_ALLOWED: Final = 405
#: HTTP status of a client error: the table's (spec §4.2: FPS answered them with 400).
HTTP_BAD_REQUEST: Final = errors.HTTP_BAD_REQUEST


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
    """The FPS error of a domain refusal: code, message and HTTP status all from the one
    table in :mod:`penny.domain.errors` (400 as FPS answered, spec §4.2; 503 for a transient
    failure, which every FPS client retries by itself with back-off)."""
    fps = FPS_ERRORS[refusal]
    return WireFault(fps.code, detail or fps.message, fps.http_status)


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


def fps_datetime(us: int) -> str:
    """An ``xs:dateTime`` as FPS wrote it, in UTC: ``2009-10-06T05:50:08.010+00:00``.

    Real responses carry milliseconds and a numeric offset (``…08.010-07:00``, spec §4.1);
    Penny keeps that exact shape with the offset ``+00:00``. Sub-millisecond digits are
    truncated.
    """
    moment = to_datetime(us)
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
