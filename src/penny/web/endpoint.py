"""The FPS request path, stage by stage (ARCHITECTURE.md, "The request path").

decode (:func:`penny.fps.decode.parse_request`) → authenticate (Signature V2,
:func:`penny.fps.signature.verify_request`, keys from :class:`penny.fps.keys.KeyCache`) →
validate (:func:`penny.fps.actions.validate`: the parameters become typed work) → decide and
commit (the payments service, batched by :class:`penny.web.commit.GroupCommit` when served) →
render (:func:`penny.fps.wire.render_success` / :func:`~penny.fps.wire.render_error`).

:meth:`FpsEndpoint.answer_async` is the server's path: everything but a key-cache miss and a
query's own reads runs on the event loop, money-moving requests join the next group commit and
balance reads the next batch of reads. :meth:`FpsEndpoint.answer` is the same stages in one
thread with the work done directly (tests, tools). Every refusal is an FPS error body; an
unexpected exception is logged with its traceback and answered ``InternalError`` (HTTP 503,
which every FPS client retries).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from starlette.concurrency import run_in_threadpool

from penny.clock import Clock
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import Transaction
from penny.engine.ledger import StorageUnavailableError
from penny.fps.actions import (
    committed_result,
    execute,
    query_result,
    read_result,
    validate,
)
from penny.fps.actions.call import Call
from penny.fps.actions.spec import CommitWork, ReadWork, Work
from penny.fps.decode import parse_request
from penny.fps.keys import KeyCache
from penny.fps.signature import verify_request
from penny.fps.wire import (
    INVALID_REQUEST,
    WireFault,
    Xml,
    action_of,
    refusal_error,
    render_error,
    render_success,
    version_of,
)
from penny.parties import Directory
from penny.services.payment_queries import TwoBalances
from penny.services.payments import Payments
from penny.signing import Signer
from penny.web.commit import GroupCommit, Outcome, ReadOutcome

logger = logging.getLogger("penny.web.app")

#: What an access key id can be (others are refused by authentication without a lookup, and
#: are not looked up ahead: a NUL, say, would reach the database first).
_KEY_ID: Final = re.compile(r"[A-Za-z0-9]{1,64}")

#: The one action FPS serves unsigned.
UNSIGNED_ACTION = "VerifySignature"

#: The answer to an unexpected failure: the table's ``InternalError`` (503, transient).
INTERNAL_ERROR: Final = refusal_error(Refusal.internal_error)


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


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request through decode, authenticate and validate: the work it asks for."""

    action: str
    version: str
    work: Work


Result = Xml | WireFault | None


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
        #: Money-moving requests share group commits, balance reads batched reads (#8).
        self.batched = GroupCommit(payments)
        #: Keys' secrets and owners, trusted for KEY_TTL_MS (#8, docs/decisions.md).
        self.keys = KeyCache(directory)

    def attach(self) -> None:
        """Start the group commit on the running event loop (call it on the loop)."""
        self.batched.attach()

    # -- the two paths --------------------------------------------------------------------

    async def answer_async(self, request: FpsRequest, request_id: str) -> Answer:
        """The server's path: the stages on the event loop, the work batched."""
        self.attach()
        params = decode(request)
        if isinstance(params, WireFault):
            return fault_answer(params, request_id, None, None)
        action, key_id = params.get("Action") or None, params.get("AWSAccessKeyId") or None
        try:
            if key_id is not None and _KEY_ID.fullmatch(key_id) and not self.keys.fresh(key_id):
                # Look the key up in a thread, so that authentication does not wait on the loop.
                await run_in_threadpool(self.keys.secret_for, key_id)
            prepared = self.prepare(request, params)
            if isinstance(prepared, WireFault):
                result: Result = prepared
            else:
                result = await self._execute_batched(prepared.work, request_id)
        except Exception:
            logger.exception("FPS request %s failed", request_id)
            return fault_answer(INTERNAL_ERROR, request_id, action, key_id)
        return self._rendered(result, prepared, request_id, action, key_id)

    def answer(self, request: FpsRequest, request_id: str) -> Answer:
        """The same stages with the work done directly (blocking: call it in a thread)."""
        params = decode(request)
        if isinstance(params, WireFault):
            return fault_answer(params, request_id, None, None)
        action, key_id = params.get("Action") or None, params.get("AWSAccessKeyId") or None
        try:
            prepared = self.prepare(request, params)
            result = prepared if isinstance(prepared, WireFault) else self._execute(prepared)
        except Exception:
            logger.exception("FPS request %s failed", request_id)
            return fault_answer(INTERNAL_ERROR, request_id, action, key_id)
        return self._rendered(result, prepared, request_id, action, key_id)

    def serve(self, request: FpsRequest, request_id: str) -> tuple[int, bytes]:
        """The HTTP status and body for ``request`` (blocking: call it in a thread)."""
        answer = self.answer(request, request_id)
        return answer.status, answer.body

    # -- the stages -----------------------------------------------------------------------

    def prepare(self, request: FpsRequest, params: Mapping[str, str]) -> Prepared | WireFault:
        """Authenticate and validate decoded ``params``: the work they ask for."""
        with_nul = _with_nul(params)
        if with_nul is not None:
            return with_nul
        if params.get("Action") == UNSIGNED_ACTION and "Signature" not in params:
            # FPS answers VerifySignature without a signature or an account (spec §5).
            return self._validated(params, "")
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
        party_id = self.keys.party_of(verified.access_key_id)
        if party_id is None:  # revoked between the check and now
            key = self.directory.api_key(verified.access_key_id)
            assert key is not None  # the signature was checked against its secret
            party_id = key.party_id
        return self._validated(params, party_id)

    def _validated(self, params: Mapping[str, str], caller_id: str) -> Prepared | WireFault:
        version = version_of(params)
        if isinstance(version, WireFault):
            return version
        action = action_of(params, version)
        if isinstance(action, WireFault):
            return action
        call = Call(self.payments, self.directory, caller_id, version, params, self.signer)
        work = validate(call, action)
        if isinstance(work, WireFault):
            return work
        return Prepared(action, version, work)

    def _execute(self, prepared: Prepared) -> Result:
        return execute(self.payments, prepared.work)

    async def _execute_batched(self, work: Work, request_id: str) -> Result:
        # A refusal (PaymentsError) is an answer; any other exception a failed batch.
        if isinstance(work, CommitWork):
            outcome: Outcome = await self.batched.commit(work.request)
            if isinstance(outcome, Transaction | PaymentsError):
                return committed_result(outcome)
            return _failed(outcome, request_id)
        if isinstance(work, ReadWork):
            read: ReadOutcome = await self.batched.read(work.query)
            if isinstance(read, TwoBalances | PaymentsError):
                return read_result(work, read)
            return _failed(read, request_id)
        return await run_in_threadpool(query_result, work)

    def _rendered(
        self,
        result: Result,
        prepared: Prepared | WireFault,
        request_id: str,
        action: str | None,
        key_id: str | None,
    ) -> Answer:
        if isinstance(result, WireFault):
            return fault_answer(result, request_id, action, key_id)
        assert isinstance(prepared, Prepared)
        body = render_success(prepared.action, prepared.version, result, request_id)
        return Answer(200, body, action, key_id, None)


def decode(request: FpsRequest) -> dict[str, str] | WireFault:
    """The decode stage: the request's parameters, from its query string or form body."""
    return parse_request(request.method, request.query_string, request.body, request.content_type)


def _failed(error: BaseException, request_id: str) -> WireFault:
    if isinstance(error, StorageUnavailableError):  # expected while the database fails over
        logger.warning("FPS request %s: the store is unavailable: %s", request_id, error)
    else:
        logger.error("FPS request %s failed", request_id, exc_info=error)
    return INTERNAL_ERROR


def fault_answer(
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
