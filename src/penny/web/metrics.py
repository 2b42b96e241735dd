"""Prometheus metrics of one application, exposed at ``/metrics`` (text exposition format).

Every application gets its own :class:`~prometheus_client.CollectorRegistry` (never the
process-global one), so several apps in one process (tests) never collide.

* ``penny_fps_requests_total{action, outcome}``: FPS requests answered; ``outcome`` is
  ``success`` or the FPS error code sent back.
* ``penny_fps_request_duration_seconds{action}``: time from the request's arrival to its
  answer (the library's default buckets, 5 ms to 10 s).
* ``penny_ledger_batches_total``, ``penny_ledger_commands_total``,
  ``penny_ledger_batch_retries_total``: read from :attr:`Ledger.stats` at scrape time.
* ``penny_ledger_batch_commands``: commands per committed batch (a histogram), observed by
  :class:`MeteredLedger`.

``action`` is one of the 27 FPS action names, ``none`` (no ``Action`` parameter, or the
request was refused before it was read) or ``other`` (any other value): a client cannot grow
the number of series by sending made-up names. The JSON API's requests are counted in the same
series under their operation ids (``createPayment``; ``outcome`` is the error ``code``).

Durations are measured in integer nanoseconds and handed to the library in the seconds it
keeps through :class:`datetime.timedelta` (:meth:`AppMetrics.observe`): no float in Penny's
own code.

With ``penny serve --workers N`` (N > 1) every worker process keeps its own registry, so one
scrape sees one worker; Prometheus multiprocess mode is not set up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Final, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.context_managers import Timer
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from penny.api.routes import ROUTES
from penny.clock import Clock
from penny.domain.errors import FPS_ERRORS, Refusal
from penny.engine.ledger import Ledger, LedgerSession
from penny.fps.wire import ACTIONS_2010_08_28
from penny.storage.database import Database

T = TypeVar("T")

#: Content type of :meth:`AppMetrics.exposition`.
METRICS_CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

#: Buckets of the commands-per-batch histogram (the group committer's batches reach 2000).
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

NO_ACTION: Final = "none"
#: The outcome of a request that never said: the table's code for an unexpected failure.
_INTERNAL_ERROR: Final = FPS_ERRORS[Refusal.internal_error].code
OTHER_ACTION: Final = "other"
SUCCESS: Final = "success"


#: The JSON API's operations, by the name their requests are counted under.
API_OPERATIONS: Final = frozenset(route.operation_id for route in ROUTES)


def action_label(action: str | None) -> str:
    """The ``action`` label of a request's ``Action`` parameter (bounded, see module doc)."""
    if not action:
        return NO_ACTION
    if action in ACTIONS_2010_08_28 or action in API_OPERATIONS:
        return action
    return OTHER_ACTION


class MeteredLedger(Ledger):
    """A :class:`Ledger` that reports the number of commands of every committed batch."""

    def __init__(self, database: Database, clock: Clock | None = None) -> None:
        super().__init__(database, clock)
        self.on_batch: Callable[[int], None] | None = None

    def run(self, work: Callable[[LedgerSession], T]) -> T:
        sessions: list[LedgerSession] = []

        def tracked(session: LedgerSession) -> T:
            sessions.append(session)
            return work(session)

        result = super().run(tracked)
        # The last session is the attempt that committed (earlier ones were rolled back).
        if self.on_batch is not None and sessions:
            self.on_batch(sessions[-1].applied)
        return result


class _LedgerStatsCollector:
    """Counters of :attr:`Ledger.stats`, read when Prometheus scrapes."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def collect(self) -> Iterable[Metric]:
        stats = self.ledger.stats
        for name, documentation, value in (
            ("penny_ledger_batches", "Ledger batches committed.", stats.batches),
            (
                "penny_ledger_commands",
                "Ledger commands applied in committed batches.",
                stats.commands,
            ),
            (
                "penny_ledger_batch_retries",
                "Ledger batches re-run after a conflict with another writer.",
                stats.retries,
            ),
        ):
            yield CounterMetricFamily(name, documentation, value=value)


class AppMetrics:
    """The metrics of one application and its ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "penny_fps_requests",
            "FPS requests answered, by action and outcome (success or the FPS error code).",
            ("action", "outcome"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "penny_fps_request_duration_seconds",
            "Time to answer an FPS request, by action.",
            ("action",),
            registry=self.registry,
        )
        self.batch_commands = Histogram(
            "penny_ledger_batch_commands",
            "Commands per committed ledger batch.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_LedgerStatsCollector(ledger))
        self._counted: dict[tuple[str, str], Counter] = {}
        self._timed: dict[str, Histogram] = {}
        if isinstance(ledger, MeteredLedger):
            ledger.on_batch = self.batch_commands.observe

    @contextmanager
    def timed(self) -> Iterator[Callable[[str | None, str], None]]:
        """Time one request; call the yielded function with its action and outcome once known.

        A request whose outcome was never given is counted with action ``none`` and outcome
        ``InternalError``.
        """
        timer: Timer = self.latency.time()
        seen: list[tuple[str, str]] = []

        def record(action: str | None, outcome: str) -> None:
            seen.append((action_label(action), outcome))

        with timer:
            try:
                yield record
            finally:
                label, outcome = seen[-1] if seen else (NO_ACTION, _INTERNAL_ERROR)
                timer.labels(label)  # type: ignore[no-untyped-call]
                self.requests.labels(label, outcome).inc()

    def observe(self, action: str | None, outcome: str, started_ns: int) -> None:
        """Count one answered request and its time since ``started_ns``
        (:func:`time.perf_counter_ns`): the cheap form of :meth:`timed` for the FPS front,
        with the labelled series looked up once each (#14)."""
        label = action_label(action)
        counted = self._counted.get((label, outcome))
        if counted is None:
            counted = self._counted[(label, outcome)] = self.requests.labels(label, outcome)
        timed = self._timed.get(label)
        if timed is None:
            timed = self._timed[label] = self.latency.labels(label)
        counted.inc()
        # The library keeps seconds: timedelta does the conversion (a duration, never money).
        elapsed = timedelta(microseconds=(time.perf_counter_ns() - started_ns) // 1000)
        timed.observe(elapsed.total_seconds())

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
