"""The batch runner: load a batch's working set, decide each request in order, write once.

:func:`run_batch` is the body of one database transaction (:meth:`Ledger.run`): the
transactions already recorded under the batch's caller references are looked up first, then
every request is decided in order against the state the requests before it left, and what
they changed is written with one statement per table. So:

* the same reference with the same content returns the original transaction, with no second
  effect; the same reference with other content is ``DuplicateRequest`` and changes nothing;
* a refused request (an error, no transaction id) changes nothing and is not remembered, so it
  may be retried with the same reference once the cause is gone (docs/decisions.md);
* nothing is reported before it has committed (the caller commits after this returns).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.ids import MAX_CALLER_REFERENCE
from penny.domain.model import AUTHORIZATION_TOKEN_KINDS, InstrumentKind, Transaction
from penny.engine.ledger import LedgerSession
from penny.services import gatekeeper as gk
from penny.services.payments.batch import Batch, Needs, Settings
from penny.services.payments.listener import ChangeListener, Known, TransactionChange
from penny.services.payments.registry import spec_of
from penny.services.payments.requests import PaymentRequest, Result, fingerprint
from penny.services.payments.steps import installed_slot
from penny.storage import gatekeeper_sql as gk_sql
from penny.storage import marketplace_sql as market_sql
from penny.storage import parties_sql
from penny.storage import payments_sql as sql


def run_batch(
    session: LedgerSession,
    chart: rules.Chart,
    settings: Settings,
    listener: ChangeListener | None,
    requests: Sequence[PaymentRequest],
) -> list[Result]:
    """Decide and record ``requests`` in the session's transaction; one result each."""
    batch = load(session, chart, settings, requests)
    results: list[Result] = []
    for request in requests:
        try:
            results.append(decide(batch, request))
        except PaymentsError as refused:
            results.append(refused)
    write(batch, listener)
    return results


def decide(batch: Batch, request: PaymentRequest) -> Transaction:
    """One request: a retry's original answer, or its operation's decision."""
    print_ = fingerprint(request)
    key = (request.caller_id, request.caller_reference)
    if not request.caller_reference or len(request.caller_reference) > MAX_CALLER_REFERENCE:
        raise PaymentsError(Refusal.invalid_params, "CallerReference must be 1 to 128 chars")
    previous = batch.known.get(key)
    if previous is not None:
        if previous.fingerprint != print_:
            raise PaymentsError(Refusal.duplicate_request)
        return previous
    spec = spec_of(request)
    txn = spec.decide(batch, request, print_)
    if not spec.records:
        return txn
    batch.known[key] = txn
    batch.new_transactions.append(txn)
    return txn


def _ids(needs: Iterable[Needs], field: str) -> list[str]:
    return [item for need in needs for item in getattr(need, field)]


def load(
    session: LedgerSession,
    chart: rules.Chart,
    settings: Settings,
    requests: Sequence[PaymentRequest],
) -> Batch:
    """Everything ``requests`` refer to, in a few bulk reads (rows they change locked)."""
    conn = session.conn
    references = [(r.caller_id, r.caller_reference) for r in requests]
    session.lock_keys("fps", references)
    known = sql.transactions_by_reference(conn, references)
    specs = [spec_of(r) for r in requests]
    needs = [spec.needs(r) for spec, r in zip(specs, requests, strict=True)]
    originals = sql.load_transactions(conn, _ids(needs, "transactions"), lock=True)
    tokens = sql.load_tokens(conn, _ids(needs, "tokens"))
    instrument_ids = {t.instrument_id for t in tokens.values()}
    instrument_ids.update(o.instrument_id for o in originals.values() if o.instrument_id)
    instrument_ids.update(_ids(needs, "instruments"))
    instruments = sql.load_instruments(conn, instrument_ids, lock=True)
    party_ids = set(_ids(needs, "parties"))
    recipient_token_ids = _ids(needs, "recipient_tokens")
    recipient_tokens = {}
    if recipient_token_ids:  # the marketplace (#19): only Pays that name a RecipientTokenId
        recipient_tokens = market_sql.load_recipient_tokens(conn, recipient_token_ids)
        party_ids.update(t.recipient_id for t in recipient_tokens.values())
    # A refund's original: a marketplace Pay's recipient is not the instrument's.
    party_ids.update(o.recipient_id for o in originals.values())
    party_ids.update(i.recipient_id for i in instruments.values())
    # Pays on an authorization (issue #19), and their refunds, may move the buyer's balance.
    authorizing = [t for t in tokens.values() if t.kind in AUTHORIZATION_TOKEN_KINDS]
    authorized = any(i.kind is InstrumentKind.authorization for i in instruments.values())
    if authorized or any(spec.loads_senders for spec in specs):
        party_ids.update(i.sender_id for i in instruments.values())
    parties = parties_sql.load_parties(conn, party_ids)
    methods = parties_sql.load_payment_methods(
        conn, (t.payment_method_id for t in tokens.values() if t.payment_method_id)
    )
    accounts = {chart.external_funding, chart.fees}
    accounts.update(i.ledger_account_id for i in instruments.values())
    for party in parties.values():
        accounts.update(party.ledger_accounts.values())
    # Holds the batch posts or releases (Settle, Cancel): pending journals lock first.
    holds = [o.pending_journal_id for o in originals.values() if o.pending_journal_id]
    if holds:
        session.load(pending_ids=holds)
    session.load(account_ids=accounts)
    batch = Batch(session, chart, settings, known, tokens, instruments, parties, methods, originals)
    batch.recipient_tokens = recipient_tokens
    slots = [gk.authorization_slot(t) for t in authorizing]
    instruction_ids = _ids(needs, "instructions")
    if instruction_ids:
        batch.instructions = gk_sql.load_instructions(conn, instruction_ids)
        slots.extend(installed_slot(i) for i in batch.instructions.values())
    if slots:
        batch.guard.prepare(session, slots)
    return batch


def write(batch: Batch, listener: ChangeListener | None) -> None:
    """What the batch changed, one statement per table; the listener writes its own rows."""
    session, conn = batch.session, batch.session.conn
    session.flush()  # journals first: transactions refer to them
    sql.insert_transactions(conn, batch.new_transactions)
    sql.update_instruments(conn, batch.changed_instruments.values())
    # Every changed transaction was read (locked) into ``originals`` when the batch loaded.
    updated = [(batch.originals[t.id], t) for t in batch.changed_transactions.values()]
    sql.update_transactions(conn, updated)
    batch.guard.save(conn)
    if listener is not None:
        changes = [TransactionChange(txn, None) for txn in batch.new_transactions]
        changes.extend(TransactionChange(txn, was) for was, txn in updated)
        listener.transactions_changed(session, changes, Known(batch.parties, batch.instruments))
