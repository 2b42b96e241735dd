"""The JSON API's error object, from the one refusal table (:data:`penny.domain.errors.FPS_ERRORS`).

A refusal's ``type`` and HTTP status come from its entry's :class:`~penny.domain.errors.ErrorKind`
and its ``code`` is the refusal's stable name (``insufficient_balance``). The door's own
refusals, before a request reaches the domain (a body that does not decode, a missing key, an
idempotency key reused), are the :class:`ApiFault` constants here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import msgspec

from penny.api.models import Error, ErrorDetail, ErrorType
from penny.domain.errors import FPS_ERRORS, PaymentsError, Refusal


@dataclass(frozen=True, slots=True)
class ApiFault:
    """A refusal of the JSON door itself."""

    status: int
    type: ErrorType
    code: str
    message: str
    param: str | None = None


_ENCODER: Final = msgspec.json.Encoder()

UNAUTHENTICATED: Final = ApiFault(
    401,
    "authentication_error",
    "invalid_api_key",
    "Send 'Authorization: Bearer <secret>' with an active secret key of this server's mode.",
)
NOT_FOUND: Final = ApiFault(404, "not_found_error", "no_such_route", "No such endpoint.")
METHOD_NOT_ALLOWED: Final = ApiFault(
    405, "invalid_request_error", "method_not_allowed", "This endpoint does not take that method."
)
TOO_LARGE: Final = ApiFault(
    413, "invalid_request_error", "body_too_large", "The request body is too large."
)
KEY_REUSED: Final = ApiFault(
    422,
    "idempotency_error",
    "idempotency_key_reused",
    "This Idempotency-Key was used with a different request; use a new key for a new request.",
    "Idempotency-Key",
)
BAD_KEY: Final = ApiFault(
    400,
    "invalid_request_error",
    "idempotency_key_invalid",
    "An Idempotency-Key is 1 to 128 printable ASCII characters.",
    "Idempotency-Key",
)
UNAVAILABLE: Final = ApiFault(
    503,
    "api_error",
    Refusal.internal_error.value,
    "The server could not serve the request; retry it with the same Idempotency-Key.",
)

_AT: Final = re.compile(r" - at `\$\.?([^`]*)`$")


def invalid_body(error: msgspec.ValidationError | msgspec.DecodeError) -> ApiFault:
    """A body that does not decode into the operation's model, with the field at fault."""
    text = str(error)
    found = _AT.search(text)
    param = None
    if found is not None:
        param = found.group(1) or None
        text = text[: found.start()]
    code = "parameter_invalid" if isinstance(error, msgspec.ValidationError) else "body_invalid"
    return ApiFault(400, "invalid_request_error", code, text, param)


def invalid_parameter(param: str, message: str) -> ApiFault:
    return ApiFault(400, "invalid_request_error", "parameter_invalid", message, param)


def refusal_fault(error: PaymentsError, param: str | None = None) -> ApiFault:
    """A refusal of the domain, through its entry in the one table (``param``: the request
    field it is about, :func:`penny.api.params.param_of`)."""
    entry = FPS_ERRORS[error.refusal]
    return ApiFault(entry.api_status, entry.kind.value, error.refusal.value, error.detail, param)


def render_fault(fault: ApiFault, request_id: str) -> bytes:
    detail = ErrorDetail(
        type=fault.type,
        code=fault.code,
        message=fault.message,
        param=fault.param,
        request_id=request_id,
    )
    return _ENCODER.encode(Error(detail))


def encode(value: msgspec.Struct) -> bytes:
    return _ENCODER.encode(value)
