"""SQL for the IPN outbox (tables ``ipn_notifications`` and ``ipn_attempts``, migration 0006).

* :func:`insert_notifications` runs inside the payments transaction (the outbox write).
* :func:`claim_due` takes up to ``limit`` due notifications for one worker: on PostgreSQL with
  ``SELECT … FOR UPDATE SKIP LOCKED`` (so several processes never take the same row), on
  SQLite under the write lock ``BEGIN IMMEDIATE`` already holds. A claim moves the row's
  ``next_attempt_at`` to the end of the worker's lease and opens an attempt row; if the worker
  dies, the lease runs out and the row is due again (at-least-once).
* :func:`record_results` closes the attempts and moves each notification on: delivered,
  due again later, or failed.

Times are microseconds since the epoch on the delivering process's clock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Exists,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from penny.storage import schema
from penny.storage.keyset import newest_first

notifications = schema.ipn_notifications
_earlier = notifications.alias("earlier")
attempts = schema.ipn_attempts

PENDING: Final = "pending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
#: Outcome of an attempt still under way (or whose worker stopped: see ``interrupted``).
IN_FLIGHT: Final = "in_flight"
#: An attempt whose worker stopped before it finished (its lease ran out and it was re-claimed).
INTERRUPTED: Final = "interrupted"
MAX_ERROR: Final = 512


@dataclass(frozen=True, slots=True)
class NewNotification:
    id: str
    kind: str
    subject_id: str
    account_id: str
    url: str
    #: The unsigned parameters, in the order they are sent.
    params: tuple[tuple[str, str], ...]
    created_at: int
    #: Set for a notification that can never be sent (a URL that is not http(s)): it is
    #: stored as failed with this reason, visible and retryable after the cause is fixed.
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    kind: str
    subject_id: str
    account_id: str
    url: str
    params: tuple[tuple[str, str], ...]
    state: str
    created_at: int
    window_start: int
    next_attempt_at: int | None
    attempts: int
    delivered_at: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A notification a worker has claimed for one attempt."""

    id: str
    url: str
    params: tuple[tuple[str, str], ...]
    number: int
    claim: str
    window_start: int
    #: ``TransactionStatus``, ``TokenCancellation`` or ``webhook`` (:mod:`penny.webhooks`).
    kind: str = ""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How one attempt ended, and what the notification becomes."""

    claimed: Claimed
    finished_at: int
    duration_us: int
    http_status: int | None
    outcome: str
    error: str | None
    #: ``delivered``, ``pending`` (due again at ``next_attempt_at``) or ``failed``.
    state: str
    next_attempt_at: int | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    worker: str
    started_at: int
    finished_at: int | None
    duration_us: int | None
    http_status: int | None
    outcome: str
    error: str | None


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:MAX_ERROR]


def _params(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(name), str(value)) for name, value in json.loads(text))


_NOTIFICATION_FIELDS: Final = tuple(f.name for f in fields(Notification))


def _notification(row: Any) -> Notification:
    values = {name: getattr(row, name) for name in _NOTIFICATION_FIELDS}
    values["params"] = _params(row.params)
    return Notification(**values)


# -- the outbox write --------------------------------------------------------------------


def insert_notifications(conn: Connection, new: Sequence[NewNotification]) -> None:
    """Store ``new`` notifications (due at once, or failed when refused)."""
    if not new:
        return
    rows = [
        {
            "id": n.id,
            "kind": n.kind,
            "subject_id": n.subject_id,
            "account_id": n.account_id,
            "url": n.url,
            "params": json.dumps([list(pair) for pair in n.params], separators=(",", ":")),
            "state": PENDING if n.refused is None else FAILED,
            "created_at": n.created_at,
            "window_start": n.created_at,
            "next_attempt_at": n.created_at if n.refused is None else None,
            "attempts": 0,
            "claim": None,
            "delivered_at": None,
            "last_error": _clip(n.refused),
        }
        for n in new
    ]
    conn.execute(insert(notifications), rows)


# -- delivery ----------------------------------------------------------------------------


def next_due(conn: Connection) -> int | None:
    """When the earliest pending notification is due (a cheap read before claiming)."""
    value = conn.execute(select(func.min(notifications.c.next_attempt_at))).scalar()
    return None if value is None else int(value)


def _behind() -> Exists:
    """An earlier notification about the same subject (a transaction, a token) to the same URL
    is still pending: the later one waits, so a receiver gets one transaction's PENDING before
    its SUCCESS even when both are due at once (docs/ipn.md, "Order")."""
    n, earlier = notifications.c, _earlier.c
    return exists().where(
        earlier.subject_id == n.subject_id,
        earlier.url == n.url,
        earlier.state == PENDING,
        or_(
            earlier.created_at < n.created_at,
            and_(earlier.created_at == n.created_at, earlier.id < n.id),
        ),
    )


def claim_due(
    conn: Connection,
    *,
    now: int,
    limit: int,
    lease_until: int,
    worker: str,
    claim: str,
    skip_locked: bool,
) -> list[Claimed]:
    """Claim up to ``limit`` notifications due at ``now`` (oldest due first), each only once
    every earlier one about its subject to its URL is settled (:func:`_behind`)."""
    query = (
        select(notifications.c.id)
        .where(notifications.c.next_attempt_at <= now)
        .where(notifications.c.state == PENDING)
        .where(~_behind())
        .order_by(notifications.c.next_attempt_at)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    ids = [row.id for row in conn.execute(query)]
    if not ids:
        return []
    conn.execute(
        update(attempts)
        .where(attempts.c.notification_id.in_(ids))
        .where(attempts.c.outcome == IN_FLIGHT)
        .values(outcome=INTERRUPTED, error="the worker stopped before the attempt finished")
    )
    conn.execute(
        update(notifications)
        .where(notifications.c.id.in_(ids))
        .values(
            next_attempt_at=lease_until,
            attempts=notifications.c.attempts + 1,
            claim=claim,
        )
    )
    rows = conn.execute(
        select(
            notifications.c.id,
            notifications.c.url,
            notifications.c.params,
            notifications.c.attempts,
            notifications.c.window_start,
            notifications.c.kind,
        )
        .where(notifications.c.id.in_(ids))
        .order_by(notifications.c.next_attempt_at, notifications.c.id)
    ).all()
    claimed = [
        Claimed(
            row.id, row.url, _params(row.params), row.attempts, claim, row.window_start, row.kind
        )
        for row in rows
    ]
    _open_attempts(conn, claimed, worker=worker, now=now)
    return claimed


def _open_attempts(conn: Connection, claimed: list[Claimed], *, worker: str, now: int) -> None:
    """Record an in-flight attempt, started at ``now`` by ``worker``, for each claimed one."""
    conn.execute(
        insert(attempts),
        [
            {
                "notification_id": c.id,
                "number": c.number,
                "worker": worker[:64],
                "started_at": now,
                "finished_at": None,
                "duration_us": None,
                "http_status": None,
                "outcome": IN_FLIGHT,
                "error": None,
            }
            for c in claimed
        ],
    )


def record_results(conn: Connection, results: Sequence[AttemptResult]) -> None:
    """Close each attempt and move its notification on (three bulk statements).

    A delivery counts whenever it happened; a failed attempt only moves the notification if
    the claim is still the worker's (a worker whose lease ran out must not undo a newer one).
    """
    if not results:
        return
    conn.execute(
        update(attempts)
        .where(attempts.c.notification_id == bindparam("b_id"))
        .where(attempts.c.number == bindparam("b_number"))
        .values(
            finished_at=bindparam("b_finished_at"),
            duration_us=bindparam("b_duration_us"),
            http_status=bindparam("b_http_status"),
            outcome=bindparam("b_outcome"),
            error=bindparam("b_error"),
        ),
        [
            {
                "b_id": r.claimed.id,
                "b_number": r.claimed.number,
                "b_finished_at": r.finished_at,
                "b_duration_us": r.duration_us,
                "b_http_status": r.http_status,
                "b_outcome": r.outcome,
                "b_error": _clip(r.error),
            }
            for r in results
        ],
    )
    pending = and_(notifications.c.id == bindparam("b_id"), notifications.c.state == PENDING)
    delivered = [r for r in results if r.state == DELIVERED]
    if delivered:
        conn.execute(
            update(notifications)
            .where(pending)
            .values(
                state=DELIVERED,
                next_attempt_at=None,
                claim=None,
                delivered_at=bindparam("b_at"),
                last_error=None,
            ),
            [{"b_id": r.claimed.id, "b_at": r.finished_at} for r in delivered],
        )
    others = [r for r in results if r.state != DELIVERED]
    if others:
        conn.execute(
            update(notifications)
            .where(pending)
            .where(notifications.c.claim == bindparam("b_claim"))
            .values(
                state=bindparam("b_state"),
                next_attempt_at=bindparam("b_next"),
                claim=None,
                last_error=bindparam("b_error"),
            ),
            [
                {
                    "b_id": r.claimed.id,
                    "b_claim": r.claimed.claim,
                    "b_state": r.state,
                    "b_next": r.next_attempt_at if r.state == PENDING else None,
                    "b_error": _clip(r.error),
                }
                for r in others
            ],
        )


# -- operators ---------------------------------------------------------------------------


def load(conn: Connection, notification_id: str) -> Notification | None:
    row = conn.execute(select(notifications).where(notifications.c.id == notification_id)).first()
    return None if row is None else _notification(row)


def load_attempts(conn: Connection, notification_id: str) -> list[Attempt]:
    rows = conn.execute(
        select(attempts)
        .where(attempts.c.notification_id == notification_id)
        .order_by(attempts.c.number)
    )
    return [
        Attempt(
            row.number,
            row.worker,
            row.started_at,
            row.finished_at,
            row.duration_us,
            row.http_status,
            row.outcome,
            row.error,
        )
        for row in rows
    ]


def listing(
    conn: Connection,
    *,
    state: str | None = None,
    account_id: str | None = None,
    subject_id: str | None = None,
    after: tuple[int, str] | None = None,
    limit: int = 50,
) -> list[Notification]:
    """The newest notifications first (``created_at``, id), optionally only one state, account
    or subject, and only those after ``after`` (a keyset page)."""
    query = select(notifications)
    if state is not None:
        query = query.where(notifications.c.state == state)
    if account_id is not None:
        query = query.where(notifications.c.account_id == account_id)
    if subject_id is not None:
        query = query.where(notifications.c.subject_id == subject_id)
    query = newest_first(query, notifications.c.created_at, notifications.c.id, after, limit)
    return [_notification(row) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class Sent:
    """A notification as a subject's page lists it, with its last attempt's HTTP status."""

    notification: Notification
    last_http_status: int | None


def sent_about(conn: Connection, *, account_id: str, subject_id: str, kind: str) -> list[Sent]:
    """The ``kind`` notifications sent to ``account_id`` about ``subject_id``, oldest first.

    Uses ``ix_ipn_notifications_subject`` (subject, created): a subject has a handful of rows.
    """
    last_status = (
        select(attempts.c.http_status)
        .where(attempts.c.notification_id == notifications.c.id)
        .order_by(attempts.c.number.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(notifications, last_status.label("last_http_status"))
        .where(
            notifications.c.subject_id == subject_id,
            notifications.c.account_id == account_id,
            notifications.c.kind == kind,
        )
        .order_by(notifications.c.created_at, notifications.c.id)
    )
    return [Sent(_notification(row), row.last_http_status) for row in conn.execute(query)]


def counts(conn: Connection) -> dict[str, int]:
    """How many notifications are in each state."""
    query = select(notifications.c.state, func.count()).group_by(notifications.c.state)
    found = {str(state): int(count) for state, count in conn.execute(query)}
    return {state: found.get(state, 0) for state in (PENDING, DELIVERED, FAILED)}


def schedule_again(conn: Connection, notification_id: str, now: int) -> bool:
    """Make a notification due now with a fresh retry window (a replay when delivered)."""
    query = (
        update(notifications)
        .where(notifications.c.id == notification_id)
        .values(state=PENDING, next_attempt_at=now, window_start=now, claim=None)
    )
    return conn.execute(query).rowcount == 1
