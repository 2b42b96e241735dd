"""Keyset pages, newest first: the one ordering the account site's paged lists use (its
transactions, a merchant's instruments and tokens, its IPN deliveries).

A page continues after a position ``(time, id)`` (the last row of the previous page): the rows
strictly older in the order ``time DESC, id DESC``, so no row shows twice or goes missing when
rows share a time, and a deep page costs what the first does (an index range scan where the
list has an index on ``(owner, time, id)``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, tuple_
from sqlalchemy.sql import Select

S = TypeVar("S", bound=Select[Any])


def newest_first(
    query: S,
    at: ColumnElement[Any],
    item_id: ColumnElement[Any],
    after: tuple[int, str] | None,
    limit: int,
) -> S:
    """``query`` ordered newest first by ``(at, item_id)``, after ``after``, ``limit`` rows."""
    if after is not None:
        query = query.where(tuple_(at, item_id) < tuple_(*after))
    return query.order_by(at.desc(), item_id.desc()).limit(limit)
