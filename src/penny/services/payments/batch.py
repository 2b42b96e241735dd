"""One batch's working set, and the shape every money-moving operation has.

A batch of requests runs in one database transaction. :mod:`.runner` loads everything the
batch refers to (what each operation's :attr:`OperationSpec.needs` names) into a
:class:`Batch`, lets each operation's pure :attr:`OperationSpec.decide` run against it in
order, and writes what they changed. A decision sees the state the requests before it left
(instrument counters, ledger balances) and knows nothing of SQL, HTTP or the clock: the batch
carries the transaction's time (:attr:`Batch.now`) and the ledger's in-memory working set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from penny.domain import rules
from penny.domain.fees import FeeSchedule
from penny.domain.funding import FundingSource
from penny.domain.model import Instrument, PaymentInstruction, Token, Transaction
from penny.domain.parties import Party, PaymentMethod
from penny.engine.ledger import LedgerSession
from penny.services import gatekeeper as gk
from penny.services.payments.requests import PaymentRequest


@dataclass(frozen=True, slots=True)
class Settings:
    """How the service decides: fees, the money source, new ids, whether scripts run."""

    fees: FeeSchedule
    funding: FundingSource
    new_id: Callable[[int], str]
    #: Evaluate the tokens' GateKeeper scripts (off only to measure their cost).
    check_scripts: bool = True


@dataclass(frozen=True, slots=True)
class Needs:
    """The rows one request refers to, by id (the runner loads them for the whole batch)."""

    tokens: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    #: Earlier transactions the request changes (a refund's original), loaded locked.
    transactions: tuple[str, ...] = ()
    parties: tuple[str, ...] = ()
    #: Payment instructions the caller installed (GateKeeper scripts in the recipient slot).
    instructions: tuple[str, ...] = ()


@dataclass
class Batch:
    """What one batch has loaded and changed, beyond the ledger's own working set."""

    session: LedgerSession
    chart: rules.Chart
    settings: Settings
    known: dict[tuple[str, str], Transaction]
    tokens: dict[str, Token]
    instruments: dict[str, Instrument]
    parties: dict[str, Party]
    methods: dict[str, PaymentMethod]
    originals: dict[str, Transaction]
    instructions: dict[str, PaymentInstruction] = field(default_factory=dict)
    guard: gk.Guard = field(default_factory=gk.Guard)
    new_transactions: list[Transaction] = field(default_factory=list)
    changed_instruments: dict[str, Instrument] = field(default_factory=dict)
    changed_transactions: dict[str, Transaction] = field(default_factory=dict)

    @property
    def now(self) -> int:
        return self.session.now

    def put_instrument(self, instrument: Instrument) -> None:
        self.instruments[instrument.id] = instrument
        self.changed_instruments[instrument.id] = instrument


R = TypeVar("R", bound=PaymentRequest)


@dataclass(frozen=True, slots=True)
class OperationSpec(Generic[R]):
    """One money-moving operation: its request type, what it reads, and its decision.

    ``decide(batch, request, fingerprint)`` returns the new transaction or raises
    :class:`~penny.domain.errors.PaymentsError`; it runs after the runner has checked the
    caller reference and answered retries, so it only ever sees a request for the first time.
    """

    request_type: type[R]
    needs: Callable[[R], Needs]
    decide: Callable[[Batch, R, str], Transaction]
    #: Whether the decision reads its instruments' senders (a charge from the buyer's
    #: balance does); otherwise only their recipients are loaded (#14: half the rows).
    loads_senders: bool = False
    #: Whether the decision is a new transaction, recorded under the request's reference;
    #: Cancel's is the cancelled transaction itself (changed, not new).
    records: bool = True
