"""SQL for Penny's outbound signing keys (table ``signing_keys``, migration 0004)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    insert,
    select,
)

from penny.storage import schema

signing_keys = schema.signing_keys

CURRENT = "current"


@dataclass(frozen=True, slots=True)
class StoredKey:
    key_id: str
    current: bool
    sealed_private_key: bytes
    certificate_pem: str


def load_keys(conn: Connection) -> list[StoredKey]:
    """Every signing key, the current one first."""
    rows = conn.execute(select(signing_keys).order_by(signing_keys.c.created_at.desc())).all()
    keys = [
        StoredKey(row.key_id, row.slot == CURRENT, bytes(row.private_key), row.certificate_pem)
        for row in rows
    ]
    return sorted(keys, key=lambda key: not key.current)


def insert_current_key(conn: Connection, key: StoredKey, created_at: int) -> None:
    """Store ``key`` as the current one (fails on the unique slot if another process won)."""
    conn.execute(
        insert(signing_keys).values(
            key_id=key.key_id,
            slot=CURRENT,
            private_key=key.sealed_private_key,
            certificate_pem=key.certificate_pem,
            created_at=created_at,
        )
    )
