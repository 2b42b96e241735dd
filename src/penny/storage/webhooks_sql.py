"""SQL for events and webhook endpoints (tables ``events`` and ``webhook_endpoints``, migration
0010); deliveries are ``ipn_notifications`` rows of kind ``webhook`` (:mod:`.ipn_sql`).

* :func:`insert_events` and :func:`endpoints_of` run inside the payments transaction (the
  outbox write, :class:`penny.webhooks.events.EventOutbox`);
* :func:`delivery_material` gives the delivering process the bodies and sealed secrets of the
  deliveries it claimed;
* the rest serve the API and ``penny webhooks``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, delete, insert, select, update

from penny.storage import schema

events = schema.events
endpoints = schema.webhook_endpoints
notifications = schema.ipn_notifications
attempts = schema.ipn_attempts

#: ``ipn_notifications.kind`` of a webhook delivery.
WEBHOOK: Final = "webhook"


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


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        account_id=row.account_id,
        url=row.url,
        sealed_secret=bytes(row.secret),
        event_types=tuple(json.loads(row.event_types)),
        enabled=bool(row.enabled),
        description=row.description,
        created_at=row.created_at,
    )


# -- the outbox write ---------------------------------------------------------------------------


def insert_events(conn: Connection, new: Sequence[StoredEvent]) -> None:
    if not new:
        return
    conn.execute(
        insert(events),
        [
            {
                "id": e.id,
                "account_id": e.account_id,
                "type": e.type,
                "subject_id": e.subject_id,
                "created_at": e.created_at,
                "body": e.body,
            }
            for e in new
        ],
    )


def endpoints_of(conn: Connection, account_ids: Collection[str]) -> list[Endpoint]:
    """The enabled endpoints of these accounts, oldest first."""
    if not account_ids:
        return []
    query = (
        select(endpoints)
        .where(endpoints.c.account_id.in_(sorted(account_ids)))
        .where(endpoints.c.enabled.is_(True))
        .order_by(endpoints.c.created_at, endpoints.c.id)
    )
    return [_endpoint(row) for row in conn.execute(query)]


# -- delivery -------------------------------------------------------------------------------------


def delivery_material(
    conn: Connection, endpoint_ids: Collection[str], event_ids: Collection[str]
) -> tuple[dict[str, Endpoint], dict[str, bytes]]:
    """The endpoints (by id) and event bodies (by id) that claimed deliveries need."""
    found = conn.execute(select(endpoints).where(endpoints.c.id.in_(sorted(endpoint_ids))))
    by_id = {row.id: _endpoint(row) for row in found}
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
    return None if row is None else _endpoint(row)


def list_endpoints(conn: Connection, account_id: str | None) -> list[Endpoint]:
    """Every endpoint (of one account, unless None), oldest first."""
    query = select(endpoints).order_by(endpoints.c.created_at, endpoints.c.id)
    if account_id is not None:
        query = query.where(endpoints.c.account_id == account_id)
    return [_endpoint(row) for row in conn.execute(query)]


def delete_endpoint(conn: Connection, endpoint_id: str) -> bool:
    return conn.execute(delete(endpoints).where(endpoints.c.id == endpoint_id)).rowcount == 1


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
