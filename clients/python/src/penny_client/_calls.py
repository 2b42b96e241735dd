"""Each API operation as a :class:`~penny_client._core.Call` typed by its answer: arguments
to path, body and query, and the call for a list's next page. The sync and async clients send
the same calls; each of their methods sends one of these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from penny_client._core import Call, new_idempotency_key
from penny_client.models import (
    AuthorizationSession,
    Instrument,
    InstrumentBalance,
    InstrumentList,
    Item,
    MerchantBalance,
    Page,
    Token,
    Transaction,
    TransactionList,
)


def money(minor: int, currency: str) -> dict[str, Any]:
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError("amounts are integer minor units (cents), never floats")
    return {"amount": minor, "currency": currency}


def post(path: str, body: dict[str, Any], key: str | None) -> Call[Any]:
    """A POST with its Idempotency-Key (a new one unless the caller chose it)."""
    clean = {name: value for name, value in body.items() if value is not None}
    return Call("POST", path, clean, idempotency_key=key or new_idempotency_key())


def pay(
    sender_token: str,
    amount: int,
    currency: str,
    recipient_token: str | None,
    description: str | None,
    key: str | None,
    fees: dict[str, Any],
) -> Call[Transaction]:
    body = spend(sender_token, amount, currency, recipient_token, description) | fees
    return post("/v1/payments", body, key)


def spend(
    sender_token: str,
    amount: int,
    currency: str,
    recipient_token: str | None,
    description: str | None,
) -> dict[str, Any]:
    """What a Pay and a Reserve both send: whose token, how much, for whom, what for."""
    return {
        "sender_token": sender_token,
        "amount": money(amount, currency),
        "recipient_token": recipient_token,
        "description": description,
    }


def marketplace(
    fixed: int | None, bps: int, charge_fee_to: str | None, currency: str
) -> dict[str, Any]:
    """A marketplace Pay's or Reserve's fee for you (``fixed`` minor units plus ``bps`` basis
    points of the amount) and who bears Penny's fee (``recipient`` or ``caller``)."""
    body: dict[str, Any] = {"charge_fee_to": charge_fee_to}
    if fixed is not None or bps:
        fee: dict[str, Any] = {"variable_bps": bps}
        if fixed is not None:
            fee["fixed"] = money(fixed, currency)
        body["marketplace_fee"] = fee
    return body


def reserve(
    sender_token: str,
    amount: int,
    currency: str,
    recipient_token: str | None,
    description: str | None,
    timeout_minutes: int | None,
    key: str | None,
    fees: dict[str, Any],
) -> Call[Transaction]:
    body = spend(sender_token, amount, currency, recipient_token, description) | fees
    return post("/v1/reserves", body | {"timeout_minutes": timeout_minutes}, key)


def settle_reserve(
    reserve_id: str, amount: int | None, currency: str, key: str | None
) -> Call[Transaction]:
    body = {"amount": None if amount is None else money(amount, currency)}
    return post(f"/v1/reserves/{reserve_id}/settle", body, key)


def cancel_reserve(reserve_id: str, description: str | None, key: str | None) -> Call[Transaction]:
    return post(f"/v1/reserves/{reserve_id}/cancel", {"description": description}, key)


def fund(
    funding_token: str, prepaid_instrument: str, amount: int, currency: str, key: str | None
) -> Call[Transaction]:
    body = {
        "funding_token": funding_token,
        "prepaid_instrument": prepaid_instrument,
        "amount": money(amount, currency),
    }
    return post("/v1/fundings", body, key)


def settle(
    settlement_token: str, credit_instrument: str, amount: int, currency: str, key: str | None
) -> Call[Transaction]:
    body = {
        "settlement_token": settlement_token,
        "credit_instrument": credit_instrument,
        "amount": money(amount, currency),
    }
    return post("/v1/settlements", body, key)


def write_off(
    credit_instrument: str, amount: int, currency: str, key: str | None
) -> Call[Transaction]:
    body = {"credit_instrument": credit_instrument, "amount": money(amount, currency)}
    return post("/v1/write_offs", body, key)


def refund(
    transaction: str, amount: int | None, currency: str, key: str | None
) -> Call[Transaction]:
    body = {
        "transaction": transaction,
        "amount": None if amount is None else money(amount, currency),
    }
    return post("/v1/refunds", body, key)


def cancel_token(token_id: str, key: str | None) -> Call[Token]:
    return post(f"/v1/tokens/{token_id}/cancel", {}, key)


def authorization_session(
    kind: str,
    return_url: str,
    amounts: dict[str, int | None],
    currency: str,
    more: dict[str, Any],
    key: str | None,
) -> Call[AuthorizationSession]:
    """``amounts``: funding_amount, credit_limit, global_amount_limit, min_charge, max_charge."""
    body: dict[str, Any] = {"kind": kind, "return_url": return_url}
    for name, minor in amounts.items():
        if minor is not None:
            body[name] = money(minor, currency)
    body |= {name: value for name, value in more.items() if value is not None}
    return post("/v1/authorization_sessions", body, key)


def get(path: str, **params: str | int | None) -> Call[Any]:
    query = {name: str(value) for name, value in params.items() if value is not None}
    return Call("GET", path, params=query)


def get_authorization_session(session_id: str) -> Call[AuthorizationSession]:
    return get(f"/v1/authorization_sessions/{session_id}")


def get_transaction(transaction_id: str) -> Call[Transaction]:
    return get(f"/v1/transactions/{transaction_id}")


def get_token(token_id: str) -> Call[Token]:
    return get(f"/v1/tokens/{token_id}")


def get_instrument(instrument_id: str) -> Call[Instrument]:
    return get(f"/v1/instruments/{instrument_id}")


def prepaid_balance(instrument_id: str) -> Call[InstrumentBalance]:
    return get(f"/v1/prepaid_instruments/{instrument_id}/balance")


def debt_balance(instrument_id: str) -> Call[InstrumentBalance]:
    return get(f"/v1/credit_instruments/{instrument_id}/balance")


def merchant_balance(name: str) -> Call[MerchantBalance]:
    """``prepaid_liability`` or ``outstanding_debt``."""
    return get(f"/v1/balances/{name}")


def list_transactions(filters: dict[str, str | int | None]) -> Call[TransactionList]:
    return get("/v1/transactions", **filters)


def list_instruments(filters: dict[str, str | int | None]) -> Call[InstrumentList]:
    return get("/v1/instruments", **filters)


def next_page(call: Call[Page[Item]], page: Page[Item]) -> Call[Page[Item]] | None:
    """The call for the page after ``page`` (read with ``call``); None after the last."""
    if not page["has_more"] or page["next_cursor"] is None:
        return None
    return replace(call, params=call.params | {"starting_after": page["next_cursor"]})


def methods(payment_methods: Sequence[str] | None) -> list[str] | None:
    return None if payment_methods is None else list(payment_methods)
