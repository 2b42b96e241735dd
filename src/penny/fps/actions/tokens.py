"""The token actions: CancelToken, GetTokenByCaller, GetTokens and GetTokenUsage.

They answer for both kinds of token: the tokens the pipelines issued (prepaid, credit,
funding, settlement; CancelToken also cancels a Recipient pipeline's recipient token) and the
payment instructions a caller installed with
InstallPaymentInstruction (:mod:`.instructions`).
"""

from __future__ import annotations

from typing import Final

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import Token, TokenFilter, TokenStatus
from penny.fps.actions.call import Call, invalid
from penny.fps.actions.spec import QueryAction, names
from penny.fps.wire import Xml, amount_element, element, fps_datetime, leaf
from penny.gatekeeper import UsageKind
from penny.money import Money
from penny.services import gatekeeper as gk
from penny.services import instructions, marketplace


def token_element(view: instructions.TokenView) -> Xml:
    return element(
        "Token",
        leaf("TokenId", view.id),
        leaf("FriendlyName", view.friendly_name),
        leaf("TokenStatus", view.status.value),
        leaf("DateInstalled", fps_datetime(view.created_at)),
        leaf("CallerReference", view.caller_reference),
        leaf("TokenType", view.token_type),
        leaf("OldTokenId", view.old_token_id) if view.old_token_id else None,
        leaf("PaymentReason", view.payment_reason) if view.payment_reason else None,
    )


def _token(call: Call, token: Token) -> Xml:
    old = call.payments.old_token_ids([token]).get(token.id)
    return token_element(instructions.view_of_token(token, token.script or "", old))


def _cancel_token(call: Call) -> Xml | None:
    token_id = call.required("TokenId")
    call.optional("ReasonText")
    ipn_url = call.ipn_url()
    try:
        call.payments.cancel_token(call.caller_id, token_id, ipn_url)
    except PaymentsError as error:
        if error.refusal is not Refusal.unknown_token:
            raise
    else:
        return None
    try:  # a recipient token (the marketplace's Recipient pipeline, #19)
        marketplace.cancel_recipient_token(call.payments, call.caller_id, token_id)
    except PaymentsError as error:
        if error.refusal is not Refusal.unknown_token:
            raise
    else:
        return None
    instructions.cancel_instruction(call.payments, call.caller_id, token_id, ipn_url)  # or unknown
    return None


def _get_token_by_caller(call: Call) -> Xml | None:
    token_id = call.optional("TokenId")
    reference = call.optional("CallerReference")
    if (token_id is None) == (reference is None):
        raise invalid("Give exactly one of TokenId and CallerReference.")
    try:
        token = call.payments.token_by_caller(
            call.caller_id, token_id=token_id, caller_reference=reference
        )
    except PaymentsError as error:
        installed = instructions.instruction_by_caller(
            call.payments, call.caller_id, token_id=token_id, caller_reference=reference
        )
        if installed is None:
            raise error from None
        return token_element(instructions.view_of_instruction(installed))
    return _token(call, token)


def _get_tokens(call: Call) -> Xml | None:
    status = call.choice("TokenStatus", ("Active", "Inactive"))
    kind = call.choice("TokenType", gk.TOKEN_TYPES)
    token_status = None if status is None else TokenStatus(status)
    reference = call.optional("CallerReference")
    friendly = call.optional("TokenFriendlyName")
    only = TokenFilter(token_status, reference, friendly)
    tokens = call.payments.tokens(call.caller_id, only)
    installed = instructions.instructions(call.payments, call.caller_id, only)
    old = call.payments.old_token_ids(tokens)
    views = [instructions.view_of_token(t, "", old.get(t.id)) for t in tokens]
    views += [instructions.view_of_instruction(i) for i in installed]
    views.sort(key=lambda view: (view.created_at, view.id))
    chosen = [view for view in views if kind is None or view.token_type == kind]
    return Xml("".join(token_element(view) for view in chosen))


def _installed_token_usage(limits: list[instructions.LimitUsage]) -> Xml:
    """One TokenUsageLimits per usage limit of an installed token (Count or Amount first)."""
    blocks = []
    for limit in limits:
        since = leaf("LastResetTimestamp", fps_datetime(limit.window_start))
        if limit.kind is UsageKind.COUNT:
            body = (leaf("Count", str(limit.count)), leaf("LastResetCount", str(limit.last_count)))
        else:
            body = (
                amount_element("Amount", limit.amount),
                amount_element("LastResetAmount", limit.last_amount),
            )
        blocks.append(element("TokenUsageLimits", *body, since))
    return Xml("".join(blocks))


def _get_token_usage(call: Call) -> Xml | None:
    token_id = call.required("TokenId")
    installed = instructions.token_usage(call.payments, call.caller_id, token_id)
    if installed is not None:
        return _installed_token_usage(installed)
    usage = call.payments.token_usage(call.caller_id, token_id)
    zero = Money.zero(usage.amount.currency)
    since = leaf("LastResetTimestamp", fps_datetime(usage.since))
    by_amount = element(
        "TokenUsageLimits",
        amount_element("Amount", usage.amount),
        amount_element("LastResetAmount", zero),
        since,
    )
    by_count = element(
        "TokenUsageLimits",
        leaf("Count", str(usage.count)),
        leaf("LastResetCount", "0"),
        since,
    )
    return Xml(by_count + by_amount)


CANCEL_TOKEN: Final = QueryAction(
    handler=_cancel_token, parameters=names("TokenId", "ReasonText", "OverrideIPNURL")
)
GET_TOKEN_BY_CALLER: Final = QueryAction(
    handler=_get_token_by_caller, parameters=names("TokenId", "CallerReference")
)
GET_TOKENS: Final = QueryAction(
    handler=_get_tokens,
    parameters=names("TokenStatus", "TokenType", "CallerReference", "TokenFriendlyName"),
)
GET_TOKEN_USAGE: Final = QueryAction(handler=_get_token_usage, parameters=names("TokenId"))
