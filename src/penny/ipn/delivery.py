"""Delivering IPNs: claim due notifications, POST them signed, record every attempt.

A lane (:meth:`Deliverer.lane`) goes round after round. Each round is one write transaction
that records the previous round's results and claims up to ``batch`` due notifications
(:func:`penny.storage.ipn_sql.claim_due`: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write
lock on SQLite); the claimed ones are signed in a worker thread
(:meth:`penny.signing.Signer.signed_post`: ``signatureVersion=2``, ``RSA-SHA1``,
``certificateUrl``, ``signature``) and POSTed concurrently with httpx, form-encoded, never
following a redirect, each bounded by the timeout.

* 2xx: delivered.
* Any other status, a redirect, a timeout, a refused connection, a name that does not
  resolve: retried after an exponential, jittered delay (:func:`retry_delay`), until the next
  attempt would fall past the horizon (3 days after the notification, or after
  ``penny ipn retry``); then ``failed``.
* A URL that cannot be signed or, with the SSRF guard, a non-public address: ``failed`` at
  once (retrying cannot help; an operator can ``penny ipn retry`` after fixing it).

Webhook deliveries (kind ``webhook``, :mod:`penny.webhooks`) share all of this: they are
claimed, retried and recorded the same way; only their body (the event's JSON) and headers
(Standard Webhooks, signed with the endpoint's secret, unsealed with ``server_key``) differ,
made by :mod:`penny.webhooks.delivery`.

:class:`DeliveryRunner` keeps ``lanes`` lanes going in the server's event loop (started by
the application's lifespan); :func:`drain` runs lanes until nothing is due (the CLI, tests).
Times for scheduling come from the clock handed in (the sandbox clock in ``penny serve``, so
``penny sandbox advance`` also brings retries forward); durations are measured in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from sqlalchemy.exc import SQLAlchemyError

from penny import __version__
from penny.clock import Clock
from penny.fps.outbound import OutboundError
from penny.ipn.guard import BlockedAddressError, Target, pinned_target
from penny.ipn.settings import IpnSettings
from penny.security import ServerKey
from penny.signing import Signer
from penny.storage import ipn_sql
from penny.storage.database import Database
from penny.storage.webhooks_sql import WEBHOOK
from penny.webhooks import delivery as webhooks

logger = logging.getLogger(__name__)

CONTENT_TYPE: Final = "application/x-www-form-urlencoded; charset=utf-8"
USER_AGENT: Final = f"Penny-IPN/{__version__}"
NOTIFICATION_HEADER: Final = "X-Penny-Notification-Id"

# Attempt outcomes (ipn_attempts.outcome).
DELIVERED: Final = "delivered"
HTTP_ERROR: Final = "http_error"
REDIRECT: Final = "redirect"
TIMEOUT: Final = "timeout"
NETWORK: Final = "network"
REFUSED: Final = "refused"


def seconds(micros: int) -> Any:
    """Microseconds as the seconds asyncio and httpx take (kept out of Penny's integer time)."""
    return timedelta(microseconds=micros).total_seconds()


def retry_delay(settings: IpnSettings, attempt: int, rng: random.Random) -> int:
    """How long (µs) to wait after failed attempt number ``attempt`` (1, 2, …): a uniform
    random time in [d/2, d] with d = min(max_delay, base_delay × 2^(attempt−1))."""
    exponent = min(attempt - 1, 62)
    full: int = min(settings.max_delay_us, settings.base_delay_us * (1 << exponent))
    return full // 2 + rng.randrange(full // 2 + 1)


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class _Sent:
    """What one POST did, before it is turned into a result."""

    outcome: str
    http_status: int | None = None
    error: str | None = None
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A claimed notification and its signed body (``None``: ``refusal`` says why not)."""

    claimed: ipn_sql.Claimed
    body: bytes | None
    refusal: str | None
    content_type: str = CONTENT_TYPE
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class DrainReport:
    rounds: int = 0
    attempts: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Deliverer:
    """Claims, sends and records notifications for one process."""

    def __init__(
        self,
        database: Database,
        signer: Signer,
        clock: Clock,
        settings: IpnSettings,
        *,
        worker: str | None = None,
        rng: random.Random | None = None,
        server_key: ServerKey | None = None,
        wall: Callable[[], int] = time.time_ns,
    ) -> None:
        self.database = database
        #: Unseals webhook endpoints' secrets (without it webhook deliveries fail).
        self.server_key = server_key
        #: The wall clock (ns) of ``webhook-timestamp``: receivers compare it with theirs.
        self.wall = wall
        self.signer = signer
        self.clock = clock
        self.settings = settings
        self.worker = worker or default_worker_name()
        self.rng = rng or random.Random()
        self.report = DrainReport()

    def client(self) -> httpx.AsyncClient:
        """An HTTP client as deliveries need it: no redirects, no proxies from the env."""
        return httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(seconds(self.settings.timeout_us)),
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=max(1, self.settings.batch * 4)),
        )

    # -- a lane ---------------------------------------------------------------------------

    async def lane(self, client: httpx.AsyncClient, stop: asyncio.Event | None = None) -> None:
        """Deliver round after round: each round records the previous round's results and
        claims the next batch in one transaction, signs off the event loop, then POSTs the
        batch concurrently. Without ``stop`` it returns once nothing is due (a drain); with
        it, it waits ``poll_us`` when idle and returns when ``stop`` is set."""
        results: list[ipn_sql.AttemptResult] = []
        while True:
            stopping = stop is not None and stop.is_set()
            prepared = await asyncio.to_thread(self.exchange, results, claim=not stopping)
            results = []
            if stopping:
                return
            if not prepared:
                if stop is None:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), seconds(self.settings.poll_us))
                continue
            self.report.rounds += 1
            results = list(await asyncio.gather(*(self._attempt(client, p) for p in prepared)))

    def exchange(
        self, results: Sequence[ipn_sql.AttemptResult], *, claim: bool = True
    ) -> list[_Prepared]:
        """Record ``results`` and claim what is due now, in one transaction, then sign what
        was claimed (blocking). If the transaction fails, the claims behind ``results`` run
        out and those notifications are sent again (at-least-once)."""
        now = self.clock.now_us()
        claimed: list[ipn_sql.Claimed] = []
        material = webhooks.Material({}, {})
        try:
            if claim and not results:
                with self.database.read() as conn:
                    due = ipn_sql.next_due(conn)
                claim = due is not None and due <= now
            if not claim and not results:
                return []
            with self.database.write() as conn:
                ipn_sql.record_results(conn, results)
                if claim:
                    claimed = ipn_sql.claim_due(
                        conn,
                        now=now,
                        limit=self.settings.batch,
                        lease_until=now + self.settings.lease_us,
                        worker=self.worker,
                        claim=secrets.token_hex(8),
                        skip_locked=self.database.is_postgresql,
                    )
                    hooks = [c for c in claimed if c.kind == WEBHOOK]
                    material = webhooks.load(conn, hooks) if hooks else material
        except SQLAlchemyError as error:
            logger.warning("IPN: could not record or claim notifications: %s", error)
            return []
        self._count(results)
        return [self._prepare(c, material) for c in claimed]

    def _count(self, results: Sequence[ipn_sql.AttemptResult]) -> None:
        report = self.report
        for result in results:
            report.attempts += 1
            report.outcomes[result.outcome] = report.outcomes.get(result.outcome, 0) + 1
            if result.state == ipn_sql.DELIVERED:
                report.delivered += 1
            elif result.state == ipn_sql.FAILED:
                report.failed += 1
            else:
                report.retrying += 1

    def _prepare(self, claimed: ipn_sql.Claimed, material: webhooks.Material) -> _Prepared:
        """The signed body of ``claimed``, or why it can never be sent."""
        if claimed.kind == WEBHOOK:
            signed = webhooks.sign(material, claimed, self.server_key, self.wall() // 1_000_000_000)
            if isinstance(signed, str):
                return _Prepared(claimed, None, f"not deliverable: {signed}")
            return _Prepared(claimed, signed.body, None, webhooks.CONTENT_TYPE, signed.headers)
        try:
            fields = self.signer.signed_post(
                self.settings.public_url, claimed.url, dict(claimed.params)
            )
        except OutboundError as error:
            return _Prepared(claimed, None, f"not deliverable: {error}")
        return _Prepared(claimed, urlencode(fields).encode("ascii"), None)

    async def _attempt(
        self, client: httpx.AsyncClient, prepared: _Prepared
    ) -> ipn_sql.AttemptResult:
        claimed = prepared.claimed
        started = time.perf_counter_ns()
        sent = await self._send(client, prepared)
        duration_us = (time.perf_counter_ns() - started) // 1000
        finished_at = self.clock.now_us()
        if sent.outcome == DELIVERED:
            state, next_at = ipn_sql.DELIVERED, None
        elif sent.permanent:
            state, next_at = ipn_sql.FAILED, None
        else:
            next_at = finished_at + retry_delay(self.settings, claimed.number, self.rng)
            past_horizon = next_at > claimed.window_start + self.settings.horizon_us
            state = ipn_sql.FAILED if past_horizon else ipn_sql.PENDING
        return ipn_sql.AttemptResult(
            claimed,
            finished_at=finished_at,
            duration_us=duration_us,
            http_status=sent.http_status,
            outcome=sent.outcome,
            error=sent.error,
            state=state,
            next_attempt_at=next_at if state == ipn_sql.PENDING else None,
        )

    async def _send(self, client: httpx.AsyncClient, prepared: _Prepared) -> _Sent:
        claimed, body = prepared.claimed, prepared.body
        if body is None:
            return _Sent(REFUSED, error=prepared.refusal, permanent=True)
        headers = {"Content-Type": prepared.content_type, NOTIFICATION_HEADER: claimed.id}
        headers.update(prepared.headers)
        try:
            async with asyncio.timeout(seconds(self.settings.timeout_us)):
                target = (
                    await pinned_target(claimed.url)
                    if self.settings.ssrf_guard
                    else Target(claimed.url)
                )
                extensions = {}
                if target.host_header is not None:
                    headers["Host"] = target.host_header
                if target.sni_hostname is not None:
                    extensions["sni_hostname"] = target.sni_hostname
                request = client.build_request(
                    "POST", target.url, content=body, headers=headers, extensions=extensions
                )
                response = await client.send(request, stream=True)
                await response.aclose()
        except BlockedAddressError as error:
            return _Sent(REFUSED, error=f"SSRF guard: {error}", permanent=True)
        except (TimeoutError, httpx.TimeoutException):
            waited = self.settings.timeout_us // 1000
            return _Sent(TIMEOUT, error=f"no answer within {waited} ms")
        except (httpx.HTTPError, OSError) as error:
            return _Sent(NETWORK, error=f"{type(error).__name__}: {error}"[:300])
        status = response.status_code
        if 200 <= status < 300:
            return _Sent(DELIVERED, status)
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            return _Sent(REDIRECT, status, f"redirect to {location[:200]!r} not followed")
        return _Sent(HTTP_ERROR, status, f"HTTP {status}")


async def drain_async(deliverer: Deliverer, *, lanes: int = 1) -> DrainReport:
    """Deliver until nothing is due now, in ``lanes`` concurrent lanes."""
    async with deliverer.client() as client:
        await asyncio.gather(*(deliverer.lane(client) for _ in range(max(1, lanes))))
    return deliverer.report


def drain(deliverer: Deliverer, *, lanes: int = 1) -> DrainReport:
    """:func:`drain_async` from synchronous code (the CLI, tests)."""
    return asyncio.run(drain_async(deliverer, lanes=lanes))


class DeliveryRunner:
    """``lanes`` delivery loops in the running event loop (the server's lifespan)."""

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        lanes = self.deliverer.settings.lanes
        if lanes == 0:
            return
        self._client = self.deliverer.client()
        self._tasks = [
            asyncio.create_task(self._lane(self._client), name=f"ipn-lane-{i}")
            for i in range(lanes)
        ]

    async def _lane(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            try:
                await self.deliverer.lane(client, self._stop)
            except Exception:
                logger.exception("IPN delivery lane failed; restarting it")
                await asyncio.sleep(seconds(self.deliverer.settings.poll_us))

    async def stop(self, grace_us: int = 2_000_000) -> None:
        """Stop the lanes: a round under way gets ``grace_us`` to finish and be recorded,
        then is cancelled (its notifications are sent again once their lease runs out)."""
        self._stop.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=seconds(grace_us))
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
