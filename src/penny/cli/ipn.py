"""``penny ipn …``: see and replay instant payment notifications; ``penny accounts
set-ipn-url``: where a merchant receives them (docs/ipn.md).

* ``list [--failed | --state S] [--account A] [--subject ID] [--limit N]`` — newest first;
* ``show ID`` — the parameters sent and every attempt: when, how long, HTTP status, error;
* ``retry ID`` — due now with a fresh retry window (a failed one is tried again, a
  delivered one is replayed);
* ``deliver`` — send whatever is due now from this process and exit (``penny serve``
  delivers continuously).

Every command takes ``--database`` and ``--json``. Registered by :mod:`penny.cli.main`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy import Connection

from penny.cli.accounts import (
    AccountOption,
    EmailLookupOption,
    _account_id,
    accounts_app,
    open_directory,
)
from penny.cli.base import penny_typer
from penny.cli.common import DatabaseOption, JsonOption, emit, fail
from penny.cli.common import open_store as _database
from penny.epoch import to_datetime
from penny.storage import ipn_sql, parties_sql

ipn_app: typer.Typer = penny_typer(
    "Instant payment notifications: list, show attempts, retry, deliver."
)

STATES = (ipn_sql.PENDING, ipn_sql.DELIVERED, ipn_sql.FAILED)

NotificationArgument = Annotated[str, typer.Argument(metavar="ID", help="The notification id.")]


def _when(micros: int | None) -> str:
    if micros is None:
        return "-"
    moment = to_datetime(micros)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


#: The fields of a notification its JSON shows, in order (``show`` adds its parameters).
_NOTIFICATION_FIELDS = (
    "id",
    "kind",
    "subject_id",
    "account_id",
    "url",
    "state",
    "created_at",
    "next_attempt_at",
    "attempts",
    "delivered_at",
    "last_error",
)


def _notification_json(n: ipn_sql.Notification) -> dict[str, Any]:
    return {name: getattr(n, name) for name in _NOTIFICATION_FIELDS}


def _attempt_json(a: ipn_sql.Attempt) -> dict[str, Any]:
    return {
        "number": a.number,
        "worker": a.worker,
        "started_at": a.started_at,
        "finished_at": a.finished_at,
        "duration_ms": None if a.duration_us is None else round(a.duration_us / 1000, 3),
        "http_status": a.http_status,
        "outcome": a.outcome,
        "error": a.error,
    }


def _merchant_id(conn: Connection, account: str) -> str:
    """``--account``: an account id as given, or the id of the account with that email."""
    if "@" not in account:
        return account.strip()
    party = parties_sql.party_with_email(conn, account)
    if party is None:
        raise fail(f"no account has the email {account!r}")
    return party.id


@ipn_app.command("list")
def list_notifications(
    database: DatabaseOption = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only the failed ones.")] = False,
    state: Annotated[
        str | None,
        typer.Option(metavar="STATE", help="Only this state: pending, delivered or failed."),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option("--account", "-a", metavar="ID|EMAIL", help="Only this merchant's."),
    ] = None,
    subject: Annotated[
        str | None, typer.Option(metavar="ID", help="Only those of this transaction or token id.")
    ] = None,
    limit: Annotated[
        int, typer.Option(metavar="N", min=1, max=10_000, help="At most this many.")
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """Notifications, newest first, with their state and last error."""
    if failed:
        if state not in (None, ipn_sql.FAILED):
            raise fail("--failed and --state disagree")
        state = ipn_sql.FAILED
    if state is not None and state not in STATES:
        raise fail("--state must be pending, delivered or failed")
    with _database(database) as db, db.read() as conn:
        account_id = None if account is None else _merchant_id(conn, account)
        found = ipn_sql.listing(
            conn, state=state, account_id=account_id, subject_id=subject, limit=limit
        )
        totals = ipn_sql.counts(conn)
    lines = [
        f"{n.id}  {n.state:<9}  {n.kind:<17}  {n.subject_id}  attempts={n.attempts}  "
        f"created={_when(n.created_at)}  next={_when(n.next_attempt_at)}  {n.url}"
        + (f"  last error: {n.last_error}" if n.last_error else "")
        for n in found
    ]
    lines.append(
        f"{len(found)} shown; {totals['pending']} pending, {totals['delivered']} delivered, "
        f"{totals['failed']} failed in all"
    )
    emit(
        as_json,
        {"notifications": [_notification_json(n) for n in found], "counts": totals},
        lines,
    )


@ipn_app.command("show")
def show(
    notification_id: NotificationArgument,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """One notification: its parameters and every delivery attempt."""
    with _database(database) as db, db.read() as conn:
        found = ipn_sql.load(conn, notification_id.strip())
        attempts = [] if found is None else ipn_sql.load_attempts(conn, found.id)
    if found is None:
        raise fail(f"no notification has the id {notification_id!r}")
    lines = [
        f"notification {found.id}: {found.kind} of {found.subject_id} to {found.url}",
        f"state: {found.state}; created {_when(found.created_at)}; "
        f"next attempt {_when(found.next_attempt_at)}; delivered {_when(found.delivered_at)}",
        "parameters (signed when sent):",
        *(f"  {name}={value}" for name, value in found.params),
        f"attempts ({len(attempts)}):",
        *(
            f"  #{a.number}  {_when(a.started_at)}  "
            + ("-" if a.duration_us is None else f"{a.duration_us / 1000:.1f} ms")
            + f"  {a.outcome}"
            + (f"  HTTP {a.http_status}" if a.http_status is not None else "")
            + (f"  {a.error}" if a.error else "")
            + f"  ({a.worker})"
            for a in attempts
        ),
    ]
    data = {
        **_notification_json(found),
        "params": dict(found.params),
        "attempt_log": [_attempt_json(a) for a in attempts],
    }
    emit(as_json, data, lines)


@ipn_app.command("retry")
def retry(
    notification_id: NotificationArgument,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a notification again now, with a fresh retry window (replays a delivered one)."""
    from penny.sandbox.clock import SandboxClock

    with _database(database) as db:
        now = SandboxClock(db).now_us()
        with db.write() as conn:
            done = ipn_sql.schedule_again(conn, notification_id.strip(), now)
    if not done:
        raise fail(f"no notification has the id {notification_id!r}")
    emit(
        as_json,
        {"id": notification_id.strip(), "state": ipn_sql.PENDING, "next_attempt_at": now},
        [f"notification {notification_id.strip()} is due now; penny serve will send it"],
    )


@ipn_app.command("deliver")
def deliver(
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send every notification due now from this process, then exit (settings from the
    PENNY_IPN_* environment variables, docs/ipn.md)."""
    from penny.ipn.delivery import Deliverer, drain
    from penny.ipn.settings import IpnConfigError, IpnSettings
    from penny.sandbox.clock import SandboxClock
    from penny.security import ServerKeyError, load_server_key
    from penny.signing import load_signer

    try:
        settings = IpnSettings.from_env()
    except IpnConfigError as exc:
        raise fail(str(exc)) from None
    with _database(database) as db:
        try:
            server_key = load_server_key(db.url)
            signer = load_signer(db, server_key)
        except ServerKeyError as exc:
            raise fail(str(exc)) from None
        deliverer = Deliverer(db, signer, SandboxClock(db), settings, server_key=server_key)
        report = drain(deliverer, lanes=settings.lanes)
    data = {
        "attempts": report.attempts,
        "delivered": report.delivered,
        "retrying": report.retrying,
        "failed": report.failed,
        "outcomes": report.outcomes,
    }
    emit(
        as_json,
        data,
        [
            f"{report.attempts} attempt(s): {report.delivered} delivered, "
            f"{report.retrying} to retry later, {report.failed} failed"
        ],
    )


@accounts_app.command("set-ipn-url")
def set_ipn_url(
    url: Annotated[
        str | None,
        typer.Argument(metavar="URL", help="http(s) URL that receives the notifications."),
    ] = None,
    account: AccountOption = None,
    email: EmailLookupOption = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the IPN URL.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set (or --clear) where a business account receives instant payment notifications
    (a request's OverrideIPNURL still wins for its own transaction)."""
    if (url is None) == (not clear):
        raise fail("give the URL, or --clear")
    with open_directory(database) as directory:
        party_id = _account_id(directory, account, email)
        party = directory.set_ipn_url(party_id, None if clear else url)
    emit(
        as_json,
        {"id": party.id, "ipn_url": party.ipn_url},
        [f"account {party.id}: IPN URL {party.ipn_url or '-'}"],
    )
