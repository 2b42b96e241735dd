"""``penny webhooks …``: merchants' webhook endpoints (docs/api.md, "Receive a webhook").

* ``add URL --account ID [--event TYPE …] [--description TEXT]`` — prints the ``whsec_``
  secret, once;
* ``list [--account ID]`` — endpoints (never their secrets);
* ``remove ID`` — deliveries not yet sent to it fail;
* ``rotate-secret ID`` — a new secret, printed once; deliveries from now on are signed with it;
* ``disable ID`` / ``enable ID`` — a disabled endpoint is sent nothing (its merchant's events
  are still recorded).

Every command takes ``--database`` and ``--json``. Registered by :mod:`penny.cli.main`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar, get_args

import typer
from sqlalchemy import Connection

from penny.api.models import EventType
from penny.cli.accounts import AccountOption, _account_id, _when, open_services
from penny.cli.base import penny_typer
from penny.cli.common import DatabaseOption, JsonOption, emit, fail
from penny.services.factory import Services
from penny.storage import webhooks_sql
from penny.storage.webhooks_sql import Endpoint
from penny.webhooks import endpoints

webhooks_app: typer.Typer = penny_typer(
    "Webhook endpoints: add, list, remove, rotate a secret (Standard Webhooks)."
)

EVENT_TYPES = get_args(EventType)
EndpointArgument = Annotated[str, typer.Argument(metavar="ID", help="The endpoint id (we_…).")]


def _endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "account_id": endpoint.account_id,
        "url": endpoint.url,
        "enabled_events": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "description": endpoint.description,
        "created_at": endpoint.created_at,
    }


def _line(endpoint: Endpoint) -> str:
    events = ",".join(endpoint.event_types) or "all events"
    return (
        f"{endpoint.id}  {endpoint.account_id}  {endpoint.url}  {events}  "
        f"created {_when(endpoint.created_at)}"
    )


_Found = TypeVar("_Found")


def _changed(
    endpoint_id: str,
    database: str | None,
    change: Callable[[Services, Connection, str], _Found | None],
) -> _Found:
    """What ``change`` makes of the endpoint ``endpoint_id`` in one write; an unknown id is the
    command's error."""
    with open_services(database) as services, services.database.write() as conn:
        found = change(services, conn, endpoint_id.strip())
    if found is None:
        raise fail(f"no webhook endpoint has the id {endpoint_id!r}")
    return found


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(metavar="URL", help="Where events are POSTed.")],
    account: AccountOption = None,
    event: Annotated[
        list[str] | None,
        typer.Option(metavar="TYPE", help="Only this event type (repeat for more; none: all)."),
    ] = None,
    description: Annotated[str, typer.Option(metavar="WORDS", help="A note for you.")] = "",
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a webhook endpoint for a business account; prints its secret, once."""
    unknown = sorted(set(event or ()) - set(EVENT_TYPES))
    if unknown:
        raise fail(f"unknown event type {unknown[0]!r}; one of: {', '.join(EVENT_TYPES)}")
    with open_services(database) as services:
        account_id = _account_id(services.directory, account)
        try:
            with services.database.write() as conn:
                made = endpoints.create(
                    conn,
                    services.server_key,
                    account_id,
                    url,
                    event_types=event or (),
                    description=description[:160],
                    now=services.clock.now_us(),
                )
        except endpoints.EndpointError as error:
            raise fail(f"cannot use {url!r}: {error}") from None
    data = _endpoint_json(made.endpoint) | {"secret": made.secret}
    emit(as_json, data, [_line(made.endpoint), f"secret (shown once): {made.secret}"])


@webhooks_app.command("list")
def list_endpoints(
    account: AccountOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Webhook endpoints, oldest first (of one account with --account); never their secrets."""
    with open_services(database) as services:
        account_id = None if account is None else _account_id(services.directory, account)
        with services.database.read() as conn:
            found = webhooks_sql.list_endpoints(conn, account_id)
    data = {"webhook_endpoints": [_endpoint_json(e) for e in found]}
    emit(as_json, data, [_line(e) for e in found] or ["(no webhook endpoints)"])


@webhooks_app.command("remove")
def remove(
    endpoint_id: EndpointArgument,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove a webhook endpoint: deliveries not yet sent to it fail."""
    found = _changed(
        endpoint_id, database, lambda _, conn, found_id: endpoints.remove(conn, found_id)
    )
    emit(as_json, _endpoint_json(found) | {"deleted": True}, [f"removed {found.id}"])


@webhooks_app.command("rotate-secret")
def rotate_secret(
    endpoint_id: EndpointArgument,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give an endpoint a new secret (printed once); deliveries from now on use it."""
    made = _changed(
        endpoint_id,
        database,
        lambda services, conn, found_id: endpoints.rotate_secret(
            conn, services.server_key, found_id
        ),
    )
    data = _endpoint_json(made.endpoint) | {"secret": made.secret}
    emit(as_json, data, [_line(made.endpoint), f"new secret (shown once): {made.secret}"])


def _set_enabled(endpoint_id: str, enabled: bool, database: str | None, as_json: bool) -> None:
    def change(_: Services, conn: Connection, found_id: str) -> Endpoint | None:
        done = webhooks_sql.set_enabled(conn, found_id, enabled)
        return webhooks_sql.load_endpoint(conn, None, found_id) if done else None

    found = _changed(endpoint_id, database, change)
    emit(as_json, _endpoint_json(found), [_line(found) + ("" if enabled else "  (disabled)")])


@webhooks_app.command("disable")
def disable(
    endpoint_id: EndpointArgument,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send an endpoint nothing more until it is enabled again."""
    _set_enabled(endpoint_id, False, database, as_json)


@webhooks_app.command("enable")
def enable(
    endpoint_id: EndpointArgument,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send an endpoint the events of its types again (from now on)."""
    _set_enabled(endpoint_id, True, database, as_json)
