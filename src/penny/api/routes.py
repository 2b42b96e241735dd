"""The JSON API's routes: the one list the front dispatches on and the OpenAPI document
describes. Each route is one of five kinds:

* ``commit``  a money-moving POST: body → payments request → the group commit (as FPS's);
* ``cancel``  POST /v1/tokens/{id}/cancel (its own small transaction);
* ``create``  any other POST (a webhook endpoint): its own small transaction, keyed;
* ``balance`` an instrument's balance: the batched balance reads (as FPS's GetPrepaidBalance);
* ``query``   any other GET, and DELETE: a read (or a small delete) in a worker thread;
* ``create``  a POST that stores a resource of the API's own (an authorization session, a
  webhook endpoint) in its own small transaction, like ``cancel``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from penny.api import instruments as ins
from penny.api import models as m
from penny.api import resources as r
from penny.api import sessions as sess
from penny.api import webhooks as w
from penny.api.errors import ApiFault
from penny.domain.model import InstrumentKind
from penny.services.payment_queries import PaymentQueries
from penny.services.payments import PaymentRequest

Kind = Literal["commit", "cancel", "create", "balance", "query"]
#: A ``query`` route's work: (payments, caller, path ids, query parameters) → model or fault.
Query = Callable[[PaymentQueries, str, tuple[str, ...], Mapping[str, str]], Any]
#: A ``create`` route's work: (decoded body, what creating needs) → model or fault.
Create = Callable[[Any, "sess.Creation"], "msgspec.Struct | ApiFault"]
#: What an id in a path may be (anything else is no such resource).
ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


class TokenCancel(msgspec.Struct, forbid_unknown_fields=True):
    """Cancel a token (no parameters: the body is empty or ``{}``)."""


@dataclass(frozen=True, slots=True)
class Route:
    method: Literal["GET", "POST", "DELETE"]
    path: str
    kind: Kind
    operation_id: str
    summary: str
    response: type[msgspec.Struct]
    body: type[msgspec.Struct] | None = None
    #: ``commit``: the decoded body, caller, CallerReference and path ids → the payments
    #: request.
    build: Callable[[Any, str, str, tuple[str, ...]], PaymentRequest | ApiFault] | None = None
    #: ``balance``: the instrument kind (and the response's ``object``).
    instrument: InstrumentKind | None = None
    query: Query | None = None
    #: ``query`` parameters it takes (the OpenAPI document lists them).
    parameters: tuple[str, ...] = ()
    #: ``create``: the decoded body and what creating needs → the response model or a fault.
    create: Create | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")[1:])

    @property
    def operation(self) -> str:
        """The name metrics and logs give it."""
        return self.operation_id


def _commit(path: str, name: str, summary: str, body: type[msgspec.Struct], build: Any) -> Route:
    """A money-moving POST: on a collection (built from the body) or on one resource (built
    from the body and its ``{id}``: the reserve settled or cancelled)."""
    at = "{id}" in path

    def build_it(decoded: Any, caller: str, reference: str, ids: tuple[str, ...]) -> Any:
        return (
            build(decoded, caller, reference, *ids[:1]) if at else build(decoded, caller, reference)
        )

    return Route("POST", path, "commit", name, summary, m.Transaction, body=body, build=build_it)


def _id_query(work: Callable[[PaymentQueries, str, str], Any]) -> Query:
    return lambda payments, caller, ids, _query: work(payments, caller, ids[0])


def _merchant(work: Callable[[PaymentQueries, str], Any]) -> Query:
    return lambda payments, caller, _ids, _query: work(payments, caller)


#: GET of an unknown (or another merchant's) authorization session.
NO_SUCH_SESSION: Final = ApiFault(
    404, "not_found_error", "unknown_authorization_session", "No such authorization session."
)


def _session(
    payments: PaymentQueries, caller: str, session_id: str
) -> m.AuthorizationSession | ApiFault:
    with payments.database.read() as conn:
        found = sess.load(conn, caller, session_id)
    return NO_SUCH_SESSION if found is None else found


ROUTES: Final = (
    _commit("/v1/payments", "createPayment", "Pay from a sender token", m.PaymentCreate, r.pay),
    _commit("/v1/fundings", "createFunding", "Fund a prepaid instrument", m.FundingCreate, r.fund),
    _commit(
        "/v1/settlements", "createSettlement", "Settle a credit instrument's debt",
        m.SettlementCreate, r.settle,
    ),
    _commit(
        "/v1/write_offs", "createWriteOff", "Write off part of a debt", m.WriteOffCreate,
        r.write_off,
    ),
    _commit("/v1/refunds", "createRefund", "Refund a payment", m.RefundCreate, r.refund),
    _commit(
        "/v1/reserves", "createReserve", "Reserve an amount on a sender token", m.ReserveCreate,
        r.reserve,
    ),
    _commit(
        "/v1/reserves/{id}/settle", "settleReserve", "Settle a reserve (all or part)",
        m.ReserveSettle, r.settle_reserve,
    ),
    _commit(
        "/v1/reserves/{id}/cancel", "cancelReserve", "Cancel a reserve", m.ReserveCancel,
        r.cancel_reserve,
    ),
    Route(
        "POST", "/v1/authorization_sessions", "create", "createAuthorizationSession",
        "Send a buyer to the hosted pages to authorize an instrument", m.AuthorizationSession,
        body=m.AuthorizationSessionCreate, create=sess.create,
    ),
    Route(
        "GET", "/v1/authorization_sessions/{id}", "query", "getAuthorizationSession",
        "Get an authorization session (its instrument and tokens once completed)",
        m.AuthorizationSession, query=_id_query(_session),
    ),
    Route(
        "GET", "/v1/instruments", "query", "listInstruments", "List the merchant's instruments",
        m.InstrumentList, query=r.listing(ins.list_query, ins.list_instruments),
        parameters=ins.LIST_PARAMETERS,
    ),
    Route(
        "GET", "/v1/instruments/{id}", "query", "getInstrument", "Get an instrument",
        m.Instrument, query=_id_query(ins.get_instrument),
    ),
    Route(
        "POST", "/v1/tokens/{id}/cancel", "cancel", "cancelToken", "Cancel a token", m.Token,
        body=TokenCancel,
    ),
    Route(
        "GET", "/v1/tokens/{id}", "query", "getToken", "Get a token", m.Token,
        query=_id_query(r.get_token),
    ),
    Route(
        "GET", "/v1/transactions", "query", "listTransactions", "List transactions",
        m.TransactionList, query=r.listing(r.filters, r.list_transactions),
        parameters=r.LIST_PARAMETERS,
    ),
    Route(
        "GET", "/v1/transactions/{id}", "query", "getTransaction", "Get a transaction",
        m.Transaction, query=_id_query(r.get_transaction),
    ),
    Route(
        "GET", "/v1/prepaid_instruments/{id}/balance", "balance", "getPrepaidBalance",
        "A prepaid instrument's balance", m.InstrumentBalance, instrument=InstrumentKind.prepaid,
    ),
    Route(
        "GET", "/v1/credit_instruments/{id}/balance", "balance", "getDebtBalance",
        "A credit instrument's debt", m.InstrumentBalance, instrument=InstrumentKind.credit,
    ),
    Route(
        "GET", "/v1/balances/prepaid_liability", "query", "getPrepaidLiability",
        "Total prepaid liability", m.MerchantBalance, query=_merchant(r.prepaid_liability),
    ),
    Route(
        "GET", "/v1/balances/outstanding_debt", "query", "getOutstandingDebt",
        "Outstanding debt over all credit instruments", m.MerchantBalance,
        query=_merchant(r.outstanding_debt),
    ),
    # -- events and webhook endpoints (penny.api.webhooks) --
    Route(
        "POST", "/v1/webhook_endpoints", "create", "createWebhookEndpoint",
        "Register a webhook endpoint", m.WebhookEndpoint, body=m.WebhookEndpointCreate,
        create=w.create_endpoint,
    ),
    Route(
        "GET", "/v1/webhook_endpoints", "query", "listWebhookEndpoints",
        "List webhook endpoints", m.WebhookEndpointList, query=w.list_endpoints,
    ),
    Route(
        "GET", "/v1/webhook_endpoints/{id}", "query", "getWebhookEndpoint",
        "Get a webhook endpoint", m.WebhookEndpoint, query=w.get_endpoint,
    ),
    Route(
        "DELETE", "/v1/webhook_endpoints/{id}", "query", "deleteWebhookEndpoint",
        "Delete a webhook endpoint", m.WebhookEndpoint, query=w.delete_endpoint,
    ),
    Route(
        "GET", "/v1/events", "query", "listEvents", "List events", m.EventList,
        query=r.listing(w.event_query, w.list_events), parameters=w.EVENT_PARAMETERS,
    ),
    Route(
        "GET", "/v1/events/{id}", "query", "getEvent", "Get an event", m.Event,
        query=w.get_event,
    ),
    Route(
        "GET", "/v1/events/{id}/deliveries", "query", "listEventDeliveries",
        "An event's webhook deliveries", m.WebhookDeliveryList, query=w.event_deliveries,
    ),
)  # fmt: skip

#: The unauthenticated pages of the API: its description and the reference page.
OPENAPI_PATH: Final = "/v1/openapi.json"
DOCS_PATH: Final = "/v1/docs"


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    ids: tuple[str, ...]


_STATIC: Final[dict[tuple[str, str], Match]] = {
    (r.method, r.path): Match(r, ()) for r in ROUTES if "{" not in r.path
}


def match(method: str, path: str) -> Match | Literal[404, 405]:
    """The route of ``method`` and ``path``; 404 (no such path), 405 (not that method)."""
    static = _STATIC.get((method, path))
    if static is not None:
        return static
    parts = tuple(path.split("/")[1:])
    allowed = False
    for route in ROUTES:
        segments = route.segments
        if len(segments) != len(parts):
            continue
        ids: list[str] = []
        for pattern, part in zip(segments, parts, strict=True):
            if pattern == "{id}":
                if ID.fullmatch(part) is None:
                    break
                ids.append(part)
            elif pattern != part:
                break
        else:
            if route.method == method:
                return Match(route, tuple(ids))
            allowed = True
    return 405 if allowed else 404
