"""``Penny``: the synchronous client."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import httpx

from penny_client import _calls as c
from penny_client._core import (
    Call,
    PennyConnectionError,
    Retry,
    client_headers,
    result,
    settings,
)
from penny_client.models import (
    AuthorizationSession,
    Instrument,
    InstrumentBalance,
    InstrumentList,
    MerchantBalance,
    Token,
    Transaction,
    TransactionList,
)


class Penny:
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or Retry()
        api_key, base_url = settings(api_key, base_url)
        self._http = httpx.Client(
            base_url=base_url,
            headers=client_headers(api_key),
            timeout=timeout,
            transport=transport,
            trust_env=False,
        )

    def __enter__(self) -> Penny:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call) -> Any:
        """Send one call, retrying it (same key) while the policy allows."""
        attempt = 0
        while True:
            try:
                response: httpx.Response | None = self._http.request(
                    call.method, call.path, json=call.body, params=call.params,
                    headers=call.headers(),
                )  # fmt: skip
            except httpx.TransportError as error:
                response, failure = None, error
            if not self.retry.again(attempt, response):
                if response is None:
                    raise PennyConnectionError(f"{call.method} {call.path}: {failure}")
                return result(response)
            time.sleep(self.retry.delay(attempt))
            attempt += 1

    # -- money ---------------------------------------------------------------------------

    def pay(
        self,
        sender_token: str,
        amount: int,
        *,
        currency: str = "USD",
        recipient_token: str | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Transaction:
        call = c.pay(sender_token, amount, currency, recipient_token, description, idempotency_key)
        found: Transaction = self.send(call)
        return found

    def fund(
        self,
        funding_token: str,
        prepaid_instrument: str,
        amount: int,
        *,
        currency: str = "USD",
        idempotency_key: str | None = None,
    ) -> Transaction:
        call = c.fund(funding_token, prepaid_instrument, amount, currency, idempotency_key)
        found: Transaction = self.send(call)
        return found

    def settle(
        self,
        settlement_token: str,
        credit_instrument: str,
        amount: int,
        *,
        currency: str = "USD",
        idempotency_key: str | None = None,
    ) -> Transaction:
        call = c.settle(settlement_token, credit_instrument, amount, currency, idempotency_key)
        found: Transaction = self.send(call)
        return found

    def write_off(
        self,
        credit_instrument: str,
        amount: int,
        *,
        currency: str = "USD",
        idempotency_key: str | None = None,
    ) -> Transaction:
        found: Transaction = self.send(
            c.write_off(credit_instrument, amount, currency, idempotency_key)
        )
        return found

    def refund(
        self,
        transaction: str,
        amount: int | None = None,
        *,
        currency: str = "USD",
        idempotency_key: str | None = None,
    ) -> Transaction:
        found: Transaction = self.send(c.refund(transaction, amount, currency, idempotency_key))
        return found

    def cancel_token(self, token_id: str, *, idempotency_key: str | None = None) -> Token:
        found: Token = self.send(c.cancel_token(token_id, idempotency_key))
        return found

    def create_authorization_session(
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
        call = c.authorization_session(kind, return_url, amounts, currency, more, idempotency_key)
        found: AuthorizationSession = self.send(call)
        return found

    # -- reads ---------------------------------------------------------------------------

    def get_authorization_session(self, session_id: str) -> AuthorizationSession:
        found: AuthorizationSession = self.send(c.get(f"/v1/authorization_sessions/{session_id}"))
        return found

    def get_transaction(self, transaction_id: str) -> Transaction:
        found: Transaction = self.send(c.get(f"/v1/transactions/{transaction_id}"))
        return found

    def get_token(self, token_id: str) -> Token:
        found: Token = self.send(c.get(f"/v1/tokens/{token_id}"))
        return found

    def get_instrument(self, instrument_id: str) -> Instrument:
        found: Instrument = self.send(c.get(f"/v1/instruments/{instrument_id}"))
        return found

    def prepaid_balance(self, instrument_id: str) -> InstrumentBalance:
        path = f"/v1/prepaid_instruments/{instrument_id}/balance"
        found: InstrumentBalance = self.send(c.get(path))
        return found

    def debt_balance(self, instrument_id: str) -> InstrumentBalance:
        path = f"/v1/credit_instruments/{instrument_id}/balance"
        found: InstrumentBalance = self.send(c.get(path))
        return found

    def prepaid_liability(self) -> MerchantBalance:
        found: MerchantBalance = self.send(c.get("/v1/balances/prepaid_liability"))
        return found

    def outstanding_debt(self) -> MerchantBalance:
        found: MerchantBalance = self.send(c.get("/v1/balances/outstanding_debt"))
        return found

    def list_transactions(self, **filters: str | int | None) -> TransactionList:
        """One page (``limit``, ``starting_after``, ``operation``, ``status``,
        ``created_gte``, ``created_lt``)."""
        found: TransactionList = self.send(c.get("/v1/transactions", **filters))
        return found

    def iter_transactions(self, **filters: str | int | None) -> Iterator[Transaction]:
        """Every transaction the filters select, newest first, page after page."""
        while True:
            page = self.list_transactions(**filters)
            yield from page["data"]
            if not page["has_more"]:
                return
            filters["starting_after"] = page["next_cursor"]

    def list_instruments(self, **filters: str | int | None) -> InstrumentList:
        """One page (``limit``, ``starting_after``, ``kind``)."""
        found: InstrumentList = self.send(c.get("/v1/instruments", **filters))
        return found

    def iter_instruments(self, **filters: str | int | None) -> Iterator[Instrument]:
        """Every instrument of the merchant's the filters select, page after page."""
        while True:
            page = self.list_instruments(**filters)
            yield from page["data"]
            if not page["has_more"]:
                return
            filters["starting_after"] = page["next_cursor"]
