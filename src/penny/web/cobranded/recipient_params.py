"""The start request of the Recipient pipeline (issue #19; spec §7.4): a marketplace caller asks
a merchant to accept being named as the recipient of its Pays, with at most ``maxFixedFee``
plus ``maxVariableFee`` percent taken by the caller, and whether the merchant pays Penny's fee
(``recipientPaysFee``). :func:`parse_recipient` checks every parameter like
:func:`penny.web.cobranded.params.parse_start` does for the other pipelines. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from penny.money import Money
from penny.web.cobranded import stored
from penny.web.cobranded.params import (
    _COMMON,
    MICROS,
    RETURN_PARAMETERS,
    StartError,
    _Checker,
    _common,
    _methods,
    _refused,
    _validity,
)

PIPELINE: Final = "Recipient"
_NAMES: Final = (_COMMON - {"recipientToken"}) | {
    "callerReference",
    "maxFixedFee",
    "maxVariableFee",
    "recipientPaysFee",
}
#: Names the return URL may not already carry for this pipeline: Penny adds them.
RECIPIENT_RETURN_PARAMETERS: Final = RETURN_PARAMETERS | {
    "tokenID",
    "refundTokenID",
    "callerReference",
}
_PERCENT: Final = re.compile(r"(?P<whole>[0-9]{1,3})(?:\.(?P<fraction>[0-9]{1,2})0*)?")


@dataclass(frozen=True, slots=True)
class RecipientRequest:
    """A valid Recipient start request: what the merchant will be asked to accept."""

    caller_key: str
    return_url: str
    caller_reference: str
    max_fixed_fee: Money
    #: Hundredths of a percent.
    max_variable_fee: int
    recipient_pays_fee: bool
    valid_from: int | None = None
    valid_until: int | None = None
    payment_reason: str = ""
    website_description: str = ""

    @property
    def pipeline_name(self) -> str:
        return PIPELINE

    def to_json(self) -> str:
        return stored.dumps(self, _STORED_KEYS, pipeline=PIPELINE)

    @classmethod
    def from_json(cls, text: str) -> RecipientRequest:
        return stored.loads(cls, _STORED_KEYS, text)


#: The short key some fields of a :class:`RecipientRequest` are stored under (after
#: ``pipeline``); the others are stored under their own names.
_STORED_KEYS: Final = {
    "caller_reference": "reference",
    "max_fixed_fee": "max_fixed",
    "max_variable_fee": "max_variable",
    "recipient_pays_fee": "pays_fee",
    "valid_from": "from",
    "valid_until": "until",
    "payment_reason": "reason",
    "website_description": "site",
}


def parse_recipient(params: Mapping[str, str], now_us: int) -> RecipientRequest | StartError:
    """Check a Recipient start request's parameters (the signature is checked by the caller)."""
    check = _Checker(params)
    for unknown in sorted(set(params) - _NAMES):
        check.bad(unknown)
    caller_key, return_url, site, reason = _common(check)
    if return_url and RECIPIENT_RETURN_PARAMETERS & _query_names(return_url):
        check.bad("returnURL")
    _methods(check)
    reference = check.reference("callerReference")
    max_fixed = _max_fixed_fee(check)
    max_variable = _percent(check, "maxVariableFee")
    pays_fee = params.get("recipientPaysFee", "")
    if pays_fee not in {"True", "False"}:
        check.bad("recipientPaysFee")
    valid_from, valid_until = _validity(check, now_us // MICROS)
    refused = _refused(check)
    if refused is not None:
        return refused
    assert max_fixed is not None
    assert max_variable is not None
    return RecipientRequest(
        caller_key=caller_key,
        return_url=return_url,
        caller_reference=reference,
        max_fixed_fee=max_fixed,
        max_variable_fee=max_variable,
        recipient_pays_fee=pays_fee == "True",
        valid_from=valid_from,
        valid_until=valid_until,
        payment_reason=reason,
        website_description=site,
    )


def _max_fixed_fee(check: _Checker) -> Money | None:
    """``maxFixedFee``: an amount, zero allowed."""
    if check.params.get("maxFixedFee", "") in {"0", "0.0", "0.00"}:
        return Money(0, "USD")
    return check.amount("maxFixedFee", required=True)


def _percent(check: _Checker, name: str) -> int | None:
    """A percentage from 0 to 100 with at most two decimals, in hundredths of a percent."""
    match = _PERCENT.fullmatch(check.params.get(name, ""))
    if match is None:
        check.bad(name)
        return None
    hundredths = int(match["whole"]) * 100 + int((match["fraction"] or "").ljust(2, "0"))
    if hundredths > 100 * 100:
        check.bad(name)
        return None
    return hundredths


def _query_names(url: str) -> set[str]:
    query = url.partition("?")[2].partition("#")[0]
    return {pair.partition("=")[0] for pair in query.split("&") if pair}


def error_params(error: StartError, params: Mapping[str, str]) -> dict[str, str]:
    """The return parameters of a refused Recipient start (the reference echoed if sound)."""
    out = {"status": error.status.value, "errorMessage": error.message}
    value = params.get("callerReference")
    if (
        value
        and "callerReference" not in error.fields
        and value.isprintable()
        and len(value) <= 128
    ):
        out["callerReference"] = value
    return out
