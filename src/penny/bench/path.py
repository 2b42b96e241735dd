"""``penny bench path``: the CPU cost of each stage of the request path, in process.

N signed W1 Pays (one merchant of 100 each, a prepaid buyer each; signed before anything is
measured) are driven through the real stages of :mod:`penny.web.endpoint` without sockets or
an HTTP server, one stage at a time over all requests, and each stage's CPU time (of the
measuring thread, :func:`time.thread_time_ns`) is divided by N:

* ``edge``: the ASGI edge of :class:`~penny.web.front.FpsFront` (headers, body);
* ``request_id``: the request's id;
* ``decode``: the form body into parameters;
* ``authenticate``: Signature V2 against the cached key;
* ``validate``: the parameters into a typed request;
* ``group_commit``: handing requests to the writer and answering them (futures, thread hop);
* ``load``, ``decide``, ``write``, ``commit``: the batch in the store, in batches of
  ``batch`` requests (``load``: the batch's reads; ``decide``: the pure decisions; ``write``:
  the batch's statements; ``commit``: the transaction around them, with SQLite's fsync or
  PostgreSQL's round trips counted only as the CPU they take);
* ``render``: the outcome into the XML envelope;
* ``log_metrics``: the access log line (JSON, to /dev/null) and the metrics.

The sum is what one W1 Pay costs the server's interpreter beyond the HTTP server itself
(uvicorn's protocol, measured end to end by ``penny bench http``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from penny.bench.loadgen import Signer, amount_text
from penny.bench.seed import Progress, Seed, seed
from penny.domain.errors import PaymentsError
from penny.domain.model import Status, Transaction
from penny.engine.group import Batcher
from penny.engine.ledger import LedgerSession
from penny.fps.decode import parse_request
from penny.fps.signature import VerifiedCaller, verify_request
from penny.fps.wire import new_request_id, render_success
from penny.security import ServerKey
from penny.services.payments import PaymentRequest, Result
from penny.services.payments import runner as payments_runner
from penny.storage.database import Database
from penny.web.app import create_app, freeze_startup_objects
from penny.web.endpoint import FpsEndpoint, FpsRequest, Prepared
from penny.web.front import FpsFront, read_body
from penny.web.logs import (
    ACCESS_LOGGER,
    BufferedStderrHandler,
    JsonFormatter,
    RequestLog,
    log_request,
)

HOST = "127.0.0.1:8080"
STAGES = (
    "edge",
    "request_id",
    "decode",
    "authenticate",
    "validate",
    "group_commit",
    "load",
    "decide",
    "write",
    "commit",
    "render",
    "log_metrics",
)


@dataclass
class PathResult:
    store: str
    requests: int
    batch: int
    ns: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    #: Pays that succeeded, and whether the ledger audits clean after the run.
    succeeded: int = 0
    audit_clean: bool = False

    def us_per_request(self) -> dict[str, float]:
        return {stage: round(self.ns[stage] / self.requests / 1000, 1) for stage in STAGES}

    def to_json(self) -> dict[str, Any]:
        per = self.us_per_request()
        return {
            "store": self.store,
            "requests": self.requests,
            "batch": self.batch,
            "succeeded": self.succeeded,
            "audit_clean": self.audit_clean,
            "us_per_request": per,
            "total_us_per_request": round(sum(self.ns.values()) / self.requests / 1000, 1),
        }


@contextmanager
def _stage(result: PathResult, name: str) -> Iterator[None]:
    started = time.thread_time_ns()
    try:
        yield
    finally:
        result.ns[name] += time.thread_time_ns() - started


def _bodies(the_seed: Seed, count: int, run: str) -> list[bytes]:
    signer, rng = Signer(HOST), random.Random(run)
    bodies = []
    for index in range(count):
        buyer = the_seed.buyers[rng.randrange(len(the_seed.buyers))]
        params = {
            "SenderTokenId": buyer.prepaid_token,
            "TransactionAmount.Value": amount_text(rng.randint(1, 500)),
            "TransactionAmount.CurrencyCode": "USD",
            "CallerReference": f"path-{run}-{index}",
        }
        bodies.append(signer.body(the_seed.merchants[buyer.merchant], "Pay", params))
    return bodies


def _request(body: bytes) -> FpsRequest:
    return FpsRequest("POST", HOST, "/", b"", body, "application/x-www-form-urlencoded", 8080)


def run_path_bench(
    database: Database,
    server_key: ServerKey,
    *,
    requests: int,
    batch: int,
    progress: Progress,
    buyers: int = 1000,
) -> PathResult:
    """Seed ``database``, then measure ``requests`` W1 Pays stage by stage."""
    the_seed = seed(database, server_key, buyers=buyers, merchants=100, progress=progress)
    app = create_app(database, server_key=server_key)
    front: FpsFront = app.front  # type: ignore[attr-defined]
    endpoint = front.endpoint
    for merchant in the_seed.merchants:  # warm the key cache, as a running server has it
        endpoint.keys.secret_for(merchant.access_key_id)
    result = PathResult(database.dialect, requests, batch)
    bodies = _bodies(the_seed, requests, f"{time.time_ns()}")
    freeze_startup_objects()  # as penny serve does once it is built
    progress("measure", 0.0)
    _edge(result, bodies)
    prepared = _front_stages(result, endpoint, bodies)
    progress("measure", 0.3)
    outcomes = _commit_stages(result, endpoint, [p.work.request for p in prepared], progress)  # type: ignore[union-attr]
    _group_commit(result, outcomes)
    _finish(result, front, prepared, outcomes)
    result.succeeded = sum(
        isinstance(o, Transaction) and o.status is Status.success for o in outcomes
    )
    result.audit_clean = endpoint.payments.ledger.audit().ok
    progress("measure", 1.0)
    return result


def _edge(result: PathResult, bodies: list[bytes]) -> None:
    async def edge() -> None:
        scope_headers = [
            (b"host", HOST.encode()),
            (b"content-type", b"application/x-www-form-urlencoded"),
        ]
        for body in bodies:
            message = {"type": "http.request", "body": body, "more_body": False}

            async def receive(message: dict[str, Any] = message) -> dict[str, Any]:
                return message

            length = ""
            for name, value in [*scope_headers, (b"content-length", b"%d" % len(body))]:
                if name == b"content-length":
                    length = value.decode("latin-1")
            await read_body(receive, length)

    with _stage(result, "edge"):
        asyncio.run(edge())


def _front_stages(result: PathResult, endpoint: FpsEndpoint, bodies: list[bytes]) -> list[Prepared]:
    requests = [_request(body) for body in bodies]
    with _stage(result, "request_id"):
        for _ in requests:
            new_request_id()
    with _stage(result, "decode"):
        decoded = [
            parse_request(r.method, r.query_string, r.body, r.content_type) for r in requests
        ]
    params_list = [p for p in decoded if isinstance(p, dict)]
    assert len(params_list) == len(requests), "a pre-signed request did not decode"
    now = endpoint.request_clock.now_us()
    callers = []
    with _stage(result, "authenticate"):
        for request, params in zip(requests, params_list, strict=True):
            verified = verify_request(
                request.method,
                request.host,
                request.path,
                params,
                secret_for=endpoint.keys.secret_for,
                now_us=now,
                server_port=request.server_port,
            )
            assert isinstance(verified, VerifiedCaller), "a pre-signed request did not verify"
            callers.append(endpoint.keys.party_of(verified.access_key_id))
    with _stage(result, "validate"):
        prepared = [
            endpoint._validated(params, caller or "")
            for params, caller in zip(params_list, callers, strict=True)
        ]
    ready = [p for p in prepared if isinstance(p, Prepared)]
    assert len(ready) == len(prepared), "a pre-signed request did not validate"
    return ready


def _commit_stages(
    result: PathResult,
    endpoint: FpsEndpoint,
    requests: list[PaymentRequest],
    progress: Progress,
) -> list[Result]:
    payments = endpoint.payments
    chart, settings, listener = payments.chart(), payments.settings(), payments.listener
    outcomes: list[Result] = []

    def work(chunk: list[PaymentRequest]) -> Callable[[LedgerSession], list[Result]]:
        def timed(session: LedgerSession) -> list[Result]:
            with _stage(result, "load"):
                batch = payments_runner.load(session, chart, settings, chunk)
            decided: list[Result] = []
            with _stage(result, "decide"):
                for request in chunk:
                    try:
                        decided.append(payments_runner.decide(batch, request))
                    except PaymentsError as refused:  # a refusal: measured like an answer
                        decided.append(refused)
            with _stage(result, "write"):
                payments_runner.write(batch, listener)
            return decided

        return timed

    for start in range(0, len(requests), result.batch):
        chunk = requests[start : start + result.batch]
        before = {stage: result.ns[stage] for stage in ("load", "decide", "write")}
        started = time.thread_time_ns()
        outcomes.extend(payments.ledger.run(work(chunk)))
        inner = sum(result.ns[stage] - before[stage] for stage in before)
        result.ns["commit"] += time.thread_time_ns() - started - inner
        progress("measure", 0.3 + 0.6 * (start + len(chunk)) / len(requests))
    return outcomes


def _group_commit(result: PathResult, outcomes: list[Result]) -> None:
    """The batcher's own cost: submitting, the hop to the writer thread and back, answering."""
    answers = iter(outcomes)

    async def drive() -> None:
        batcher: Batcher[int, Result] = Batcher(
            lambda items: [next(answers) for _ in items], max_batch=result.batch
        )
        batcher.start()
        await asyncio.gather(*(batcher.submit(index) for index in range(len(outcomes))))
        await batcher.close()

    started_process = time.process_time_ns()
    asyncio.run(drive())
    result.ns["group_commit"] += time.process_time_ns() - started_process


def _finish(
    result: PathResult, front: FpsFront, prepared: list[Prepared], outcomes: list[Result]
) -> None:
    from penny.fps.actions import committed_result

    ids = [new_request_id() for _ in prepared]
    with _stage(result, "render"):
        for item, outcome, request_id in zip(prepared, outcomes, ids, strict=True):
            answer = committed_result(outcome)
            render_success(item.action, item.version, answer, request_id)  # type: ignore[arg-type]
    handler = _devnull_log_handler()
    try:
        with _stage(result, "log_metrics"):
            for item, request_id in zip(prepared, ids, strict=True):
                front.metrics.observe(item.action, "success", time.perf_counter_ns())
                log_request(RequestLog(request_id, item.action, None, 200, None, 1234))
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(handler)
        handler.flush()
        handler.close()
        with handler.lock:  # type: ignore[union-attr]  # its flusher thread flushes under the lock
            handler.stream.close()  # a StreamHandler leaves its stream open


def _devnull_log_handler() -> logging.StreamHandler:  # type: ignore[type-arg]
    """The handler ``penny serve`` logs through (penny.web.logs), writing to /dev/null."""
    handler = BufferedStderrHandler()
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (closed by the caller)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler
