"""The JSON API's stored responses by idempotency key (table ``api_idempotency_keys``,
migration 0009, declared in :mod:`penny.storage.schema`): load a batch's keys, insert new
ones, purge old ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, delete

from penny.storage import driver, schema

idempotency_keys = schema.api_idempotency_keys


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first response to a request with an idempotency key."""

    caller_id: str
    key: str
    request_hash: str
    status: int
    body: bytes
    created_at: int


_SELECT: Final = (
    'SELECT caller_id, "key", request_hash, status, body, created_at'
    " FROM api_idempotency_keys WHERE "
)
_INSERT: Final = (
    'INSERT INTO api_idempotency_keys ("key", caller_id, request_hash, status, body, created_at)'
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def load(
    conn: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], StoredResponse]:
    """The stored responses of ``(caller_id, key)`` pairs, those that have one: one statement
    on the driver's cursor (the batch's hot path, like :mod:`penny.storage.driver`'s), by key
    (the primary key's first column), the callers checked here."""
    wanted = set(keys)
    if not wanted:
        return {}
    postgresql = driver.is_postgresql(conn)
    names = sorted({key for _caller, key in wanted})
    rows = driver.fetch_all(
        conn,
        _SELECT + driver.in_clause(postgresql, '"key"'),
        (driver.bound_list(postgresql, names),),
    )
    found: dict[tuple[str, str], StoredResponse] = {}
    for caller, key, request_hash, status, body, created_at in rows:
        if (caller, key) in wanted:
            stored = StoredResponse(
                caller, key, request_hash, int(status), bytes(body), int(created_at)
            )
            found[(caller, key)] = stored
    return found


def insert_all(conn: Connection, rows: Sequence[StoredResponse]) -> None:
    """Remember responses (a key already taken fails the transaction, which is re-run)."""
    driver.execute_many(
        conn,
        _INSERT,
        [(r.key, r.caller_id, r.request_hash, r.status, r.body, r.created_at) for r in rows],
    )


def purge(conn: Connection, before: int) -> int:
    """Forget responses stored before ``before`` (microseconds); returns how many."""
    result = conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < before))
    return int(result.rowcount or 0)
