"""The terms of SingleUse, MultiUse and Recurring sender tokens (``token_terms``, 0011).

One row per authorization token (:class:`penny.domain.model.TokenTerms`); the two usage limits
are columns ``usage_limit1_*`` and ``usage_limit2_*``. Loaded only where a token of those
kinds is shown or edited: a Pay needs none of it (its script says everything), so the
prepaid and postpaid Pay path reads nothing more than before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, insert, select, update

from penny.domain.model import AmountType, TokenTerms, UsageLimitTerm, UsageLimitType
from penny.storage.schema import token_terms

_LIMIT_SLOTS = (1, 2)


def _terms(row: Mapping[Any, Any]) -> TokenTerms:
    limits = tuple(
        UsageLimitTerm(
            UsageLimitType(row[f"usage_limit{n}_type"]),
            row[f"usage_limit{n}_value"],
            row[f"usage_limit{n}_period"],
        )
        for n in _LIMIT_SLOTS
        if row[f"usage_limit{n}_type"] is not None
    )
    amount_type = row["amount_type"]
    return TokenTerms(
        token_id=row["token_id"],
        transaction_amount=row["transaction_amount"],
        amount_type=None if amount_type is None else AmountType(amount_type),
        reserve=bool(row["reserve"]),
        recurring_period=row["recurring_period"],
        usage_limits=limits,
        old_token_id=row["old_token_id"],
    )


def _row(terms: TokenTerms) -> dict[str, Any]:
    assert len(terms.usage_limits) <= len(_LIMIT_SLOTS), "FPS pipelines take two usage limits"
    row: dict[str, Any] = {
        "token_id": terms.token_id,
        "transaction_amount": terms.transaction_amount,
        "amount_type": None if terms.amount_type is None else terms.amount_type.value,
        "reserve": terms.reserve,
        "recurring_period": terms.recurring_period,
        "old_token_id": terms.old_token_id,
    }
    for n in _LIMIT_SLOTS:
        limit = terms.usage_limits[n - 1] if n <= len(terms.usage_limits) else None
        row[f"usage_limit{n}_type"] = None if limit is None else limit.type.value
        row[f"usage_limit{n}_value"] = None if limit is None else limit.value
        row[f"usage_limit{n}_period"] = None if limit is None else limit.period
    return row


def insert_terms(conn: Connection, terms: TokenTerms) -> None:
    conn.execute(insert(token_terms).values(**_row(terms)))


def replace_terms(conn: Connection, terms: TokenTerms) -> None:
    """Store a token's edited terms (EditToken)."""
    row = _row(terms)
    del row["token_id"]
    conn.execute(update(token_terms).where(token_terms.c.token_id == terms.token_id).values(**row))


def load_terms(conn: Connection, token_ids: Iterable[str]) -> dict[str, TokenTerms]:
    wanted = sorted(set(token_ids))
    if not wanted:
        return {}
    rows = conn.execute(select(token_terms).where(token_terms.c.token_id.in_(wanted)))
    return {row.token_id: _terms(row._mapping) for row in rows}
