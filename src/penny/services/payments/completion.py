"""Finishing transactions whose time has come: a pending one whose money source has answered
(a bank transfer's funding or settlement, a withdrawal, a card or bank Pay on an authorization)
and a reserve past its timeout (issue #19).

A success posts the pending journal; a decline voids it (and a failed funding no longer counts
toward the instrument's funded total, a failed Pay toward the authorization's charged total:
:func:`.holds.given_back`). A reserve nobody settled or cancelled in time is released
(:mod:`.holds`): ``Cancelled`` with status code ``Expired``. This is the one sweep of the
payments service: ``penny sandbox advance`` runs it after moving the sandbox clock.
"""

from __future__ import annotations

from dataclasses import replace

from penny.domain.ids import LEDGER_OWNER
from penny.domain.model import (
    EXPIRED_MESSAGE,
    Instrument,
    Status,
    StatusCode,
    Transaction,
)
from penny.engine.ledger import LedgerSession
from penny.ledger.model import PostPending, VoidPending
from penny.services.payments.holds import given_back, release
from penny.services.payments.listener import ChangeListener, TransactionChange
from penny.services.payments.steps import succeeded
from penny.storage import payments_sql as sql


def _declined(txn: Transaction, journal_id: int | None, now: int) -> Transaction:
    return replace(
        txn,
        fees=0,
        status=Status.failure,
        status_code=StatusCode.transaction_denied,
        status_message="The payment method was declined after processing.",
        completed_at=now,
        journal_id=journal_id,
    )


def _finished(
    session: LedgerSession, txn: Transaction, instrument: Instrument | None
) -> tuple[Transaction, Instrument | None]:
    """One due transaction finished, and its instrument when that changed."""
    assert txn.pending_journal_id is not None
    if txn.status is Status.reserved:
        return release(session, txn, instrument, StatusCode.expired, EXPIRED_MESSAGE)
    key = f"{txn.id}:complete"
    if txn.completes_ok:
        outcome = session.apply(PostPending(LEDGER_OWNER, key, txn.pending_journal_id))
        if outcome.ok:
            return succeeded(txn, outcome.journal_id, session.now), None
    else:
        outcome = session.apply(VoidPending(LEDGER_OWNER, key, txn.pending_journal_id))
    return _declined(txn, outcome.journal_id, session.now), given_back(txn, instrument)


def _still_due(txn: Transaction, now: int) -> bool:
    """Whether ``txn``, read under its lock, is still waiting for ``now``."""
    waiting = txn.status is Status.pending or txn.status is Status.reserved
    return waiting and txn.completes_at is not None and txn.completes_at <= now


def complete_due(
    session: LedgerSession, limit: int, listener: ChangeListener | None
) -> list[Transaction]:
    """Finish up to ``limit`` due pending transactions and as many expired reserves, oldest
    first.

    Several processes may sweep at once (every ``penny serve`` does): the rows found due are
    read again under a lock, and only those still due are finished, so a transaction another
    sweep (or a Cancel) finished in the meantime is left as it is — never posted twice."""
    conn, now = session.conn, session.now
    ids = sql.due_transactions(conn, now, limit)
    ids += sql.due_transactions(conn, now, limit, Status.reserved)
    locked = sql.load_transactions(conn, ids, lock=True)
    due = {i: t for i, t in locked.items() if _still_due(t, now)}
    instrument_ids = {t.instrument_id for t in due.values() if t.instrument_id}
    instruments = sql.load_instruments(conn, instrument_ids, lock=True)
    finished: list[Transaction] = []
    changed: dict[str, Instrument] = {}
    for txn in sorted(due.values(), key=lambda t: (t.completes_at or 0, t.id)):
        key = txn.instrument_id or ""
        done, instrument = _finished(session, txn, changed.get(key) or instruments.get(key))
        if instrument is not None:
            changed[instrument.id] = instrument
        finished.append(done)
    session.flush()
    sql.update_transactions(conn, [(due[txn.id], txn) for txn in finished])
    sql.update_instruments(conn, changed.values())
    if listener is not None:
        listener.transactions_changed(
            session, [TransactionChange(txn, due.get(txn.id)) for txn in finished]
        )
    return finished
