"""SQL for the Co-Branded UI (tables made by migration 0005): browser sessions, pipelines and
failed sign-ins. Every function takes the connection of a transaction the caller opened."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TypeVar

from sqlalchemy import (
    Column,
    Connection,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)

from penny.storage import schema

sessions = schema.cbui_sessions
pipelines = schema.cbui_pipelines
signin_failures = schema.cbui_signin_failures

_Row = TypeVar("_Row", "SessionRow", "PipelineRow")

OPEN = "open"
FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class SessionRow:
    id_hash: str
    party_id: str | None
    csrf_token: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class PipelineRow:
    id: str
    session_hash: str
    caller_id: str
    pipeline_name: str
    params: str
    payment_method_id: str | None
    state: str
    result_url: str | None
    expires_at: int


# -- sessions ------------------------------------------------------------------------------


def _insert(conn: Connection, table: Table, row: SessionRow | PipelineRow, now: int) -> None:
    """Insert ``row`` (its fields are the table's columns) as created ``now``."""
    conn.execute(insert(table).values(**asdict(row), created_at=now))


def _load_live(
    conn: Connection, row_type: type[_Row], key: Column[str], value: str, now: int
) -> _Row | None:
    """The row of ``key``'s table whose key is ``value``, unless it is unknown or expired."""
    table = key.table
    row = conn.execute(select(table).where(key == value, table.c.expires_at > now)).first()
    if row is None:
        return None
    return row_type(*(getattr(row, f.name) for f in fields(row_type)))


def insert_session(conn: Connection, row: SessionRow, now: int) -> None:
    _insert(conn, sessions, row, now)


def load_session(conn: Connection, id_hash: str, now: int) -> SessionRow | None:
    """The session, unless it is unknown or expired."""
    return _load_live(conn, SessionRow, sessions.c.id_hash, id_hash, now)


def sign_in_session(
    conn: Connection, old_hash: str, new: SessionRow, now: int, party_id: str | None
) -> None:
    """Replace a session by a new one (new id and CSRF token) for ``party_id``; the pipelines of
    the old one move to the new one (a signed-in browser never keeps its anonymous id)."""
    conn.execute(delete(sessions).where(sessions.c.id_hash == old_hash))
    insert_session(conn, SessionRow(new.id_hash, party_id, new.csrf_token, new.expires_at), now)
    conn.execute(
        update(pipelines)
        .where(pipelines.c.session_hash == old_hash)
        .values(session_hash=new.id_hash)
    )


def delete_expired(conn: Connection, now: int) -> None:
    conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
    conn.execute(delete(pipelines).where(pipelines.c.expires_at <= now))


# -- pipelines -----------------------------------------------------------------------------


def insert_pipeline(conn: Connection, row: PipelineRow, now: int) -> None:
    _insert(conn, pipelines, row, now)


def load_pipeline(conn: Connection, pipeline_id: str, now: int) -> PipelineRow | None:
    return _load_live(conn, PipelineRow, pipelines.c.id, pipeline_id, now)


def choose_method(conn: Connection, pipeline_id: str, method_id: str) -> None:
    conn.execute(
        update(pipelines)
        .where(pipelines.c.id == pipeline_id, pipelines.c.state == OPEN)
        .values(payment_method_id=method_id)
    )


def finish_pipeline(conn: Connection, pipeline_id: str, result_url: str) -> bool:
    """Mark an open pipeline finished with its signed return URL; False if it was not open."""
    done = conn.execute(
        update(pipelines)
        .where(pipelines.c.id == pipeline_id, pipelines.c.state == OPEN)
        .values(state=FINISHED, result_url=result_url)
    )
    return done.rowcount == 1


# -- sign-in failures ----------------------------------------------------------------------


def record_failure(conn: Connection, subjects: list[str], now: int) -> None:
    conn.execute(insert(signin_failures), [{"subject": s, "at": now} for s in subjects])


def failures_since(conn: Connection, subject: str, since: int) -> int:
    count = conn.execute(
        select(func.count())
        .select_from(signin_failures)
        .where(signin_failures.c.subject == subject, signin_failures.c.at > since)
    ).scalar_one()
    return int(count)


def prune_failures(conn: Connection, before: int) -> None:
    conn.execute(delete(signin_failures).where(signin_failures.c.at <= before))
