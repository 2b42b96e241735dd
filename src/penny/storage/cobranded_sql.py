"""SQL for the Co-Branded UI (tables made by migration 0005): browser sessions, pipelines and
failed sign-ins. Every function takes the connection of a transaction the caller opened."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Connection,
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


def insert_session(conn: Connection, row: SessionRow, now: int) -> None:
    conn.execute(
        insert(sessions).values(
            id_hash=row.id_hash,
            party_id=row.party_id,
            csrf_token=row.csrf_token,
            created_at=now,
            expires_at=row.expires_at,
        )
    )


def load_session(conn: Connection, id_hash: str, now: int) -> SessionRow | None:
    """The session, unless it is unknown or expired."""
    row = conn.execute(
        select(sessions).where(sessions.c.id_hash == id_hash, sessions.c.expires_at > now)
    ).first()
    if row is None:
        return None
    return SessionRow(row.id_hash, row.party_id, row.csrf_token, row.expires_at)


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
    conn.execute(
        insert(pipelines).values(
            id=row.id,
            session_hash=row.session_hash,
            caller_id=row.caller_id,
            pipeline_name=row.pipeline_name,
            params=row.params,
            payment_method_id=row.payment_method_id,
            state=row.state,
            result_url=row.result_url,
            created_at=now,
            expires_at=row.expires_at,
        )
    )


def load_pipeline(conn: Connection, pipeline_id: str, now: int) -> PipelineRow | None:
    row = conn.execute(
        select(pipelines).where(pipelines.c.id == pipeline_id, pipelines.c.expires_at > now)
    ).first()
    if row is None:
        return None
    return PipelineRow(
        row.id,
        row.session_hash,
        row.caller_id,
        row.pipeline_name,
        row.params,
        row.payment_method_id,
        row.state,
        row.result_url,
        row.expires_at,
    )


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
