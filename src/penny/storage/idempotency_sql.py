"""The JSON API's stored responses by idempotency key (table ``api_idempotency_keys``,
migration 0008): load a batch's keys, insert new ones, purge old ones."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    delete,
    insert,
    or_,
    select,
)

metadata = MetaData()

idempotency_keys = Table(
    "api_idempotency_keys",
    metadata,
    Column("caller_id", String(32), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first response to a request with an idempotency key."""

    caller_id: str
    key: str
    request_hash: str
    status: int
    body: bytes
    created_at: int


def load(
    conn: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], StoredResponse]:
    """The stored responses of ``(caller_id, key)`` pairs, those that have one."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    table = idempotency_keys.c
    query = select(idempotency_keys).where(
        or_(*(and_(table.caller_id == caller, table.key == key) for caller, key in wanted))
    )
    found: dict[tuple[str, str], StoredResponse] = {}
    for row in conn.execute(query):
        stored = StoredResponse(
            row.caller_id,
            row.key,
            row.request_hash,
            int(row.status),
            bytes(row.body),
            int(row.created_at),
        )
        found[(stored.caller_id, stored.key)] = stored
    return found


def insert_all(conn: Connection, rows: Sequence[StoredResponse]) -> None:
    """Remember responses (a key already taken fails the transaction, which is re-run)."""
    if rows:
        conn.execute(
            insert(idempotency_keys),
            [
                {
                    "caller_id": r.caller_id,
                    "key": r.key,
                    "request_hash": r.request_hash,
                    "status": r.status,
                    "body": r.body,
                    "created_at": r.created_at,
                }
                for r in rows
            ],
        )


def purge(conn: Connection, before: int) -> int:
    """Forget responses stored before ``before`` (microseconds); returns how many."""
    result = conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < before))
    return int(result.rowcount or 0)
