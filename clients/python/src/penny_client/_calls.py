"""Each API operation as a :class:`~penny_client._core.Call`: arguments to path, body and
query. The sync and async clients send the same calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from penny_client._core import Call, new_idempotency_key


def money(minor: int, currency: str) -> dict[str, Any]:
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError("amounts are integer minor units (cents), never floats")
    return {"amount": minor, "currency": currency}


def post(path: str, body: dict[str, Any], key: str | None) -> Call:
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
) -> Call:
    body = {
        "sender_token": sender_token,
        "amount": money(amount, currency),
        "recipient_token": recipient_token,
        "description": description,
    }
    return post("/v1/payments", body, key)


def fund(
    funding_token: str, prepaid_instrument: str, amount: int, currency: str, key: str | None
) -> Call:
    body = {
        "funding_token": funding_token,
        "prepaid_instrument": prepaid_instrument,
        "amount": money(amount, currency),
    }
    return post("/v1/fundings", body, key)


def settle(
    settlement_token: str, credit_instrument: str, amount: int, currency: str, key: str | None
) -> Call:
    body = {
        "settlement_token": settlement_token,
        "credit_instrument": credit_instrument,
        "amount": money(amount, currency),
    }
    return post("/v1/settlements", body, key)


def write_off(credit_instrument: str, amount: int, currency: str, key: str | None) -> Call:
    body = {"credit_instrument": credit_instrument, "amount": money(amount, currency)}
    return post("/v1/write_offs", body, key)


def refund(transaction: str, amount: int | None, currency: str, key: str | None) -> Call:
    body = {
        "transaction": transaction,
        "amount": None if amount is None else money(amount, currency),
    }
    return post("/v1/refunds", body, key)


def cancel_token(token_id: str, key: str | None) -> Call:
    return post(f"/v1/tokens/{token_id}/cancel", {}, key)


def authorization_session(
    kind: str,
    return_url: str,
    amounts: dict[str, int | None],
    currency: str,
    more: dict[str, Any],
    key: str | None,
) -> Call:
    """``amounts``: funding_amount, credit_limit, global_amount_limit, min_charge, max_charge."""
    body: dict[str, Any] = {"kind": kind, "return_url": return_url}
    for name, minor in amounts.items():
        if minor is not None:
            body[name] = money(minor, currency)
    body |= {name: value for name, value in more.items() if value is not None}
    return post("/v1/authorization_sessions", body, key)


def get(path: str, **params: str | int | None) -> Call:
    query = {name: str(value) for name, value in params.items() if value is not None}
    return Call("GET", path, params=query)


def methods(payment_methods: Sequence[str] | None) -> list[str] | None:
    return None if payment_methods is None else list(payment_methods)
