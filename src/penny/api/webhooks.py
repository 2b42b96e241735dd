"""The JSON API's events and webhook endpoints (issue #17): validate and render, over
:mod:`penny.webhooks` and :mod:`penny.storage.webhooks_sql`.

* ``POST /v1/webhook_endpoints`` (:func:`create_endpoint`) runs in a write transaction with the
  request's ``Idempotency-Key`` (the front's ``create`` kind); its answer is the only one that
  carries the ``whsec_`` secret;
* ``GET`` / ``DELETE /v1/webhook_endpoints[/{id}]``, ``GET /v1/events[/{id}]`` and
  ``GET /v1/events/{id}/deliveries`` are the front's ``query`` kind.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, get_args

import msgspec

from penny import epoch
from penny.api import models as m
from penny.api import resources as r
from penny.api.errors import ApiFault, invalid_parameter
from penny.api.sessions import Creation
from penny.services.payment_queries import PaymentQueries
from penny.storage import webhooks_sql
from penny.storage.webhooks_sql import Delivery, Endpoint, StoredEvent
from penny.webhooks import endpoints

#: The query parameters GET /v1/events takes.
EVENT_PARAMETERS: Final = ("limit", "starting_after", "type")
EVENT_TYPES: Final[tuple[str, ...]] = get_args(m.EventType)

NO_SUCH_ENDPOINT: Final = ApiFault(
    404, "not_found_error", "no_such_webhook_endpoint", "No such webhook endpoint."
)
NO_SUCH_EVENT: Final = ApiFault(404, "not_found_error", "no_such_event", "No such event.")
_EVENT: Final = msgspec.json.Decoder(m.Event)


def endpoint_out(
    endpoint: Endpoint, secret: str | None = None, *, deleted: bool = False
) -> m.WebhookEndpoint:
    return m.WebhookEndpoint(
        id=endpoint.id,
        url=endpoint.url,
        enabled_events=list(endpoint.event_types),  # type: ignore[arg-type]  # checked on entry
        enabled=endpoint.enabled,
        description=endpoint.description,
        created_at=epoch.to_datetime(endpoint.created_at),
        secret=secret,
        deleted=deleted,
    )


def event_out(event: StoredEvent) -> m.Event:
    return _EVENT.decode(event.body)


def delivery_out(delivery: Delivery) -> m.WebhookDelivery:
    return m.WebhookDelivery(
        id=delivery.id,
        event=delivery.event_id,
        endpoint=delivery.endpoint_id,
        url=delivery.url,
        state=delivery.state,  # type: ignore[arg-type]  # the outbox's three states
        attempts=delivery.attempts,
        last_http_status=delivery.last_http_status,
        last_error=delivery.last_error,
        created_at=epoch.to_datetime(delivery.created_at),
        next_attempt_at=_when(delivery.next_attempt_at),
        delivered_at=_when(delivery.delivered_at),
    )


def _when(micros: int | None) -> datetime | None:
    return None if micros is None else epoch.to_datetime(micros)


Work = Callable[[PaymentQueries, str, tuple[str, ...]], Any]
Query = Callable[[PaymentQueries, str, tuple[str, ...], Mapping[str, str]], Any]


def _no_parameters(work: Work) -> Query:
    """``work`` as a route's query that takes no query parameters."""

    @functools.wraps(work)
    def answer(
        payments: PaymentQueries, caller: str, ids: tuple[str, ...], query: Mapping[str, str]
    ) -> Any:
        return r.unknown_parameter(query, ()) or work(payments, caller, ids)

    return answer


# -- endpoints ----------------------------------------------------------------------------------


def create_endpoint(body: m.WebhookEndpointCreate, at: Creation) -> m.WebhookEndpoint | ApiFault:
    """POST /v1/webhook_endpoints, in ``at.conn``'s transaction."""
    try:
        made = endpoints.create(
            at.conn,
            at.server_key,
            at.caller_id,
            body.url,
            event_types=body.enabled_events,
            description=body.description,
            enabled=body.enabled,
            now=at.now,
        )
    except endpoints.EndpointError as error:
        return invalid_parameter("url", f"The webhook URL cannot be used: {error}.")
    return endpoint_out(made.endpoint, made.secret)


@_no_parameters
def list_endpoints(
    payments: PaymentQueries, caller: str, _ids: tuple[str, ...]
) -> m.WebhookEndpointList | ApiFault:
    with payments.database.read() as conn:
        found = webhooks_sql.list_endpoints(conn, caller)
    data = [endpoint_out(e) for e in found]
    return m.WebhookEndpointList(data=data, has_more=False, next_cursor=None)


@_no_parameters
def get_endpoint(
    payments: PaymentQueries, caller: str, ids: tuple[str, ...]
) -> m.WebhookEndpoint | ApiFault:
    with payments.database.read() as conn:
        found = webhooks_sql.load_endpoint(conn, caller, ids[0])
    return NO_SUCH_ENDPOINT if found is None else endpoint_out(found)


@_no_parameters
def delete_endpoint(
    payments: PaymentQueries, caller: str, ids: tuple[str, ...]
) -> m.WebhookEndpoint | ApiFault:
    """DELETE /v1/webhook_endpoints/{id}: its deliveries not yet sent fail."""
    with payments.database.write() as conn:
        found = endpoints.remove(conn, ids[0], caller)
    return NO_SUCH_ENDPOINT if found is None else endpoint_out(found, deleted=True)


# -- events -------------------------------------------------------------------------------------


@_no_parameters
def get_event(payments: PaymentQueries, caller: str, ids: tuple[str, ...]) -> m.Event | ApiFault:
    with payments.database.read() as conn:
        found = webhooks_sql.load_event(conn, caller, ids[0])
    return NO_SUCH_EVENT if found is None else event_out(found)


#: GET /v1/events's query, checked: ``type`` (None: every type), ``limit`` and the cursor.
EventQuery = tuple[str | None, int, tuple[int, str] | None]


def event_query(query: Mapping[str, str]) -> EventQuery | ApiFault:
    """GET /v1/events's query parameters (see EVENT_PARAMETERS), or the first at fault."""
    unknown = r.unknown_parameter(query, EVENT_PARAMETERS)
    if unknown is not None:
        return unknown
    kind = query.get("type")
    if kind is not None and kind not in EVENT_TYPES:
        return invalid_parameter("type", "type is one of the event types (docs/api.md).")
    start = r.page_start(query)
    if isinstance(start, ApiFault):
        return start
    return (kind, *start)


def list_events(payments: PaymentQueries, caller: str, chosen: EventQuery) -> m.EventList:
    """A page of the caller's events, newest first (optionally of one ``type``)."""
    kind, limit, after = chosen
    with payments.database.read() as conn:
        page = webhooks_sql.page_of_events(
            conn,
            caller,
            after=None if after is None else after[0],
            event_type=kind,
            limit=limit + 1,
        )
    kept, more, cursor = r.paged(page, limit, lambda e: r.encode_position(e.seq, e.id))
    return m.EventList(data=[event_out(e) for e in kept], has_more=more, next_cursor=cursor)


@_no_parameters
def event_deliveries(
    payments: PaymentQueries, caller: str, ids: tuple[str, ...]
) -> m.WebhookDeliveryList | ApiFault:
    """GET /v1/events/{id}/deliveries: each endpoint's delivery of the event, and its state."""
    with payments.database.read() as conn:
        if webhooks_sql.load_event(conn, caller, ids[0]) is None:
            return NO_SUCH_EVENT
        found = webhooks_sql.deliveries_of(conn, caller, ids[0])
    data = [delivery_out(d) for d in found]
    return m.WebhookDeliveryList(data=data, has_more=False, next_cursor=None)
