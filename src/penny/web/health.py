"""``/healthz``: what this Penny process sees of its store, answered without blocking the loop.

200 with ``{"status": "ok", "version", "store", "schema"}`` when the store answers a read and,
on PostgreSQL, the server reached takes writes; then ``server`` (the address and port of the
PostgreSQL server the pool reached: with a multi-host URL, the primary of the moment) and
``role`` (``primary``) say which. 503 with ``{"status": "unavailable", "store", "reason"}``
otherwise: the store did not answer within :data:`HEALTH_TIMEOUT_MS` (a failover under way, a
server down), or the server reached is a standby (``role`` ``standby``: it cannot take
payments). A load balancer that routes on it stops sending requests to a process that could not
serve them, and sends them again once the process has reconnected on its own.

The check runs in a worker thread: connecting may wait for libpq's ``connect_timeout`` per host
while a primary is down, and the event loop keeps answering other requests meanwhile.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from penny import __version__
from penny.storage.database import Database, current_revision

#: How long the answer waits for the store before calling it unavailable (milliseconds).
HEALTH_TIMEOUT_MS: Final = 4_000
HTTP_OK: Final = 200
HTTP_UNAVAILABLE: Final = 503

_SERVER_SQL: Final = text(
    "SELECT coalesce(host(inet_server_addr()), 'local'), inet_server_port(), pg_is_in_recovery()"
)


@dataclass(frozen=True, slots=True)
class StoreState:
    """What one look at the store found."""

    schema: str | None
    server: str | None = None
    in_recovery: bool = False


def probe(database: Database) -> StoreState:
    """Read the schema revision and, on PostgreSQL, which server answered and its role
    (blocking; raises :class:`SQLAlchemyError` when the store does not answer)."""
    schema = current_revision(database)
    if not database.is_postgresql:
        return StoreState(schema)
    with database.read_engine.connect() as conn:
        host, port, in_recovery = conn.execute(_SERVER_SQL).one()
        conn.rollback()
    return StoreState(schema, f"{host}:{port}", bool(in_recovery))


def health_body(database: Database, state: StoreState | None, reason: str) -> dict[str, Any]:
    """The JSON document of an answer (``state`` None: the store did not answer)."""
    body: dict[str, Any] = {"version": __version__, "store": database.dialect}
    if state is not None:
        body["schema"] = state.schema
        if state.server is not None:
            body["server"] = state.server
            body["role"] = "standby" if state.in_recovery else "primary"
    if state is None or state.in_recovery:
        return {"status": "unavailable", "reason": reason, **body}
    return {"status": "ok", **body}


async def healthz(database: Database, timeout_ms: int = HEALTH_TIMEOUT_MS) -> JSONResponse:
    """The ``/healthz`` answer for ``database`` (see the module docstring)."""
    state: StoreState | None = None
    reason = "the server reached is a standby: it does not take writes"
    limit = timedelta(milliseconds=timeout_ms).total_seconds()
    try:
        state = await asyncio.wait_for(run_in_threadpool(probe, database), limit)
    except TimeoutError:
        reason = f"the store did not answer within {timeout_ms} ms"
    except SQLAlchemyError as exc:
        reason = f"the store does not answer: {type(getattr(exc, 'orig', None) or exc).__name__}"
    body = health_body(database, state, reason)
    return JSONResponse(body, status_code=HTTP_OK if body["status"] == "ok" else HTTP_UNAVAILABLE)
