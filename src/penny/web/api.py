"""The HTTP edge of the JSON API: a bare ASGI callable for ``/v1/…`` (no Starlette routing or
middleware, like ``/``'s :class:`~penny.web.front.FpsFront`).

The stages are those of the FPS door (ARCHITECTURE.md, "The request path"): match the route
(:mod:`penny.api.routes`) → read the body (size-limited) → authenticate (a bearer secret,
:mod:`penny.api.auth`, against the FPS door's key cache) → validate (msgspec decodes the body
into its model; :mod:`penny.api.resources` builds the payments request) → decide and commit
(the FPS door's own :class:`~penny.web.commit.GroupCommit`, so both doors share batches) →
render (JSON). Requests with an ``Idempotency-Key`` carry it as their CallerReference and have
their first response stored in the batch's transaction (:mod:`penny.services.idempotency`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope

from penny.api import auth, routes
from penny.api import errors as e
from penny.api import resources as r
from penny.api.openapi import docs_page, openapi_document
from penny.api.params import param_of
from penny.api.sessions import Creation
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import InstrumentKind, Transaction
from penny.domain.parties import random_id
from penny.engine.ledger import LedgerSession, StorageUnavailableError
from penny.services.idempotency import KEY_REUSED, Keyed, KeyedAnswer, Response, answer_once
from penny.services.payment_queries import BalanceQuery, TwoBalances
from penny.services.payments import Result
from penny.web.cobranded.http import Settings
from penny.web.endpoint import FpsEndpoint
from penny.web.front import BareFront, read_body
from penny.web.metrics import AppMetrics

logger = logging.getLogger("penny.web.api")

JSON_TYPE: Final = b"application/json"
#: The header a replayed response carries (Stripe's name).
REPLAYED: Final = (b"idempotent-replayed", b"true")
#: An unkeyed request's CallerReference: ``api_`` and 24 random characters.
UNKEYED_PREFIX: Final = "api_"
_KEY_CHARS: Final = frozenset(chr(c) for c in range(0x21, 0x7F))
_DECODERS: Final = {
    route.body: msgspec.json.Decoder(route.body) for route in routes.ROUTES if route.body
}
#: The bodies whose fields all have defaults (a cancel, a settle): an empty body is ``{}``.
_OPTIONAL_BODIES: Final = frozenset(
    body for body in _DECODERS if not any(f.required for f in msgspec.structs.fields(body))
)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer, with what logs and metrics say about it."""

    status: int
    body: bytes
    action: str | None = None
    access_key_id: str | None = None
    error_code: str | None = None
    replayed: bool = False
    content_type: bytes = JSON_TYPE


def fault_reply(fault: e.ApiFault, request_id: str, action: str | None = None) -> Reply:
    return Reply(fault.status, e.render_fault(fault, request_id), action, None, fault.code)


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: its route, the account and key, the request id."""

    match: routes.Match
    party_id: str
    key_id: str
    request_id: str

    @property
    def action(self) -> str:
        return self.match.route.operation_id


def outcome_response(request_id: str, result: Result, operation_id: str = "") -> Response:
    """A money-moving request's response: its transaction, or its refusal (naming the field
    of ``operation_id``'s body it is about, if one)."""
    if isinstance(result, PaymentsError):
        fault = e.refusal_fault(result, param_of(operation_id, result.refusal))
        keep = result.refusal is not Refusal.duplicate_request
        return Response(fault.status, e.render_fault(fault, request_id), keep=keep)
    assert isinstance(result, Transaction)
    return Response(200, e.encode(r.transaction_out(result)))


def request_hash(caller: Caller, decoded: msgspec.Struct) -> str:
    """What a retry with the same key must repeat: the route, its ids and the decoded body."""
    route = caller.match.route
    text = f"{route.method} {route.path} {'/'.join(caller.match.ids)} ".encode()
    return hashlib.sha256(text + e.encode(decoded)).hexdigest()


def _headers(scope: Scope) -> dict[bytes, str]:
    """The request headers the API reads (the first of each)."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in (b"authorization", b"idempotency-key", b"content-length") and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _query(scope: Scope) -> dict[str, str] | e.ApiFault:
    raw = scope.get("query_string", b"").decode("latin-1")
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw), errors="strict")
    except (ValueError, UnicodeDecodeError):
        return e.invalid_parameter("query", "The query string is malformed.")
    query: dict[str, str] = {}
    for name, value in pairs:
        if name in query or "\x00" in name or "\x00" in value:
            return e.invalid_parameter(name.replace("\x00", ""), f"Bad parameter {name!r}.")
        query[name] = value
    return query


class ApiFront(BareFront[Reply]):
    """``/v1/…`` as a bare ASGI application over the FPS endpoint's services and batches."""

    #: An exception is logged and answered 503 (JSON); anything else (a cancellation)
    #: propagates.
    handles = Exception

    def __init__(self, endpoint: FpsEndpoint, metrics: AppMetrics, *, live: bool) -> None:
        self.endpoint = endpoint
        self.payments = endpoint.payments
        self.keys = endpoint.keys
        self.metrics = metrics
        self.live = live
        #: The hosted pages' public base URL (PENNY_PUBLIC_URL), for authorization sessions.
        self.public_url = Settings.from_env().public_url
        self._openapi = msgspec.json.encode(openapi_document())
        self._docs = docs_page(openapi_document()).encode()

    def _on_failure(self, error: BaseException, started: int, request_id: str) -> Reply:
        logger.exception("API request %s failed", request_id)
        return fault_reply(e.UNAVAILABLE, request_id)

    def _headers(self, answer: Reply, request_id: str) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-length", b"%d" % len(answer.body)),
            (b"content-type", answer.content_type),
            (b"request-id", request_id.encode()),
        ]
        if answer.replayed:
            headers.append(REPLAYED)
        return headers

    async def _answer(self, scope: Scope, receive: Receive, request_id: str) -> Reply:
        method, path = scope["method"], scope["path"]
        if method in ("GET", "HEAD") and path in (routes.OPENAPI_PATH, routes.DOCS_PATH):
            if path == routes.OPENAPI_PATH:
                return Reply(200, self._openapi)
            return Reply(200, self._docs, content_type=b"text/html; charset=utf-8")
        found = routes.match(method, path)
        if not isinstance(found, routes.Match):
            fault = e.NOT_FOUND if found == 404 else e.METHOD_NOT_ALLOWED
            return fault_reply(fault, request_id)
        headers = _headers(scope)
        body = await read_body(receive, headers.get(b"content-length", ""))
        if not isinstance(body, bytes):
            return fault_reply(e.TOO_LARGE, request_id, found.route.operation_id)
        caller = await self._authenticate(headers.get(b"authorization", ""), found, request_id)
        if isinstance(caller, e.ApiFault):
            return fault_reply(caller, request_id, found.route.operation_id)
        reply = await self._dispatch(caller, scope, body, headers.get(b"idempotency-key"))
        return replace(reply, action=caller.action, access_key_id=caller.key_id)

    async def _authenticate(
        self, header: str, found: routes.Match, request_id: str
    ) -> Caller | e.ApiFault:
        credentials = auth.parse_authorization(header, live=self.live)
        if credentials is None:
            return e.UNAUTHENTICATED
        key_id = credentials.access_key_id
        if not self.keys.fresh(key_id):
            await run_in_threadpool(self.keys.secret_for, key_id)
        if not auth.secret_matches(credentials.secret, self.keys.secret_for(key_id)):
            return e.UNAUTHENTICATED
        party_id = self.keys.party_of(key_id)
        if party_id is None:  # revoked since
            return e.UNAUTHENTICATED
        return Caller(found, party_id, key_id, request_id)

    # -- the kinds of route -----------------------------------------------------------------

    async def _dispatch(self, caller: Caller, scope: Scope, body: bytes, key: str | None) -> Reply:
        route = caller.match.route
        if route.method == "POST":
            if key is not None and not (len(key) <= 128 and _KEY_CHARS.issuperset(key) and key):
                return fault_reply(e.BAD_KEY, caller.request_id)
            assert route.body is not None
            try:
                decoded = _DECODERS[route.body].decode(
                    body or b"{}" if route.body in _OPTIONAL_BODIES else body
                )
            except (msgspec.ValidationError, msgspec.DecodeError) as error:
                return fault_reply(e.invalid_body(error), caller.request_id)
            if route.kind == "commit":
                return await self._commit(caller, decoded, key)
            if route.kind == "create":
                return await self._create(caller, scope, decoded, key)
            return await self._cancel(caller, decoded, key)
        query = _query(scope)
        if isinstance(query, e.ApiFault):
            return fault_reply(query, caller.request_id)
        if route.kind == "balance":
            if query:
                return fault_reply(
                    e.invalid_parameter(next(iter(query)), "Unknown parameter."), caller.request_id
                )
            return await self._balance(caller)
        return await self._read(caller, query)

    async def _commit(self, caller: Caller, decoded: Any, key: str | None) -> Reply:
        route = caller.match.route
        assert route.build is not None
        reference = key if key is not None else UNKEYED_PREFIX + random_id(24)
        request = route.build(decoded, caller.party_id, reference, caller.match.ids)
        request_id = caller.request_id
        if isinstance(request, e.ApiFault):
            return fault_reply(request, request_id)
        batched = self.endpoint.batched
        self.endpoint.attach()
        if key is None:
            outcome = await batched.commit(request)
            if isinstance(outcome, Transaction | PaymentsError):  # a refusal is an answer
                return _reply_of(outcome_response(request_id, outcome, caller.action))
            return self._failed(outcome, request_id)
        keyed = Keyed(
            request,
            request_hash(caller, decoded),
            lambda result: outcome_response(request_id, result, caller.action),
        )
        answer = await batched.commit_keyed(keyed)
        if isinstance(answer, BaseException):
            return self._failed(answer, request_id)
        return _keyed_reply(answer, request_id)

    async def _cancel(self, caller: Caller, decoded: Any, key: str | None) -> Reply:
        token_id, request_id = caller.match.ids[0], caller.request_id

        def act(session: LedgerSession) -> Response:
            try:
                token = self.payments.cancel_token_in(session, caller.party_id, token_id)
            except PaymentsError as refused:
                return outcome_response(request_id, refused)
            return Response(200, e.encode(r.token_out(token)))

        return await self._once(caller, decoded, key, act)

    async def _create(self, caller: Caller, scope: Scope, decoded: Any, key: str | None) -> Reply:
        """A resource of the API's own (an authorization session, a webhook endpoint), in its
        own transaction."""
        create = caller.match.route.create
        assert create is not None
        secret = self.keys.secret_for(caller.key_id)
        assert secret is not None  # authenticated with it a moment ago
        base = self.public_url or _base_url(scope)

        def act(session: LedgerSession) -> Response:
            made = create(
                decoded,
                Creation(
                    session.conn,
                    session.now,
                    caller.party_id,
                    caller.key_id,
                    secret,
                    base,
                    self.endpoint.directory.server_key,
                ),
            )
            if isinstance(made, e.ApiFault):
                return Response(made.status, e.render_fault(made, caller.request_id))
            return Response(200, e.encode(made))

        return await self._once(caller, decoded, key, act)

    async def _once(
        self,
        caller: Caller,
        decoded: Any,
        key: str | None,
        act: Callable[[LedgerSession], Response],
    ) -> Reply:
        """Run ``act`` in its own transaction; with a key, at most once (answer_once)."""
        ledger = self.payments.ledger
        if key is None:
            return _reply_of(await run_in_threadpool(ledger.run, act))
        pair, print_ = (caller.party_id, key), request_hash(caller, decoded)
        answer: KeyedAnswer = await run_in_threadpool(
            ledger.run, lambda session: answer_once(session, pair, print_, act)
        )
        return _keyed_reply(answer, caller.request_id)

    async def _balance(self, caller: Caller) -> Reply:
        route, instrument_id = caller.match.route, caller.match.ids[0]
        assert route.instrument is not None
        self.endpoint.attach()
        read = await self.endpoint.batched.read(
            BalanceQuery(route.instrument, caller.party_id, instrument_id)
        )
        if isinstance(read, PaymentsError):
            return _reply_of(outcome_response(caller.request_id, read))
        if not isinstance(read, TwoBalances):
            return self._failed(read, caller.request_id)
        prepaid = route.instrument is InstrumentKind.prepaid
        kind = "prepaid_balance" if prepaid else "debt_balance"
        return Reply(200, e.encode(r.instrument_balance(kind, instrument_id, read)))

    async def _read(self, caller: Caller, query: Mapping[str, str]) -> Reply:
        work = caller.match.route.query
        assert work is not None
        try:
            found = await run_in_threadpool(
                work, self.payments, caller.party_id, caller.match.ids, query
            )
        except PaymentsError as refused:
            return _reply_of(outcome_response(caller.request_id, refused))
        if isinstance(found, e.ApiFault):
            return fault_reply(found, caller.request_id)
        return Reply(200, e.encode(found))

    @staticmethod
    def _failed(error: BaseException, request_id: str) -> Reply:
        if isinstance(error, StorageUnavailableError):  # expected while the database fails over
            logger.warning("API request %s: the store is unavailable: %s", request_id, error)
        else:
            logger.error("API request %s failed", request_id, exc_info=error)
        return fault_reply(e.UNAVAILABLE, request_id)


def _base_url(scope: Scope) -> str:
    """Penny's base URL as the client reached it (scheme and Host header)."""
    host = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"host"), None)
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


def _reply_of(response: Response) -> Reply:
    code = None
    if response.status >= 400:
        code = msgspec.json.decode(response.body)["error"]["code"]
    return Reply(response.status, response.body, error_code=code, replayed=response.replayed)


def _keyed_reply(answer: KeyedAnswer, request_id: str) -> Reply:
    if answer is KEY_REUSED:
        return fault_reply(e.KEY_REUSED, request_id)
    assert isinstance(answer, Response)
    return _reply_of(answer)
