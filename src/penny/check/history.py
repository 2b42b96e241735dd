"""The record of a bank-test run (:mod:`penny.check.bank`), which the checker
(:mod:`penny.check.verify`) reads: the configuration, the world set up, every operation and
fault event, the history file, and the facts read from the store afterwards.

Both the run and the checker import these types from here, so neither imports the other's
module to name them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from penny.check.client import Credentials

#: Event kinds of the database faults (plotted and counted).
FAILOVER: Final = "failover"
SWITCHOVER: Final = "switchover"


@dataclass(frozen=True)
class BankConfig:
    store: str = "sqlite"
    database_url: str | None = None
    processes: int = 1
    buyers: int = 8
    merchants: int = 3
    clients: int = 8
    duration_s: float = 20.0
    kills: int = 5
    seed: int = 1
    out_dir: Path = Path("bank-check")
    faults: str | None = None
    restart_database: bool = True
    #: ``--store patroni``: leader kills and planned switchovers (penny.check.ha).
    failovers: int = 2
    switchovers: int = 1


@dataclass(frozen=True)
class Merchant:
    index: int
    party_id: str
    creds: Credentials
    #: The recipient token the next merchant gave this one (its marketplace Pays, #19).
    recipient_token: str = ""


@dataclass(frozen=True)
class Buyer:
    index: int
    merchant: int
    prepaid_id: str
    prepaid_token: str
    funding_token: str
    credit_id: str
    credit_token: str
    settlement_token: str
    #: A Recurring token on the buyer's card at the merchant: a subscription (#19).
    subscription_token: str = ""


@dataclass(frozen=True)
class World:
    merchants: tuple[Merchant, ...]
    buyers: tuple[Buyer, ...]


@dataclass
class Op:
    """One operation of the history. Times are seconds since the run started."""

    id: int
    client: int
    kind: str
    merchant: int
    buyer: int | None = None
    reference: str | None = None
    amount: int = 0
    #: Refund: the refunded transaction, and whether it was a credit (postpaid) payment.
    target: str | None = None
    target_credit: bool = False
    invoked: float = 0.0
    completed: float | None = None
    #: ``ok`` (HTTP 200), ``refused`` (an FPS error, 4xx), ``unknown`` (no answer).
    outcome: str = "pending"
    transaction_id: str | None = None
    status: str | None = None
    error: str | None = None
    #: Reads: the main balance and the pending part, in cents.
    value: int | None = None
    pending: int | None = None
    sent: int = 0
    faults: list[str] = field(default_factory=list)


@dataclass
class Event:
    t: float
    kind: str  # kill, up, db-down, db-up
    detail: str


@dataclass
class RunRecord:
    config: BankConfig
    world: World
    ops: list[Op]
    events: list[Event]
    started_at: float
    duration_s: float
    database_url: str
    restart_s: list[float]
    audit_clean: bool
    audit_output: str
    #: What the store holds after the run (read before a throwaway cluster goes away).
    facts: Facts
    #: ``--store patroni``: every node after catch-up, and the figures of each failover.
    replicas: list[Any] = field(default_factory=list)
    failovers: list[dict[str, Any]] = field(default_factory=list)


class History:
    """The history file: one JSON line per invocation (before sending), per completion and per
    nemesis event."""

    def __init__(self, path: Path, t0: float) -> None:
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self._t0 = t0
        self.ops: list[Op] = []

    def now(self) -> float:
        return time.monotonic() - self._t0

    def invoke(self, op: Op) -> None:
        op.invoked = self.now()
        with self._lock:
            self.ops.append(op)
            self._write({"type": "invoke", **_op_fields(op)})

    def complete(self, op: Op) -> None:
        op.completed = self.now() if op.outcome != "unknown" else None
        with self._lock:
            self._write({"type": "complete", **_op_fields(op)})

    def fault(self, event: Event) -> None:
        with self._lock:
            self._write({"type": "nemesis", **asdict(event)})

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _op_fields(op: Op) -> dict[str, Any]:
    return {k: v for k, v in asdict(op).items() if v is not None and v != [] and k != "faults"}


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    operation: str
    caller_id: str
    caller_reference: str
    amount: int
    status: str
    journal_id: int | None
    instrument_id: str | None


@dataclass
class Facts:
    rows: list[Row]
    #: journal id → (result code, number of legs)
    journals: dict[int, tuple[int, int]]
    duplicate_keys: list[str]
