"""The ASGI application (Starlette on uvicorn): what is served where.

* ``GET /`` and ``POST /``: the FPS Query API (spec ``fps-api.md`` §1–§5), answered by
  :class:`penny.web.front.FpsFront` through the stages of :mod:`penny.web.endpoint`. Every
  refusal is an FPS error body, never an HTML page.
* ``/healthz`` answers 200 with the store's dialect and schema revision when the database
  answers (and, on PostgreSQL, the server reached takes writes), 503 otherwise
  (:mod:`penny.web.health`).
* ``/metrics``: Prometheus metrics of this application (:mod:`penny.web.metrics`), not
  authenticated: expose it to the monitoring network only.
* ``/certs/<id>/PKICert.pem``: Penny's signing certificates; the hosted pages
  (:mod:`penny.web.cobranded`); the account site at ``/account`` and the landing page a
  browser gets at ``GET /`` (:mod:`penny.web.console`).
* ``/v1/…``: the JSON API (:mod:`penny.web.api`, :mod:`penny.api`), its description at
  ``/v1/openapi.json`` and reference page at ``/v1/docs``.

Every FPS request is counted and timed (:mod:`penny.web.metrics`) and logged as one JSON line
on the ``penny.web.access`` logger (:mod:`penny.web.logs`: ids, action, status, error code and
duration, never parameter values or signatures).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from penny.api.auth import live_from_env
from penny.clock import MICROS_PER_SECOND, Clock, SystemClock
from penny.engine.ledger import Ledger
from penny.fps.wire import HTTP_BAD_REQUEST, INVALID_REQUEST, new_request_id, render_error
from penny.ipn.delivery import Deliverer, DeliveryRunner, seconds
from penny.ipn.settings import IpnSettings
from penny.sandbox.advance import finish_due
from penny.security import ServerKey
from penny.services import idempotency
from penny.services.factory import Services, build_services
from penny.services.payments import Payments
from penny.signing import Signer
from penny.storage.database import (
    DATABASE_URL_ENV,
    Database,
    open_database,
)
from penny.web import health
from penny.web.api import ApiFront
from penny.web.cobranded import cobranded_routes
from penny.web.console import Landing, console_routes
from penny.web.endpoint import Answer, FpsEndpoint, FpsRequest
from penny.web.front import FPS_METHODS, XML_CONTENT_TYPE, FpsFront, PennyApp
from penny.web.logs import configure_logging
from penny.web.metrics import METRICS_CONTENT_TYPE, AppMetrics, MeteredLedger

__all__ = ["Answer", "FpsEndpoint", "FpsRequest", "app_from_env", "create_app"]

logger = logging.getLogger("penny.web.app")
#: How often the server forgets idempotency keys older than a day.
PURGE_EVERY_S = 3600
#: How long after the start the first purge runs.
FIRST_PURGE_S = 60
#: How often ``penny serve`` finishes what is due (:meth:`Payments.complete_due`), by default (µs).
COMPLETE_EVERY_US = 5 * MICROS_PER_SECOND
#: ``penny serve --complete-every`` for the worker processes (microseconds; 0: never).
COMPLETE_EVERY_ENV = "PENNY_COMPLETE_EVERY_US"


def _healthz(database: Database) -> Route:
    async def healthz(_request: Request) -> JSONResponse:
        return await health.healthz(database)

    return Route("/healthz", healthz)


def _certificates(signer: Signer) -> Route:
    async def certificate(request: Request) -> Response:
        pem = signer.certificate_pem(request.path_params["key_id"])
        if pem is None:
            return Response("No such certificate.\n", status_code=404, media_type="text/plain")
        return Response(pem, media_type="application/x-pem-file")

    return Route("/certs/{key_id}/PKICert.pem", certificate)


def _metrics(metrics: AppMetrics) -> Route:
    async def metrics_page(_request: Request) -> Response:
        return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    return Route("/metrics", metrics_page)


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (an unknown path, a verb no route takes) as FPS errors too."""
    status = exc.status_code if isinstance(exc, HTTPException) else HTTP_BAD_REQUEST
    detail = exc.detail if isinstance(exc, HTTPException) else "Bad request"
    content = render_error(INVALID_REQUEST, f"{detail}.", new_request_id())
    return Response(content, status_code=status, media_type=XML_CONTENT_TYPE)


def _delivery(services: Services, signer: Signer, ipn: IpnSettings | None) -> DeliveryRunner | None:
    """The lanes that deliver IPNs and webhooks (none without ``ipn`` settings)."""
    if ipn is None:
        return None
    clock, key = services.clock, services.server_key
    return DeliveryRunner(Deliverer(services.database, signer, clock, ipn, server_key=key))


def create_app(
    database: Database,
    *,
    clock: Clock | None = None,
    server_key: ServerKey | None = None,
    request_clock: Clock | None = None,
    dispose_on_shutdown: bool = False,
    ipn: IpnSettings | None = None,
    live: bool = False,
    complete_every_us: int | None = None,
) -> Starlette:
    """Build the application over an open ``database``.

    ``clock`` (the time of payments, tokens and transactions) defaults to the sandbox clock
    shared through the database; ``server_key`` (which decrypts API secrets) to the one
    :func:`penny.security.load_server_key` finds for it. ``request_clock``, against which the
    ``Timestamp`` of signed requests is checked, defaults to the system clock: clients sign with
    their real time even after ``penny sandbox advance`` moved the sandbox clock. With
    ``dispose_on_shutdown`` the application closes ``database`` when it shuts down.

    The services are built by :func:`penny.services.factory.build_services`, so payments
    always write their IPNs to the outbox (:class:`penny.ipn.outbox.IpnOutbox`); with
    ``ipn`` settings the application also delivers them, in ``ipn.lanes`` loops started and
    stopped by its lifespan (``penny serve`` passes :meth:`IpnSettings.from_env`).

    ``live``: the JSON API takes ``sk_live_`` bearer secrets rather than ``sk_test_`` ones
    (:mod:`penny.api.auth`; ``penny serve`` passes ``PENNY_MODE=production``). Its lifespan
    also forgets idempotency keys older than a day, hourly, and every ``complete_every_us``
    microseconds (None: never) finishes what is due (:func:`completing`; ``penny serve``: 5 s).
    """
    services = build_services(
        database, clock=clock, server_key=server_key, ledger_type=MeteredLedger
    )
    ledger = services.ledger
    assert isinstance(ledger, MeteredLedger)
    metrics = AppMetrics(ledger)
    directory, payments, signer = services.directory, services.payments, services.signer()
    endpoint = FpsEndpoint(directory, payments, request_clock or SystemClock(), signer)
    ipn_runner = _delivery(services, signer, ipn)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if ipn_runner is not None:
            await ipn_runner.start()
        try:
            async with purging(ledger), completing(payments, complete_every_us):
                yield
        finally:
            if ipn_runner is not None:
                await ipn_runner.stop()
            if dispose_on_shutdown:
                database.dispose()

    front = FpsFront(endpoint, metrics)
    routes: list[BaseRoute] = [
        _healthz(database),
        _metrics(metrics),
        _certificates(signer),
        Route("/", front, methods=list(FPS_METHODS)),
        *cobranded_routes(directory, payments, signer),
        *console_routes(directory, payments),
    ]
    return PennyApp(
        front,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _http_error, 405: _http_error},
        landing=Landing(),
        api=ApiFront(endpoint, metrics, live=live),
    )


@asynccontextmanager
async def purging(ledger: Ledger) -> AsyncIterator[None]:
    """:func:`purge_idempotency_keys` in the background while the block runs."""
    task = asyncio.get_running_loop().create_task(purge_idempotency_keys(ledger))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # a purge under way finishes first (its thread is not abandoned)


async def purge_idempotency_keys(
    ledger: Ledger, every_s: int = PURGE_EVERY_S, first_s: int = FIRST_PURGE_S
) -> None:
    """Forget the JSON API's idempotency keys older than a day: ``first_s`` seconds after the
    start, then every ``every_s`` seconds."""
    await asyncio.sleep(first_s)
    while True:
        try:
            purged = await run_in_threadpool(ledger.run, idempotency.purge)
            if purged:
                logger.info("forgot %d idempotency keys older than a day", purged)
        except Exception:  # the store may be away (a failover): try again next time
            logger.warning("purging idempotency keys failed", exc_info=True)
        await asyncio.sleep(every_s)


@asynccontextmanager
async def completing(payments: Payments, every_us: int | None) -> AsyncIterator[None]:
    """:func:`complete_due_every` in the background while the block runs (nothing when
    ``every_us`` is None or not positive)."""
    if every_us is None or every_us <= 0:
        yield
        return
    task = asyncio.get_running_loop().create_task(complete_due_every(payments, every_us))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # a sweep under way commits or rolls back first


async def complete_due_every(payments: Payments, every_us: int) -> None:
    """Finish what is due every ``every_us`` microseconds, until cancelled: what ``penny sandbox
    advance`` finishes after moving the clock (:func:`penny.sandbox.advance.finish_due`).
    Several Penny processes may sweep one store: each due row is locked and taken only while
    it is still due (:func:`penny.services.payments.completion.complete_due`). A failure is
    logged and the next sweep tries again."""
    while True:
        await asyncio.sleep(seconds(every_us))
        try:
            finished, expired = await run_in_threadpool(finish_due, payments)
            if finished or expired:
                logger.info(
                    "finished %d due transactions, expired %d holds", len(finished), expired
                )
        except Exception:  # the store may be away (a failover): try again next time
            logger.warning("finishing due transactions failed", exc_info=True)


def complete_every_from_env() -> int:
    """``$PENNY_COMPLETE_EVERY_US`` (microseconds; unset: the default; 0: never)."""
    text = os.environ.get(COMPLETE_EVERY_ENV, "")
    return int(text) if text else COMPLETE_EVERY_US


def app_from_env() -> Starlette:
    """The application over ``$PENNY_DATABASE_URL``, for ``uvicorn --factory`` (one per worker).

    ``penny serve --workers N`` starts N processes that each call this; it also sends the
    ``penny`` loggers to stderr as JSON lines (:func:`penny.web.logs.configure_logging`).
    """
    configure_logging()
    app = create_app(
        open_database(os.environ.get(DATABASE_URL_ENV)),
        dispose_on_shutdown=True,
        ipn=IpnSettings.from_env(),
        live=live_from_env(),
        complete_every_us=complete_every_from_env(),
    )
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Move what exists once the application is built (modules, tables, templates), which
    lives as long as the server, out of the cyclic garbage collector's generations: a full
    collection then walks only what requests made, and Pay's p99 at half load went from
    ~60 to ~16–36 ms (#8, docs/performance.md). For ``penny serve``, not for tests."""
    gc.collect()
    gc.freeze()
