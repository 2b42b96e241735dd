"""``AsyncPenny``: the asynchronous client (the same calls as :class:`~penny_client.Penny`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, TypeVar

import httpx

from penny_client import _calls as c
from penny_client._core import Call, PennyConnectionError, Retry, http_options, result
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

Answer = TypeVar("Answer")


class AsyncPenny:
    """Penny's ``/v1`` API over one httpx connection pool. Every POST carries an
    Idempotency-Key (yours, or a new one per call) that its retries repeat, so a retry never
    moves money twice; connection errors, 429 and 503 are retried with backoff. The key and
    URL default to ``$PENNY_API_KEY`` and ``$PENNY_URL`` (else ``http://127.0.0.1:8080``)."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        retry: Retry | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry or Retry()
        options = http_options(api_key, base_url, timeout)
        self._http = httpx.AsyncClient(**options, transport=transport)

    async def __aenter__(self) -> AsyncPenny:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[Answer]) -> Answer:
        """Send one call, retrying it (same key) while the policy allows."""
        attempt = 0
        while True:
            try:
                response: httpx.Response | None = await self._http.request(
                    call.method, call.path, json=call.body, params=call.params,
                    headers=call.headers(),
                )  # fmt: skip
            except httpx.TransportError as error:
                response, failure = None, error
            if not self.retry.again(attempt, response):
                if response is None:
                    raise PennyConnectionError(f"{call.method} {call.path}: {failure}")
                found: Answer = result(response)
                return found
            await asyncio.sleep(self.retry.delay(attempt))
            attempt += 1

    # -- money ---------------------------------------------------------------------------

    async def pay(
        self,
        sender_token: str,
        amount: int,
        *,
        currency: str = "USD",
        recipient_token: str | None = None,
        description: str | None = None,
        marketplace_fee: int | None = None,
        marketplace_fee_bps: int = 0,
        charge_fee_to: str | None = None,
        idempotency_key: str | None = None,
    ) -> Transaction:
        """Pay; with ``recipient_token`` a marketplace Pay, where ``marketplace_fee`` (minor
        units) plus ``marketplace_fee_bps`` of the amount are yours."""
        fees = c.marketplace(marketplace_fee, marketplace_fee_bps, charge_fee_to, currency)
        call = c.pay(
            sender_token, amount, currency, recipient_token, description, idempotency_key, fees
        )
        return await self.send(call)

    async def reserve(
        self,
        sender_token: str,
        amount: int,
        *,
        currency: str = "USD",
        recipient_token: str | None = None,
        description: str | None = None,
        timeout_minutes: int | None = None,
        marketplace_fee: int | None = None,
        marketplace_fee_bps: int = 0,
        charge_fee_to: str | None = None,
        idempotency_key: str | None = None,
    ) -> Transaction:
        """Hold ``amount`` on the sender token's instrument, to settle or cancel later (the
        marketplace arguments as for :meth:`pay`)."""
        fees = c.marketplace(marketplace_fee, marketplace_fee_bps, charge_fee_to, currency)
        call = c.reserve(
            sender_token,
            amount,
            currency,
            recipient_token,
            description,
            timeout_minutes,
            idempotency_key,
            fees,
        )
        return await self.send(call)

    async def settle_reserve(
        self,
        reserve_id: str,
        amount: int | None = None,
        *,
        currency: str = "USD",
        idempotency_key: str | None = None,
    ) -> Transaction:
        """Charge all of a reserve (no ``amount``) or part of it; answers the Settle."""
        return await self.send(c.settle_reserve(reserve_id, amount, currency, idempotency_key))

    async def cancel_reserve(
        self, reserve_id: str, *, description: str | None = None, idempotency_key: str | None = None
    ) -> Transaction:
        """Release a reserve's hold; answers the reserve, now cancelled."""
        return await self.send(c.cancel_reserve(reserve_id, description, idempotency_key))

    async def fund(
        self,
        funding_token: str,
        prepaid_instrument: str,
        amount: int,
        *,
        currency: str = "USD",
        idempotency_key: str | None = None,
    ) -> Transaction:
        return await self.send(
            c.fund(funding_token, prepaid_instrument, amount, currency, idempotency_key)
        )

    async def settle(
        self,
        settlement_token: str,
        credit_instrument: str,
        amount: int,
        *,
        currency: str = "USD",
        idempotency_key: str | None = None,
    ) -> Transaction:
        return await self.send(
            c.settle(settlement_token, credit_instrument, amount, currency, idempotency_key)
        )

    async def write_off(
        self,
        credit_instrument: str,
        amount: int,
        *,
        currency: str = "USD",
        idempotency_key: str | None = None,
    ) -> Transaction:
        return await self.send(c.write_off(credit_instrument, amount, currency, idempotency_key))

    async def refund(
        self,
        transaction: str,
        amount: int | None = None,
        *,
        currency: str = "USD",
        idempotency_key: str | None = None,
    ) -> Transaction:
        return await self.send(c.refund(transaction, amount, currency, idempotency_key))

    async def cancel_token(self, token_id: str, *, idempotency_key: str | None = None) -> Token:
        return await self.send(c.cancel_token(token_id, idempotency_key))

    async def create_authorization_session(
        self,
        kind: Literal["prepaid", "postpaid"],
        return_url: str,
        *,
        funding_amount: int | None = None,
        credit_limit: int | None = None,
        global_amount_limit: int | None = None,
        min_charge: int | None = None,
        max_charge: int | None = None,
        currency: str = "USD",
        payment_reason: str | None = None,
        payment_methods: Sequence[str] | None = None,
        valid_until: int | None = None,
        idempotency_key: str | None = None,
        **more: Any,
    ) -> AuthorizationSession:
        amounts = {
            "funding_amount": funding_amount,
            "credit_limit": credit_limit,
            "global_amount_limit": global_amount_limit,
            "min_charge": min_charge,
            "max_charge": max_charge,
        }
        more |= {
            "payment_reason": payment_reason,
            "payment_methods": c.methods(payment_methods),
            "valid_until": valid_until,
        }
        return await self.send(
            c.authorization_session(kind, return_url, amounts, currency, more, idempotency_key)
        )

    # -- reads ---------------------------------------------------------------------------

    async def get_authorization_session(self, session_id: str) -> AuthorizationSession:
        return await self.send(c.get_authorization_session(session_id))

    async def get_transaction(self, transaction_id: str) -> Transaction:
        return await self.send(c.get_transaction(transaction_id))

    async def get_token(self, token_id: str) -> Token:
        return await self.send(c.get_token(token_id))

    async def get_instrument(self, instrument_id: str) -> Instrument:
        return await self.send(c.get_instrument(instrument_id))

    async def prepaid_balance(self, instrument_id: str) -> InstrumentBalance:
        return await self.send(c.prepaid_balance(instrument_id))

    async def debt_balance(self, instrument_id: str) -> InstrumentBalance:
        return await self.send(c.debt_balance(instrument_id))

    async def prepaid_liability(self) -> MerchantBalance:
        return await self.send(c.merchant_balance("prepaid_liability"))

    async def outstanding_debt(self) -> MerchantBalance:
        return await self.send(c.merchant_balance("outstanding_debt"))

    async def list_transactions(self, **filters: str | int | None) -> TransactionList:
        """One page (``limit``, ``starting_after``, ``operation``, ``status``,
        ``created_gte``, ``created_lt``)."""
        return await self.send(c.list_transactions(filters))

    def iter_transactions(self, **filters: str | int | None) -> AsyncIterator[Transaction]:
        """Every transaction the filters select, newest first, page after page."""
        return self._every(c.list_transactions(filters))

    async def list_instruments(self, **filters: str | int | None) -> InstrumentList:
        """One page (``limit``, ``starting_after``, ``kind``)."""
        return await self.send(c.list_instruments(filters))

    def iter_instruments(self, **filters: str | int | None) -> AsyncIterator[Instrument]:
        """Every instrument of the merchant's the filters select, page after page."""
        return self._every(c.list_instruments(filters))

    async def _every(self, first: Call[Page[Item]]) -> AsyncIterator[Item]:
        call: Call[Page[Item]] | None = first
        while call is not None:
            page = await self.send(call)
            for item in page["data"]:
                yield item
            call = c.next_page(call, page)
