"""SQL for events and webhook endpoints (tables ``events`` and ``webhook_endpoints``, migration
0017); deliveries are ``ipn_notifications`` rows of kind ``webhook`` (:mod:`.ipn_sql`).

* :func:`endpoints_of` and :func:`insert_events` run inside the payments transaction (the
  outbox write, :class:`penny.webhooks.events.EventOutbox`), on the driver's cursor as the
  batch's other hot statements do (:mod:`.driver`);
* :func:`delivery_material` gives the delivering process the bodies and sealed secrets of the
  deliveries it claimed;
* the rest serve the API and ``penny webhooks``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, delete, insert, select, update

from penny.storage import driver, schema

events = schema.events
endpoints = schema.webhook_endpoints
notifications = schema.ipn_notifications
attempts = schema.ipn_attempts

#: ``ipn_notifications.kind`` of a webhook delivery.
WEBHOOK: Final = "webhook"

_INSERT_EVENT: Final = (
    "INSERT INTO events (id, account_id, type, subject_id, created_at, body) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_ENDPOINT_NAMES: Final = tuple(c.name for c in endpoints.c)
_ENDPOINTS_OF: Final = (
    f"SELECT {', '.join(_ENDPOINT_NAMES)} FROM webhook_endpoints WHERE {{where}} "
    "ORDER BY created_at, id"
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str
    account_id: str
    type: str
    subject_id: str
    created_at: int
    body: bytes
    #: Its place in the order events were written (assigned by the store).
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    account_id: str
    url: str
    #: The ``whsec_`` secret sealed with the server key (the endpoint id bound in).
    sealed_secret: bytes
    #: The event types it takes; empty: every type.
    event_types: tuple[str, ...]
    enabled: bool
    description: str
    created_at: int

    def takes(self, event_type: str) -> bool:
        return self.enabled and (not self.event_types or event_type in self.event_types)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A webhook delivery (an outbox row) and its last attempt's HTTP status."""

    id: str
    event_id: str
    endpoint_id: str
    url: str
    state: str
    attempts: int
    last_http_status: int | None
    last_error: str | None
    created_at: int
    next_attempt_at: int | None
    delivered_at: int | None


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        row.id, row.account_id, row.type, row.subject_id, row.created_at, bytes(row.body), row.seq
    )


def _endpoint(row: Mapping[Any, Any]) -> Endpoint:
    return Endpoint(
        id=row["id"],
        account_id=row["account_id"],
        url=row["url"],
        sealed_secret=bytes(row["secret"]),
        event_types=tuple(json.loads(row["event_types"])),
        enabled=bool(row["enabled"]),
        description=row["description"],
        created_at=row["created_at"],
    )


# -- the outbox write ---------------------------------------------------------------------------


def insert_events(conn: Connection, new: Sequence[StoredEvent]) -> None:
    """Store ``new`` events (on the driver's cursor: this runs in every payments batch)."""
    rows = [(e.id, e.account_id, e.type, e.subject_id, e.created_at, e.body) for e in new]
    driver.execute_many(conn, _INSERT_EVENT, rows)


def endpoints_of(conn: Connection, account_ids: Collection[str]) -> list[Endpoint]:
    """The endpoints of these accounts, enabled or not, oldest first (on the driver's cursor:
    this runs in every payments batch)."""
    if not account_ids:
        return []
    postgresql = driver.is_postgresql(conn)
    sql = _ENDPOINTS_OF.format(where=driver.in_clause(postgresql, "account_id"))
    rows = driver.fetch_all(conn, sql, (driver.bound_list(postgresql, sorted(account_ids)),))
    return [_endpoint(dict(zip(_ENDPOINT_NAMES, row, strict=True))) for row in rows]


# -- delivery -------------------------------------------------------------------------------------


def delivery_material(
    conn: Connection, endpoint_ids: Collection[str], event_ids: Collection[str]
) -> tuple[dict[str, Endpoint], dict[str, bytes]]:
    """The endpoints (by id) and event bodies (by id) that claimed deliveries need."""
    found = conn.execute(select(endpoints).where(endpoints.c.id.in_(sorted(endpoint_ids))))
    by_id = {row.id: _endpoint(row._mapping) for row in found}
    rows = conn.execute(
        select(events.c.id, events.c.body).where(events.c.id.in_(sorted(event_ids)))
    )
    return by_id, {row.id: bytes(row.body) for row in rows}


# -- the API and the CLI --------------------------------------------------------------------------


def insert_endpoint(conn: Connection, endpoint: Endpoint) -> None:
    conn.execute(
        insert(endpoints).values(
            id=endpoint.id,
            account_id=endpoint.account_id,
            url=endpoint.url,
            secret=endpoint.sealed_secret,
            event_types=json.dumps(list(endpoint.event_types)),
            enabled=endpoint.enabled,
            description=endpoint.description,
            created_at=endpoint.created_at,
        )
    )


def load_endpoint(conn: Connection, account_id: str | None, endpoint_id: str) -> Endpoint | None:
    """The endpoint of that id (of that account, unless ``account_id`` is None)."""
    query = select(endpoints).where(endpoints.c.id == endpoint_id)
    if account_id is not None:
        query = query.where(endpoints.c.account_id == account_id)
    row = conn.execute(query).first()
    return None if row is None else _endpoint(row._mapping)


def list_endpoints(conn: Connection, account_id: str | None) -> list[Endpoint]:
    """Every endpoint (of one account, unless None), oldest first."""
    query = select(endpoints).order_by(endpoints.c.created_at, endpoints.c.id)
    if account_id is not None:
        query = query.where(endpoints.c.account_id == account_id)
    return [_endpoint(row._mapping) for row in conn.execute(query)]


def delete_endpoint(conn: Connection, endpoint_id: str) -> bool:
    return conn.execute(delete(endpoints).where(endpoints.c.id == endpoint_id)).rowcount == 1


def set_enabled(conn: Connection, endpoint_id: str, enabled: bool) -> bool:
    query = update(endpoints).where(endpoints.c.id == endpoint_id).values(enabled=enabled)
    return conn.execute(query).rowcount == 1


def set_secret(conn: Connection, endpoint_id: str, sealed: bytes) -> bool:
    query = update(endpoints).where(endpoints.c.id == endpoint_id).values(secret=sealed)
    return conn.execute(query).rowcount == 1


def load_event(conn: Connection, account_id: str, event_id: str) -> StoredEvent | None:
    query = select(events).where(events.c.id == event_id).where(events.c.account_id == account_id)
    row = conn.execute(query).first()
    return None if row is None else _event(row)


def page_of_events(
    conn: Connection,
    account_id: str,
    *,
    after: int | None,
    event_type: str | None,
    limit: int,
) -> list[StoredEvent]:
    """The account's events, newest first, after the one at ``seq`` ``after``."""
    query = select(events).where(events.c.account_id == account_id)
    if event_type is not None:
        query = query.where(events.c.type == event_type)
    if after is not None:
        query = query.where(events.c.seq < after)
    query = query.order_by(events.c.seq.desc()).limit(limit)
    return [_event(row) for row in conn.execute(query)]


def deliveries_of(conn: Connection, account_id: str, event_id: str) -> list[Delivery]:
    """The deliveries of one event, oldest first, with each one's last attempt's status."""
    rows = conn.execute(
        select(notifications)
        .where(notifications.c.subject_id == event_id)
        .where(notifications.c.account_id == account_id)
        .where(notifications.c.kind == WEBHOOK)
        .order_by(notifications.c.created_at, notifications.c.id)
    ).all()
    statuses: dict[str, int | None] = {}
    if rows:
        tried = conn.execute(
            select(attempts.c.notification_id, attempts.c.http_status)
            .where(attempts.c.notification_id.in_([row.id for row in rows]))
            .order_by(attempts.c.number)
        )
        statuses = {row.notification_id: row.http_status for row in tried}
    return [
        Delivery(
            id=row.id,
            event_id=row.subject_id,
            endpoint_id=dict(json.loads(row.params)).get("endpoint", ""),
            url=row.url,
            state=row.state,
            attempts=row.attempts,
            last_http_status=statuses.get(row.id),
            last_error=row.last_error,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
        )
        for row in rows
    ]
