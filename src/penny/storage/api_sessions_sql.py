"""The JSON API's authorization sessions (table ``api_authorization_sessions``, migration 0016,
declared in :mod:`penny.storage.schema`): insert one, load one of a caller's."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import Connection, and_, insert, select

from penny.storage import schema

sessions = schema.api_authorization_sessions


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A stored authorization session (``kind`` is ``prepaid`` or ``postpaid``)."""

    id: str
    caller_id: str
    kind: str
    url: str
    return_url: str
    sender_reference: str
    second_reference: str
    created_at: int


def insert_session(conn: Connection, row: SessionRow) -> None:
    conn.execute(insert(sessions).values(**asdict(row)))


def load_session(conn: Connection, caller_id: str, session_id: str) -> SessionRow | None:
    """The caller's session ``session_id``, or None (no such session, or another caller's)."""
    found = conn.execute(
        select(sessions).where(and_(sessions.c.id == session_id, sessions.c.caller_id == caller_id))
    ).first()
    return None if found is None else SessionRow(**found._mapping)
