"""Instruments as a resource: ``GET /v1/instruments`` (the merchant's, newest first, a cursor)
and ``GET /v1/instruments/{id}``: limits, totals, validity and the balance (prepaid) or debt
(credit) read from the ledger in one statement for the whole page."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Final

from penny import epoch
from penny.api import models as m
from penny.api.errors import ApiFault, invalid_parameter
from penny.api.resources import amount_of, page_start, paged, unknown_parameter
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import Instrument, InstrumentKind
from penny.services.payment_queries import BalanceQuery, PaymentQueries, TwoBalances
from penny.storage import payments_sql as sql

#: The query parameters GET /v1/instruments takes.
LIST_PARAMETERS: Final = ("limit", "starting_after", "kind")


def _amount(minor: int | None, currency: str) -> m.Amount | None:
    return None if minor is None else amount_of(minor, currency)


def instrument_out(found: Instrument, balance: TwoBalances, now: int) -> m.Instrument:
    cur = found.currency
    prepaid = found.kind is InstrumentKind.prepaid
    held = amount_of(balance.main.minor, cur)
    until = found.valid_until
    return m.Instrument(
        id=found.id,
        kind="prepaid" if prepaid else "credit",
        buyer=found.sender_id,
        merchant=found.recipient_id,
        balance=held if prepaid else None,
        funded=amount_of(found.funded_total, cur) if prepaid else None,
        funding_limit=_amount(found.funding_limit, cur) if prepaid else None,
        debt=None if prepaid else held,
        credit_limit=None if prepaid else _amount(found.credit_limit, cur),
        charged=None if prepaid else amount_of(found.charged_total, cur),
        global_amount_limit=None if prepaid else _amount(found.global_amount_limit, cur),
        valid_from=epoch.to_datetime(found.valid_from),
        valid_until=None if until is None else epoch.to_datetime(until),
        valid=found.is_valid_at(now),
        payment_reason=found.payment_reason,
        created_at=epoch.to_datetime(found.created_at),
    )


def _render(
    payments: PaymentQueries, caller_id: str, page: Sequence[Instrument]
) -> list[m.Instrument]:
    queries = [BalanceQuery(found.kind, caller_id, found.id) for found in page]
    balances = payments.balances(queries) if queries else []
    now = payments.clock.now_us()
    out = []
    for found, balance in zip(page, balances, strict=True):
        if isinstance(balance, PaymentsError):  # not the caller's (cannot happen for a page)
            raise balance
        out.append(instrument_out(found, balance, now))
    return out


def get_instrument(payments: PaymentQueries, caller_id: str, instrument_id: str) -> m.Instrument:
    """One instrument of the caller's (as its merchant or its buyer)."""
    with payments.database.read() as conn:
        found = sql.load_instruments(conn, [instrument_id]).get(instrument_id)
    if found is None or caller_id not in (found.sender_id, found.recipient_id):
        raise PaymentsError(Refusal.unknown_instrument)
    return _render(payments, caller_id, [found])[0]


def encode_cursor(found: Instrument) -> str:
    raw = f"{found.created_at}:{found.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: GET /v1/instruments's query, checked: ``limit``, the cursor (None: the first page), ``kind``.
InstrumentQuery = tuple[int, tuple[int, str] | None, InstrumentKind | None]


def list_query(query: Mapping[str, str]) -> InstrumentQuery | ApiFault:
    """GET /v1/instruments's query parameters (see LIST_PARAMETERS), or the first at fault."""
    start = unknown_parameter(query, LIST_PARAMETERS) or page_start(query)
    if isinstance(start, ApiFault):
        return start
    limit, after = start
    kind_text = query.get("kind")
    kind = None
    if kind_text is not None:
        if kind_text not in ("prepaid", "credit"):
            return invalid_parameter("kind", "kind must be one of: prepaid, credit.")
        kind = InstrumentKind(kind_text)
    return limit, after, kind


def list_instruments(
    payments: PaymentQueries, caller_id: str, chosen: InstrumentQuery
) -> m.InstrumentList:
    """A page of the instruments the caller is the merchant of, newest first."""
    limit, after, kind = chosen
    with payments.database.read() as conn:
        page = sql.page_of_instruments(conn, caller_id, after=after, kind=kind, limit=limit + 1)
    kept, more, cursor = paged(page, limit, encode_cursor)
    data = _render(payments, caller_id, kept)
    return m.InstrumentList(data=data, has_more=more, next_cursor=cursor)
