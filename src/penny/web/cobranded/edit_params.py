"""The start request of the EditToken pipeline (issue #19; spec §7.4): a caller asks the buyer of
one of its MultiUse or Recurring tokens to agree to new terms, on a payment method the buyer
picks. :func:`parse_edit` checks the parameters like
:func:`penny.web.cobranded.params.parse_start` does; :func:`edit_request` merges what the
caller asks for with the token's current terms (what is not given stays) into the
:class:`~penny.web.cobranded.params.PipelineRequest` the pages show, that of the token's own
pipeline with ``old_token_id`` set. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from penny.domain.model import (
    AmountType,
    Instrument,
    Token,
    TokenKind,
    TokenTerms,
    UsageLimitTerm,
)
from penny.domain.parties import PaymentMethodKind
from penny.money import Money
from penny.web.cobranded.params import (
    _COMMON,
    _LIMITS,
    MICROS,
    Pipeline,
    PipelineRequest,
    StartError,
    Status,
    _amount_type,
    _Checker,
    _common,
    _methods,
    _refused,
    _usage_limit,
    _validity,
)

PIPELINE: Final = "EditToken"
#: What the caller may ask to change, besides the payment methods the buyer may pick from.
_MULTI_USE_ONLY: Final = frozenset({"globalAmountLimit", "amountType", *_LIMITS})
#: The payment reason and the validity start stay the token's.
_NAMES: Final = (_COMMON - {"recipientToken", "validityStart", "paymentReason"}) | {
    "callerReference",
    "tokenId",
    "tokenID",
    "transactionAmount",
    *_MULTI_USE_ONLY,
}
_KIND_PIPELINES: Final = {
    TokenKind.multi_use: Pipeline.multi_use,
    TokenKind.recurring: Pipeline.recurring,
}


@dataclass(frozen=True, slots=True)
class EditStart:
    """A well-formed EditToken start request: the token and what the caller asks to change
    (``None``: as it is)."""

    caller_key: str
    return_url: str
    website_description: str
    caller_reference: str
    token_id: str
    methods: tuple[PaymentMethodKind, ...]
    given: frozenset[str]
    transaction_amount: Money | None
    amount_type: AmountType | None
    global_amount_limit: Money | None
    usage_limits: tuple[UsageLimitTerm, ...]
    valid_until: int | None


def parse_edit(params: Mapping[str, str], now_us: int) -> EditStart | StartError:
    """Check an EditToken start request's parameters (not yet against the token)."""
    check = _Checker(params)
    for unknown in sorted(set(params) - _NAMES):
        check.bad(unknown)
    if params.get("tokenId") and params.get("tokenID"):
        check.bad("tokenID")
    caller_key, return_url, site, _reason = _common(check)
    methods = _methods(check)
    reference = check.reference("callerReference")
    token_name = "tokenID" if "tokenID" in params else "tokenId"
    token_id = check.text(token_name, required=True, limit=64)
    amount = check.amount("transactionAmount", required=False)
    limit = check.amount("globalAmountLimit", required=False)
    amount_type = _amount_type(check, amount) if params.get("amountType") else None
    limits = tuple(u for u in (_usage_limit(check, 1), _usage_limit(check, 2)) if u)
    _start, valid_until = _validity(check, now_us // MICROS)
    refused = _refused(check)
    if refused is not None:
        return refused
    return EditStart(
        caller_key=caller_key,
        return_url=return_url,
        website_description=site,
        caller_reference=reference,
        token_id=token_id,
        methods=methods,
        given=frozenset(name for name in params if params[name] != ""),
        transaction_amount=amount,
        amount_type=amount_type,
        global_amount_limit=limit,
        usage_limits=limits,
        valid_until=valid_until,
    )


def edit_request(
    edit: EditStart, token: Token, instrument: Instrument, terms: TokenTerms
) -> PipelineRequest | StartError:
    """The new terms (the token's, changed where the caller asks), as the token's pipeline's
    request; a MultiUse term for a Recurring token is CE."""
    pipeline = _KIND_PIPELINES[token.kind]
    if pipeline is Pipeline.recurring:
        wrong = sorted(edit.given & _MULTI_USE_ONLY)
        if wrong:
            listed = ", ".join(wrong)
            return StartError(
                Status.caller_exception,
                f"The following input(s) are not well formed: [{listed}] "
                "(a Recurring token's amount and expiry can change, not these)",
                tuple(wrong),
            )
    currency = instrument.currency

    def money(minor: int | None) -> Money | None:
        return None if minor is None else Money(minor, currency)

    amount = edit.transaction_amount or money(terms.transaction_amount)
    amount_type = terms.amount_type
    if edit.transaction_amount is not None and pipeline is Pipeline.multi_use:
        amount_type = edit.amount_type or AmountType.exact  # as the MultiUse pipeline's
    global_limit = edit.global_amount_limit or money(instrument.global_amount_limit)
    headline = global_limit if pipeline is Pipeline.multi_use else amount
    assert headline is not None, "MultiUse has a global limit, Recurring an amount"
    return PipelineRequest(
        pipeline=pipeline,
        caller_key=edit.caller_key,
        return_url=edit.return_url,
        caller_reference_sender=edit.caller_reference,
        caller_reference_second="",
        limit=headline,
        global_amount_limit=global_limit if pipeline is Pipeline.multi_use else None,
        valid_from=instrument.valid_from,
        valid_until=edit.valid_until or instrument.valid_until,
        methods=edit.methods,
        payment_reason=token.payment_reason,
        website_description=edit.website_description,
        transaction_amount=amount,
        amount_type=amount_type if pipeline is Pipeline.multi_use else None,
        usage_limits=edit.usage_limits or terms.usage_limits,
        recurring_period=terms.recurring_period,
        old_token_id=token.id,
        old_sender_id=token.sender_id,
    )
