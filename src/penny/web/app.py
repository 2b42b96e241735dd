"""The ASGI application (Starlette on uvicorn).

* ``GET /`` and ``POST /``: the FPS Query API (spec ``fps-api.md`` §1–§5): parse
  (:func:`penny.fps.wire.parse_request`), authenticate (:func:`penny.fps.signature.verify_request`),
  check ``Version`` and ``Action``, serve (:func:`penny.fps.actions.run_action`), answer with an
  FPS XML envelope. Every refusal is an FPS error body, never an HTML page; an unexpected
  exception is logged with its traceback and answered ``InternalError`` (HTTP 503, which every
  FPS client retries).
* ``/healthz`` answers 200 with the store's dialect and schema revision when the database
  answers (and, on PostgreSQL, the server reached takes writes), 503 otherwise
  (:mod:`penny.web.health`).
* ``/metrics``: Prometheus metrics of this application (:mod:`penny.web.metrics`), not
  authenticated: expose it to the monitoring network only.

Every FPS request is counted and timed (:mod:`penny.web.metrics`) and logged as one JSON line
on the ``penny.web.access`` logger (:mod:`penny.web.logs`: ids, action, status, error code and
duration, never parameter values or signatures).

The synchronous services (database work) run in Starlette's thread pool, never on the event
loop.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from penny.clock import Clock, SystemClock
from penny.domain.errors import PaymentsError
from penny.domain.model import Transaction
from penny.fps.actions import decided_result, run_action
from penny.fps.signature import verify_request
from penny.fps.wire import (
    HTTP_BAD_REQUEST,
    HTTP_SERVICE_UNAVAILABLE,
    INVALID_REQUEST,
    MAX_REQUEST_BYTES,
    WireFault,
    Xml,
    action_of,
    new_request_id,
    parse_request,
    render_error,
    render_success,
    version_of,
)
from penny.ipn.delivery import Deliverer, DeliveryRunner
from penny.ipn.outbox import IpnOutbox
from penny.ipn.settings import IpnSettings
from penny.parties import Directory
from penny.security import ServerKey, load_server_key
from penny.services.payments import Payments
from penny.signing import Signer, load_signer
from penny.storage.database import (
    DATABASE_URL_ENV,
    Database,
    open_database,
)
from penny.web import health
from penny.web.batching import (
    BatchedPayments,
    Deferred,
    DeferredPayment,
    DeferredRead,
    KeyCache,
    Outcome,
    ReadOutcome,
    decided_read,
    first_pass,
)
from penny.web.cobranded import cobranded_routes
from penny.web.logs import RequestLog, configure_logging, log_request
from penny.web.metrics import METRICS_CONTENT_TYPE, SUCCESS, AppMetrics, MeteredLedger

logger = logging.getLogger(__name__)

#: FPS answered with XML bodies; ``text/xml`` is what its responses carried.
XML_CONTENT_TYPE = "text/xml; charset=utf-8"
#: HTTP status of a body over :data:`MAX_REQUEST_BYTES`.
HTTP_TOO_LARGE = 413


@dataclass(frozen=True, slots=True)
class FpsRequest:
    """What the FPS endpoint needs of an HTTP request, read on the event loop."""

    method: str
    host: str
    path: str
    query_string: bytes
    body: bytes
    content_type: str | None
    server_port: int | None


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to one FPS request, with what logs and metrics say about it."""

    status: int
    body: bytes
    #: The ``Action`` and ``AWSAccessKeyId`` parameters as received (``None`` when absent or
    #: the request could not be parsed); the key id is not verified when authentication fails.
    action: str | None
    access_key_id: str | None
    #: The FPS error code sent, ``None`` for a success.
    error_code: str | None


@dataclass(slots=True)
class _Seen:
    """What was read of a request before it was answered."""

    action: str | None = None
    access_key_id: str | None = None


class FpsEndpoint:
    """The FPS Query API over a directory (keys, parties) and the payments service."""

    def __init__(
        self,
        directory: Directory,
        payments: Payments,
        request_clock: Clock,
        signer: Signer | None = None,
    ) -> None:
        self.directory = directory
        self.payments = payments
        #: Penny's outbound signing keys, for VerifySignature.
        self.signer = signer
        #: The clock request Timestamps are checked against (see :func:`create_app`).
        self.request_clock = request_clock
        #: What the actions call: money-moving requests share group commits (#8).
        self.batched = BatchedPayments(payments)
        #: Keys' secrets and owners, trusted for KEY_TTL_MS (#8, docs/decisions.md).
        self.keys = KeyCache(directory)

    def attach(self) -> None:
        """Start the group commit on the running event loop (call it on the loop)."""
        self.batched.attach()

    async def answer_async(self, request: FpsRequest, request_id: str) -> Answer:
        """:meth:`answer` on the event loop (#8, docs/performance.md).

        A money-moving request is answered on the loop in two passes: the first parses,
        authenticates and validates it up to the :class:`PaymentRequest` (pure work, no
        database but a key-cache miss), which then joins the next group commit; once that has
        committed, only the rendering of its outcome is left (:func:`decided_result`, what the
        action itself returns for it). GetPrepaidBalance and GetDebtBalance stop the same way
        at the balance read, which joins the next batch of reads; their action then runs again
        with the balance read. Other actions (the queries) run in the thread pool, since they
        read the database.
        """
        self.attach()
        raw = request.body or request.query_string
        if _MONEY_ACTION.search(raw) is None and _BATCHED_READ.search(raw) is None:
            return await run_in_threadpool(self.answer, request, request_id)
        key = _ACCESS_KEY.search(raw)
        if key is not None and not self.keys.fresh(key_id := key.group(1).decode("ascii")):
            # Look the key up in a thread, so that the first pass does not wait on the loop.
            await run_in_threadpool(self.keys.secret_for, key_id)
        try:
            with first_pass():
                return self.answer(request, request_id)
        except DeferredPayment as payment:
            deferred: Deferred = payment
            result: Xml | WireFault | None = self._decided(
                await self.batched.commit(payment.request), request_id
            )
        except DeferredRead as read:
            deferred = read
            result = self._read(read, await self.batched.read(read.query), request_id)
        if isinstance(result, WireFault):
            return _fault_answer(result, request_id, deferred.action, deferred.access_key_id)
        body = render_success(deferred.action, deferred.version, result, request_id)
        return Answer(200, body, deferred.action, deferred.access_key_id, None)

    def _decided(self, outcome: Outcome, request_id: str) -> Xml | WireFault:
        """A committed money-moving request's result: only rendering is left (parsing, the
        signature and validation were done in the first pass)."""
        if isinstance(outcome, Transaction | PaymentsError):
            return decided_result(outcome)
        logger.error("FPS request %s failed", request_id, exc_info=outcome)
        return _INTERNAL_ERROR

    def _read(
        self, deferred: DeferredRead, read: ReadOutcome, request_id: str
    ) -> Xml | WireFault | None:
        """A batched balance read's result: its action run again with the balance read
        meanwhile (the request was parsed and its signature checked in the first pass)."""
        try:
            with decided_read(deferred.query, read):
                result = run_action(
                    self.batched,
                    self.directory,
                    deferred.caller_id,
                    deferred.action,
                    deferred.version,
                    deferred.params,
                    self.signer,
                )
        except Exception:
            logger.exception("FPS request %s failed", request_id)
            return _INTERNAL_ERROR
        return result

    def serve(self, request: FpsRequest, request_id: str) -> tuple[int, bytes]:
        """The HTTP status and body for ``request`` (blocking: call it in a thread)."""
        answer = self.answer(request, request_id)
        return answer.status, answer.body

    def answer(self, request: FpsRequest, request_id: str) -> Answer:
        """:meth:`serve` with what the logs and metrics need (blocking: call it in a thread)."""
        seen = _Seen()
        try:
            outcome = self._serve(request, seen)
        except Deferred as deferred:
            deferred.access_key_id = seen.access_key_id
            raise
        except Exception:
            logger.exception("FPS request %s failed", request_id)
            outcome = _INTERNAL_ERROR
        if isinstance(outcome, WireFault):
            return _fault_answer(outcome, request_id, seen.action, seen.access_key_id)
        action, version, result = outcome
        body = render_success(action, version, result, request_id)
        return Answer(200, body, seen.action, seen.access_key_id, None)

    def _serve(self, request: FpsRequest, seen: _Seen) -> WireFault | tuple[str, str, str | None]:
        params = parse_request(
            request.method, request.query_string, request.body, request.content_type
        )
        if isinstance(params, WireFault):
            return params
        seen.action = params.get("Action") or None
        seen.access_key_id = params.get("AWSAccessKeyId") or None
        with_nul = _with_nul(params)
        if with_nul is not None:
            return with_nul
        if params.get("Action") == UNSIGNED_ACTION and "Signature" not in params:
            # FPS answers VerifySignature without a signature or an account (spec §5).
            return self._unsigned(params)
        verified = verify_request(
            request.method,
            request.host,
            request.path,
            params,
            secret_for=self.keys.secret_for,
            now_us=self.request_clock.now_us(),
            server_port=request.server_port,
        )
        if isinstance(verified, WireFault):
            return verified
        version = version_of(params)
        if isinstance(version, WireFault):
            return version
        action = action_of(params, version)
        if isinstance(action, WireFault):
            return action
        party_id = self.keys.party_of(verified.access_key_id)
        if party_id is None:  # revoked between the check and now
            key = self.directory.api_key(verified.access_key_id)
            assert key is not None  # the signature was checked against its secret
            party_id = key.party_id
        try:
            result = run_action(
                self.batched, self.directory, party_id, action, version, params, self.signer
            )
        except Deferred as deferred:
            deferred.action, deferred.version = action, version
            deferred.caller_id, deferred.params = party_id, params
            raise
        if isinstance(result, WireFault):
            return result
        return action, version, result

    def _unsigned(self, params: Mapping[str, str]) -> WireFault | tuple[str, str, str | None]:
        version = version_of(params)
        if isinstance(version, WireFault):
            return version
        action = action_of(params, version)
        if isinstance(action, WireFault):
            return action
        result = run_action(self.payments, self.directory, "", action, version, params, self.signer)
        if isinstance(result, WireFault):
            return result
        return action, version, result


#: Requests answered on the event loop with group commit (a hint: any other request is served
#: correctly too, in the thread pool).
_MONEY_ACTION = re.compile(
    rb"(?:^|&)Action=(?:Pay|FundPrepaid|SettleDebt|WriteOffDebt|Refund)(?:&|$)"
)

#: Balance reads answered on the event loop, read in batches (#8).
_BATCHED_READ = re.compile(rb"(?:^|&)Action=(?:GetPrepaidBalance|GetDebtBalance)(?:&|$)")

_ACCESS_KEY = re.compile(rb"(?:^|&)AWSAccessKeyId=([A-Za-z0-9]{1,64})(?:&|$)")

#: The one action FPS serves unsigned.
UNSIGNED_ACTION = "VerifySignature"


_INTERNAL_ERROR = WireFault(
    "InternalError",
    "The server could not serve the request; retry it with the same CallerReference.",
    HTTP_SERVICE_UNAVAILABLE,
)


def _fault_answer(
    fault: WireFault, request_id: str, action: str | None, access_key_id: str | None
) -> Answer:
    body = render_error(fault.code, fault.message, request_id)
    return Answer(fault.http_status, body, action, access_key_id, fault.code)


def _with_nul(params: Mapping[str, str]) -> WireFault | None:
    """``InvalidRequest`` for a NUL in a parameter: no FPS parameter holds one, and PostgreSQL
    cannot store one in text (it failed the request with HTTP 503 before this check)."""
    for name, value in params.items():
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "%00")
            return WireFault(INVALID_REQUEST, f"The parameter {shown} contains a NUL character.")
    return None


async def _read_body(request: Request) -> bytes | WireFault:
    """The body, refused (without reading on) once it passes :data:`MAX_REQUEST_BYTES`."""
    too_large = WireFault(
        INVALID_REQUEST,
        f"The request body is larger than {MAX_REQUEST_BYTES} bytes.",
        HTTP_TOO_LARGE,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_REQUEST_BYTES:
                return too_large
            chunks.append(chunk)
    except ClientDisconnect:
        # Gone before its body arrived (or cut off by penny.web.slowclients): nobody to answer.
        return WireFault(INVALID_REQUEST, "The client disconnected.", HTTP_BAD_REQUEST)
    return b"".join(chunks)


def create_app(
    database: Database,
    *,
    clock: Clock | None = None,
    server_key: ServerKey | None = None,
    request_clock: Clock | None = None,
    dispose_on_shutdown: bool = False,
    ipn: IpnSettings | None = None,
) -> Starlette:
    """Build the application over an open ``database``.

    ``clock`` (the time of payments, tokens and transactions) defaults to the sandbox clock
    shared through the database; ``server_key`` (which decrypts API secrets) to the one
    :func:`penny.security.load_server_key` finds for it. ``request_clock``, against which the
    ``Timestamp`` of signed requests is checked, defaults to the system clock: clients sign with
    their real time even after ``penny sandbox advance`` moved the sandbox clock. With
    ``dispose_on_shutdown`` the application closes ``database`` when it shuts down.

    Payments always write their IPNs to the outbox (:class:`penny.ipn.outbox.IpnOutbox`); with
    ``ipn`` settings the application also delivers them, in ``ipn.lanes`` loops started and
    stopped by its lifespan (``penny serve`` passes :meth:`IpnSettings.from_env`).
    """
    if clock is None:
        from penny.sandbox.clock import SandboxClock

        clock = SandboxClock(database)
    if server_key is None:
        server_key = load_server_key(database.url)
    ledger = MeteredLedger(database, clock)
    metrics = AppMetrics(ledger)
    directory = Directory(database, ledger, clock, server_key)
    signer = load_signer(database, server_key)
    payments = Payments(ledger, clock=clock, listener=IpnOutbox())
    endpoint = FpsEndpoint(directory, payments, request_clock or SystemClock(), signer)
    ipn_runner = None if ipn is None else DeliveryRunner(Deliverer(database, signer, clock, ipn))

    async def healthz(_request: Request) -> JSONResponse:
        return await health.healthz(database)

    async def fps(request: Request) -> Response:
        started = time.perf_counter_ns()
        request_id = new_request_id()
        with metrics.timed() as record:
            answer = await _answer(request, request_id)
            record(answer.action, answer.error_code or SUCCESS)
        log_request(
            RequestLog(
                request_id=request_id,
                action=answer.action,
                access_key_id=answer.access_key_id,
                status=answer.status,
                error_code=answer.error_code,
                duration_us=(time.perf_counter_ns() - started) // 1000,
            )
        )
        return Response(answer.body, status_code=answer.status, media_type=XML_CONTENT_TYPE)

    async def _answer(request: Request, request_id: str) -> Answer:
        body = await _read_body(request)
        if isinstance(body, WireFault):
            content = render_error(body.code, body.message, request_id)
            return Answer(body.http_status, content, None, None, body.code)
        server = request.scope.get("server")
        fps_request = FpsRequest(
            method=request.method,
            host=request.headers.get("host", ""),
            path=request.scope.get("path", "/"),
            query_string=request.scope.get("query_string", b""),
            body=body,
            content_type=request.headers.get("content-type"),
            server_port=server[1] if server and len(server) > 1 else None,
        )
        return await endpoint.answer_async(fps_request, request_id)

    async def certificate(request: Request) -> Response:
        pem = signer.certificate_pem(request.path_params["key_id"])
        if pem is None:
            return Response("No such certificate.\n", status_code=404, media_type="text/plain")
        return Response(pem, media_type="application/x-pem-file")

    async def metrics_page(_request: Request) -> Response:
        return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if ipn_runner is not None:
            await ipn_runner.start()
        try:
            yield
        finally:
            if ipn_runner is not None:
                await ipn_runner.stop()
            if dispose_on_shutdown:
                database.dispose()

    async def http_error(_request: Request, exc: Exception) -> Response:
        # Starlette's own refusals (an unknown path, a verb no route takes) as FPS errors too.
        status = exc.status_code if isinstance(exc, HTTPException) else HTTP_BAD_REQUEST
        detail = exc.detail if isinstance(exc, HTTPException) else "Bad request"
        content = render_error(INVALID_REQUEST, f"{detail}.", new_request_id())
        return Response(content, status_code=status, media_type=XML_CONTENT_TYPE)

    return Starlette(
        lifespan=lifespan,
        exception_handlers={404: http_error, 405: http_error},
        routes=[
            Route("/healthz", healthz),
            Route("/metrics", metrics_page),
            Route("/certs/{key_id}/PKICert.pem", certificate),
            Route("/", fps, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
            *cobranded_routes(directory, endpoint.payments, signer),
        ],
    )


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
