"""Releasing a transaction's hold: what Cancel and the expiry of a reserve share.

A Reserve (and a pending charge: a bank transfer's funding or settlement, a withdrawal) holds
its amount in a pending journal. Releasing it voids that journal, so nothing moves, and gives
back what the transaction counted on its instrument (:func:`given_back`). Pure over a ledger
session.
"""

from __future__ import annotations

from dataclasses import replace

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.ids import LEDGER_OWNER
from penny.domain.model import (
    Instrument,
    InstrumentKind,
    Operation,
    Status,
    StatusCode,
    Transaction,
)
from penny.engine.ledger import LedgerSession
from penny.ledger.model import VoidPending


def releasable(txn: Transaction) -> bool:
    """Whether ``txn`` still holds its amount: a Reserved one, or a pending charge."""
    return txn.pending_journal_id is not None and txn.status in (Status.reserved, Status.pending)


def release(
    session: LedgerSession,
    txn: Transaction,
    instrument: Instrument | None,
    code: StatusCode,
    message: str,
) -> tuple[Transaction, Instrument | None]:
    """Void ``txn``'s hold: the transaction ``Cancelled`` with ``code``, and its instrument
    with the counters it had taken back (``None`` when they did not change)."""
    assert txn.pending_journal_id is not None
    key = f"{txn.id}:{code.value.lower()}"
    outcome = session.apply(VoidPending(LEDGER_OWNER, key, txn.pending_journal_id))
    if not outcome.ok:  # the hold was posted or released under another key already
        raise PaymentsError(Refusal.invalid_transaction_state)
    done = replace(
        txn,
        fees=0,
        marketplace_fee=0,  # nothing was charged, so no fee was taken (#19)
        status=Status.cancelled,
        status_code=code,
        status_message=message,
        completed_at=session.now,
        completes_at=None,
    )
    return done, given_back(txn, instrument)


def given_back(txn: Transaction, instrument: Instrument | None) -> Instrument | None:
    """``instrument`` without what ``txn`` (released or failed) had counted on it: a funding
    toward the funding limit, a reserve on a credit line or any payment on an authorization
    toward the global amount limit. ``None`` when nothing changes."""
    if instrument is None:
        return None
    if txn.operation is Operation.fund_prepaid:
        return replace(instrument, funded_total=instrument.funded_total - txn.amount)
    counted = instrument.kind is InstrumentKind.authorization or (
        txn.operation is Operation.reserve and instrument.kind is InstrumentKind.credit
    )
    if counted:
        return replace(instrument, charged_total=max(0, instrument.charged_total - txn.amount))
    return None
