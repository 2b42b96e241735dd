"""Finishing pending transactions whose money source has answered by now: a bank transfer's
funding or settlement, a withdrawal, a card or bank Pay on an authorization (issue #19). A
success posts the pending journal; a decline voids it (and a failed funding no longer counts
toward the instrument's funded total, a failed Pay toward the authorization's charged total)."""

from __future__ import annotations

from dataclasses import replace

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
from penny.ledger.model import PostPending, VoidPending
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


def complete_due(
    session: LedgerSession, limit: int, listener: ChangeListener | None
) -> list[Transaction]:
    """Post or void up to ``limit`` due pending transactions, oldest first."""
    conn, now = session.conn, session.now
    due = sql.load_transactions(conn, sql.due_transactions(conn, now, limit), lock=True)
    instrument_ids = {t.instrument_id for t in due.values() if t.instrument_id}
    instruments = sql.load_instruments(conn, instrument_ids, lock=True)
    finished: list[Transaction] = []
    changed: dict[str, Instrument] = {}
    for txn in sorted(due.values(), key=lambda t: (t.completes_at or 0, t.id)):
        assert txn.pending_journal_id is not None
        key = f"{txn.id}:complete"
        if txn.completes_ok:
            outcome = session.apply(PostPending(LEDGER_OWNER, key, txn.pending_journal_id))
            done = succeeded(txn, outcome.journal_id, now) if outcome.ok else None
        else:
            outcome = session.apply(VoidPending(LEDGER_OWNER, key, txn.pending_journal_id))
            done = None
        if done is None:
            done = _declined(txn, outcome.journal_id, now)
            instrument = changed.get(txn.instrument_id or "") or instruments.get(
                txn.instrument_id or ""
            )
            if instrument is not None and txn.operation is Operation.fund_prepaid:
                changed[instrument.id] = replace(
                    instrument, funded_total=instrument.funded_total - txn.amount
                )
            elif instrument is not None and instrument.kind is InstrumentKind.authorization:
                changed[instrument.id] = replace(
                    instrument, charged_total=instrument.charged_total - txn.amount
                )
        finished.append(done)
    session.flush()
    sql.update_transactions(conn, finished)
    sql.update_instruments(conn, changed.values())
    if listener is not None:
        listener.transactions_changed(
            session, [TransactionChange(txn, due.get(txn.id)) for txn in finished]
        )
    return finished
