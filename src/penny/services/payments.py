"""The payments service: FPS Aggregated Payments operations, durable and idempotent.

Every mutating request carries the caller's ``CallerReference``. A batch of requests runs in
one database transaction through :meth:`Ledger.run`: the transactions already recorded under the
batch's references are looked up first, then every request is decided in order against the state
the requests before it left (instrument counters, balances), and its journal is applied by the
ledger in the same transaction. So:

* the same reference with the same content returns the original transaction, with no second
  effect; the same reference with other content is ``DuplicateRequest`` and changes nothing;
* a refused request (an error, no transaction id) changes nothing and is not remembered, so it
  may be retried with the same reference once the cause is gone (docs/decisions.md);
* nothing is reported before it has committed.

Money sources are decided by a :class:`~penny.domain.funding.FundingSource`; a pending one
(a bank transfer) is a pending journal, posted or voided by :meth:`Payments.complete_due` when
its time comes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import Connection

from penny.clock import MICROS_PER_DAY, Clock
from penny.domain import rules
from penny.domain.errors import LEDGER_REFUSALS, PaymentsError, Refusal
from penny.domain.fees import FeeSchedule, Method
from penny.domain.funding import ChargeOutcome, FundingSource, SandboxFunding
from penny.domain.model import (
    PENDING_MESSAGE,
    SUCCESS_MESSAGE,
    Instrument,
    InstrumentKind,
    Operation,
    PaymentInstruction,
    Status,
    Token,
    TokenKind,
    TokenStatus,
    Transaction,
)
from penny.domain.parties import Party, PartyKind, PaymentMethod, PaymentMethodKind, random_id
from penny.engine.ledger import Ledger, LedgerSession
from penny.gatekeeper import Role
from penny.ledger.model import AccountFlags, AccountSpec, NewJournal, PostPending, VoidPending
from penny.money import Money
from penny.services import gatekeeper as gk
from penny.services.payment_queries import (
    PaymentQueries,
    books_of,
)
from penny.storage import gatekeeper_sql as gk_sql
from penny.storage import parties_sql
from penny.storage import payments_sql as sql

#: How long a sandbox withdrawal to the merchant's bank takes.
WITHDRAWAL_DAYS = 4
#: Owner of every ledger journal the payments service books (keys are transaction ids).
LEDGER_OWNER = "penny"
TRANSACTION_ID_LENGTH = 35
TOKEN_ID_LENGTH = 64


# -- requests ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayRequest:
    caller_id: str
    caller_reference: str
    sender_token_id: str
    amount: Money
    sender_description: str = ""
    caller_description: str = ""
    ipn_url: str | None = None
    #: A payment instruction the caller installed (InstallPaymentInstruction), evaluated in the
    #: recipient's slot (docs/decisions.md #7).
    recipient_token_id: str | None = None


@dataclass(frozen=True, slots=True)
class FundPrepaidRequest:
    caller_id: str
    caller_reference: str
    funding_token_id: str
    instrument_id: str
    amount: Money
    sender_description: str = ""
    caller_description: str = ""
    ipn_url: str | None = None


@dataclass(frozen=True, slots=True)
class SettleDebtRequest:
    caller_id: str
    caller_reference: str
    settlement_token_id: str
    instrument_id: str
    amount: Money
    sender_description: str = ""
    caller_description: str = ""
    ipn_url: str | None = None


@dataclass(frozen=True, slots=True)
class WriteOffDebtRequest:
    caller_id: str
    caller_reference: str
    instrument_id: str
    amount: Money
    caller_description: str = ""


@dataclass(frozen=True, slots=True)
class RefundRequest:
    caller_id: str
    caller_reference: str
    transaction_id: str
    amount: Money | None = None
    caller_description: str = ""
    ipn_url: str | None = None


@dataclass(frozen=True, slots=True)
class WithdrawRequest:
    """A merchant withdraws from its payable balance to its bank (sandbox: four days)."""

    caller_id: str
    caller_reference: str
    amount: Money
    caller_description: str = ""


PaymentRequest = (
    PayRequest
    | FundPrepaidRequest
    | SettleDebtRequest
    | WriteOffDebtRequest
    | RefundRequest
    | WithdrawRequest
)
Result = Transaction | PaymentsError


def fingerprint(request: PaymentRequest) -> str:
    """What a retry must repeat exactly: every field but the caller reference."""
    fields: dict[str, Any] = {"type": type(request).__name__}
    for name in request.__slots__:
        value = getattr(request, name)
        if name == "caller_reference":
            continue
        if name == "recipient_token_id" and value is None:
            continue  # added later: requests without it keep their earlier fingerprints
        fields[name] = str(value) if isinstance(value, Money) else value
    encoded = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True, slots=True)
class SetupPrepaid:
    """Issue a prepaid instrument (what the SetupPrepaid pipeline does once the buyer agrees)."""

    caller_id: str
    recipient_id: str
    sender_id: str
    payment_method_id: str
    caller_reference_sender: str
    caller_reference_funding: str
    funding_limit: Money | None
    valid_from: int | None = None
    valid_until: int | None = None
    payment_reason: str = ""


@dataclass(frozen=True, slots=True)
class SetupPostpaid:
    """Open a credit instrument (what the SetupPostpaid pipeline does)."""

    caller_id: str
    recipient_id: str
    sender_id: str
    payment_method_id: str
    caller_reference_sender: str
    caller_reference_settlement: str
    credit_limit: Money
    global_amount_limit: Money | None = None
    min_charge: Money | None = None
    max_charge: Money | None = None
    valid_from: int | None = None
    valid_until: int | None = None
    payment_reason: str = ""


@dataclass(frozen=True, slots=True)
class InstrumentSetup:
    instrument: Instrument
    sender_token: Token
    second_token: Token  # the funding token (prepaid) or the settlement token (postpaid)


class ChangeListener(Protocol):
    """Told of every change FPS notifies, inside the database transaction that makes it.

    Whatever it writes through ``session.conn`` commits or rolls back with the change (the IPN
    outbox, docs/ipn.md). It may be called again for the same change when the transaction is
    re-run after a conflict; only the last call's writes commit.
    """

    def transactions_changed(
        self,
        session: LedgerSession,
        changes: Sequence[TransactionChange],
        known: Known | None = None,
    ) -> None: ...

    def token_cancelled(
        self,
        session: LedgerSession,
        token: Token | PaymentInstruction,
        ipn_url: str | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Known:
    """Rows the batch already loaded in this transaction (current), for a listener to reuse
    rather than read again; what is missing from them it loads itself."""

    parties: Mapping[str, Party]
    instruments: Mapping[str, Instrument]


@dataclass(frozen=True, slots=True)
class TransactionChange:
    """A transaction as it is now, and as it was before this change (None: it is new)."""

    transaction: Transaction
    before: Transaction | None


# -- the batch ---------------------------------------------------------------------------


@dataclass
class _Batch:
    """What one batch has loaded and changed, beyond the ledger's own working set."""

    session: LedgerSession
    chart: rules.Chart
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


class Payments(PaymentQueries):
    """The Aggregated Payments operations over one store (the read-only queries are in
    :class:`~penny.services.payment_queries.PaymentQueries`)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        clock: Clock | None = None,
        fees: FeeSchedule | None = None,
        funding: FundingSource | None = None,
        new_id: Callable[[int], str] = random_id,
        listener: ChangeListener | None = None,
    ) -> None:
        self.ledger = ledger
        self.database = ledger.database
        self.clock = clock or ledger.clock
        self.fees = fees or FeeSchedule()
        self.funding: FundingSource = funding or SandboxFunding()
        self.new_id = new_id
        #: Told of each change in its own transaction (the IPN outbox); None: nobody listens.
        self.listener = listener
        #: Evaluate the tokens' GateKeeper scripts (off only to measure their cost: the
        #: scripts carry the validity and min/max-charge rules of pipeline tokens).
        self.check_scripts = True
        self._charts: dict[str, rules.Chart] = {}

    # -- system accounts ----------------------------------------------------------------

    def chart(self, currency: str = "USD") -> rules.Chart:
        """The system accounts of ``currency``, opened on first use."""
        chart = self._charts.get(currency)
        if chart is None:
            chart = self.ledger.run(lambda session: self._ensure_chart(session, currency))
            self._charts[currency] = chart
        return chart

    def _ensure_chart(self, session: LedgerSession, currency: str) -> rules.Chart:
        ids = sql.system_account_ids(session.conn, currency)
        if not ids:
            opened = session.sql.create_accounts(
                session.conn, [AccountSpec(currency), AccountSpec(currency)], session.now
            )
            ids = {"external_funding": opened[0], "fees": opened[1]}
            sql.add_system_accounts(session.conn, currency, ids)
        return rules.Chart(currency, ids["external_funding"], ids["fees"])

    # -- issuing instruments ------------------------------------------------------------

    def setup_prepaid(self, request: SetupPrepaid) -> InstrumentSetup:
        """Issue a prepaid instrument with its prepaid sender token and funding token."""
        currency = "USD" if request.funding_limit is None else request.funding_limit.currency
        return self.ledger.run(
            lambda session: self._setup(
                session,
                kind=InstrumentKind.prepaid,
                request=request,
                currency=currency,
                references=(request.caller_reference_sender, request.caller_reference_funding),
                spec=AccountSpec(currency, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
            )
        )

    def setup_postpaid(self, request: SetupPostpaid) -> InstrumentSetup:
        """Open a credit instrument with its credit sender token and settlement token."""
        currency = request.credit_limit.currency
        spec = AccountSpec(
            currency,
            AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
            debit_limit=request.credit_limit.minor,
        )
        return self.ledger.run(
            lambda session: self._setup(
                session,
                kind=InstrumentKind.credit,
                request=request,
                currency=currency,
                references=(request.caller_reference_sender, request.caller_reference_settlement),
                spec=spec,
            )
        )

    def _setup(
        self,
        session: LedgerSession,
        *,
        kind: InstrumentKind,
        request: SetupPrepaid | SetupPostpaid,
        currency: str,
        references: tuple[str, str],
        spec: AccountSpec,
    ) -> InstrumentSetup:
        conn, now = session.conn, session.now
        if request.caller_id != request.recipient_id:
            raise PaymentsError(Refusal.instrument_access_denied)
        if request.sender_id == request.recipient_id:
            raise PaymentsError(Refusal.same_sender_and_recipient)
        if not references[0] or not references[1] or references[0] == references[1]:
            raise PaymentsError(
                Refusal.invalid_params, "the two caller references must be given and differ"
            )
        parties = parties_sql.load_parties(conn, [request.recipient_id, request.sender_id])
        recipient, sender = parties.get(request.recipient_id), parties.get(request.sender_id)
        if recipient is None or recipient.kind is not PartyKind.business:
            raise PaymentsError(Refusal.invalid_params, "the recipient is not a business account")
        if sender is None or sender.kind is not PartyKind.personal:
            raise PaymentsError(Refusal.invalid_params, "the sender is not a personal account")
        method = parties_sql.load_payment_methods(conn, [request.payment_method_id]).get(
            request.payment_method_id
        )
        if method is None or method.party_id != request.sender_id:
            raise PaymentsError(Refusal.invalid_params, "unknown payment method of the sender")
        session.lock_keys("token", [(request.caller_id, ref) for ref in references])
        existing = sql.tokens_by_reference(conn, request.caller_id, references)
        if any(gk_sql.instruction_by_reference(conn, request.caller_id, r) for r in references):
            raise PaymentsError(Refusal.duplicate_request)
        if existing:
            return self._replayed_setup(conn, kind, request, references, existing)
        valid_from = now if request.valid_from is None else request.valid_from
        if request.valid_until is not None and request.valid_until <= valid_from:
            raise PaymentsError(Refusal.invalid_params, "the validity ends before it starts")
        (account_id,) = session.sql.create_accounts(conn, [spec], now)
        limits = _limits(request)
        instrument = Instrument(
            id=self.new_id(TOKEN_ID_LENGTH),
            kind=kind,
            sender_id=request.sender_id,
            recipient_id=request.recipient_id,
            currency=currency,
            ledger_account_id=account_id,
            created_at=now,
            valid_from=valid_from,
            valid_until=request.valid_until,
            payment_reason=request.payment_reason,
            funding_limit=limits.get("funding_limit"),
            credit_limit=limits.get("credit_limit"),
            global_amount_limit=limits.get("global_amount_limit"),
            min_charge=limits.get("min_charge"),
            max_charge=limits.get("max_charge"),
        )
        sql.insert_instrument(conn, instrument)
        if kind is InstrumentKind.prepaid:
            kinds = (TokenKind.prepaid_sender, TokenKind.funding)
        else:
            kinds = (TokenKind.credit_sender, TokenKind.settlement)
        made = [
            Token(
                id=self.new_id(TOKEN_ID_LENGTH),
                kind=token_kind,
                instrument_id=instrument.id,
                caller_id=request.caller_id,
                sender_id=request.sender_id,
                caller_reference=reference,
                status=TokenStatus.active,
                created_at=now,
                payment_method_id=None if index == 0 else request.payment_method_id,
                payment_reason=request.payment_reason,
                script=gk.pipeline_script(token_kind, instrument, request.caller_id),
            )
            for index, (token_kind, reference) in enumerate(zip(kinds, references, strict=True))
        ]
        sql.insert_tokens(conn, made)
        return InstrumentSetup(instrument, made[0], made[1])

    def _replayed_setup(
        self,
        conn: Connection,
        kind: InstrumentKind,
        request: SetupPrepaid | SetupPostpaid,
        references: tuple[str, str],
        existing: dict[str, Token],
    ) -> InstrumentSetup:
        """A setup retried with the same references returns what the first one made."""
        first, second = existing.get(references[0]), existing.get(references[1])
        if first is None or second is None or first.instrument_id != second.instrument_id:
            raise PaymentsError(Refusal.duplicate_request)
        instrument = sql.load_instruments(conn, [first.instrument_id])[first.instrument_id]
        same = (
            instrument.kind is kind
            and instrument.sender_id == request.sender_id
            and second.payment_method_id == request.payment_method_id
            and _limits(request) == _limits_of(instrument)
        )
        if not same:
            raise PaymentsError(Refusal.duplicate_request)
        return InstrumentSetup(instrument, first, second)

    # -- mutating operations --------------------------------------------------------------

    def submit(self, requests: Sequence[PaymentRequest]) -> list[Result]:
        """Decide and record a batch of requests in one transaction; one result each."""
        if not requests:
            return []
        chart = self.chart()
        return self.ledger.run(lambda session: self._run_batch(session, chart, requests))

    def execute(self, request: PaymentRequest) -> Transaction:
        """One request; raises :class:`PaymentsError` when refused."""
        (result,) = self.submit([request])
        if isinstance(result, PaymentsError):
            raise result
        return result

    def _run_batch(
        self, session: LedgerSession, chart: rules.Chart, requests: Sequence[PaymentRequest]
    ) -> list[Result]:
        batch = self._load(session, chart, requests)
        results: list[Result] = []
        for request in requests:
            try:
                results.append(self._decide(batch, request))
            except PaymentsError as refused:
                results.append(refused)
        conn = session.conn
        session.flush()  # journals first: transactions refer to them
        sql.insert_transactions(conn, batch.new_transactions)
        sql.update_instruments(conn, batch.changed_instruments.values())
        sql.update_transactions(conn, batch.changed_transactions.values())
        batch.guard.save(conn)
        if self.listener is not None:
            changes = [TransactionChange(txn, None) for txn in batch.new_transactions]
            changes.extend(
                TransactionChange(txn, batch.originals.get(txn.id))
                for txn in batch.changed_transactions.values()
            )
            known = Known(batch.parties, batch.instruments)
            self.listener.transactions_changed(session, changes, known)
        return results

    def _load(
        self, session: LedgerSession, chart: rules.Chart, requests: Sequence[PaymentRequest]
    ) -> _Batch:
        conn = session.conn
        references = [(r.caller_id, r.caller_reference) for r in requests]
        session.lock_keys("fps", references)
        known = sql.transactions_by_reference(conn, references)
        originals = sql.load_transactions(
            conn, (r.transaction_id for r in requests if isinstance(r, RefundRequest)), lock=True
        )
        token_ids = [
            token_id for r in requests for token_id in [_token_id_of(r)] if token_id is not None
        ]
        tokens = sql.load_tokens(conn, token_ids)
        instrument_ids = {t.instrument_id for t in tokens.values()}
        instrument_ids.update(o.instrument_id for o in originals.values() if o.instrument_id)
        instrument_ids.update(
            r.instrument_id
            for r in requests
            if not isinstance(r, PayRequest | RefundRequest | WithdrawRequest)
        )
        instruments = sql.load_instruments(conn, instrument_ids, lock=True)
        party_ids = {r.caller_id for r in requests if isinstance(r, WithdrawRequest)}
        party_ids.update(i.recipient_id for i in instruments.values())
        party_ids.update(i.sender_id for i in instruments.values())
        parties = parties_sql.load_parties(conn, party_ids)
        methods = parties_sql.load_payment_methods(
            conn, (t.payment_method_id for t in tokens.values() if t.payment_method_id)
        )
        accounts = {chart.external_funding, chart.fees}
        accounts.update(i.ledger_account_id for i in instruments.values())
        for party in parties.values():
            accounts.update(a for a in party.ledger_accounts.values())
        session.load(account_ids=accounts)
        batch = _Batch(session, chart, known, tokens, instruments, parties, methods, originals)
        recipient_ids = [
            r.recipient_token_id
            for r in requests
            if isinstance(r, PayRequest) and r.recipient_token_id is not None
        ]
        if recipient_ids:
            batch.instructions = gk_sql.load_instructions(conn, recipient_ids)
            batch.guard.prepare(session, [_installed_slot(i) for i in batch.instructions.values()])
        return batch

    def _decide(self, batch: _Batch, request: PaymentRequest) -> Transaction:
        print_ = fingerprint(request)
        key = (request.caller_id, request.caller_reference)
        if not request.caller_reference or len(request.caller_reference) > 128:
            raise PaymentsError(Refusal.invalid_params, "CallerReference must be 1 to 128 chars")
        previous = batch.known.get(key)
        if previous is not None:
            if previous.fingerprint != print_:
                raise PaymentsError(Refusal.duplicate_request)
            return previous
        if isinstance(request, PayRequest):
            txn = self._pay(batch, request, print_)
        elif isinstance(request, FundPrepaidRequest):
            txn = self._fund(batch, request, print_)
        elif isinstance(request, SettleDebtRequest):
            txn = self._settle(batch, request, print_)
        elif isinstance(request, WriteOffDebtRequest):
            txn = self._write_off(batch, request, print_)
        elif isinstance(request, WithdrawRequest):
            txn = self._withdraw(batch, request, print_)
        else:
            txn = self._refund(batch, request, print_)
        batch.known[key] = txn
        batch.new_transactions.append(txn)
        return txn

    # -- each operation -------------------------------------------------------------------

    def _pay(self, batch: _Batch, request: PayRequest, print_: str) -> Transaction:
        # The recipient's own token first: any id but one of its installed tokens is a
        # parameter error, as RecipientTokenId was before installed tokens existed.
        recipient = None if request.recipient_token_id is None else _recipient_slot(batch, request)
        token = batch.tokens.get(request.sender_token_id)
        if token is not None and token.kind is TokenKind.credit_sender:
            kind, instrument_kind = TokenKind.credit_sender, InstrumentKind.credit
        else:
            kind, instrument_kind = TokenKind.prepaid_sender, InstrumentKind.prepaid
        _refuse(rules.check_token(token, kind, request.caller_id))
        assert token is not None
        instrument = batch.instruments.get(token.instrument_id)
        _refuse(rules.check_instrument(instrument, instrument_kind, request.caller_id, batch.now))
        assert instrument is not None
        slots = [_pipeline_slot(token, instrument)]
        if recipient is not None:
            slots.append(recipient)
        _refuse(rules.check_amount(request.amount, instrument.currency))
        method = Method.prepaid if instrument_kind is InstrumentKind.prepaid else Method.debt
        context = gk.Context(
            operation=Operation.pay.value,
            amount=request.amount,
            now=batch.now,
            payment_method=method.value,
            sender_id=instrument.sender_id,
            recipient_id=instrument.recipient_id,
            caller_id=request.caller_id,
            sender_token=token.id,
            recipient_token=request.recipient_token_id,
        )
        if self.check_scripts:  # validity, min/max charge and the caller's own rules
            batch.guard.check(slots, context)
        books = books_of(batch.parties[instrument.recipient_id])
        if instrument_kind is InstrumentKind.prepaid:
            legs = rules.prepaid_pay_legs(instrument, books, request.amount)
        else:
            _refuse(rules.check_global_amount_limit(instrument, request.amount))
            legs = rules.postpaid_pay_legs(instrument, books, request.amount)
        txn = self._new_transaction(
            batch, request, print_, Operation.pay, instrument, method, request.amount
        )
        txn = replace(txn, sender_token_id=token.id, ipn_url=request.ipn_url)
        journal_id = self._book(batch, txn.id, legs)
        batch.guard.record(slots, context)
        if instrument_kind is InstrumentKind.credit:
            txn = replace(txn, settlements_before=instrument.settlement_count)
            charged = instrument.charged_total + request.amount.minor
            batch.put_instrument(replace(instrument, charged_total=charged))
        return _succeeded(txn, journal_id, batch.now)

    def _fund(self, batch: _Batch, request: FundPrepaidRequest, print_: str) -> Transaction:
        token = batch.tokens.get(request.funding_token_id)
        _refuse(rules.check_token(token, TokenKind.funding, request.caller_id))
        assert token is not None
        instrument = batch.instruments.get(request.instrument_id)
        _refuse(
            rules.check_instrument(instrument, InstrumentKind.prepaid, request.caller_id, batch.now)
        )
        assert instrument is not None
        if token.instrument_id != instrument.id:
            raise PaymentsError(Refusal.token_instrument_mismatch)
        _refuse(rules.check_amount(request.amount, instrument.currency))
        _refuse(rules.check_funding_limit(instrument, request.amount))
        books = books_of(batch.parties[instrument.recipient_id])

        def legs(source: int, fee: Money) -> tuple[Any, ...]:
            return rules.funding_legs(instrument, books, batch.chart, source, request.amount, fee)

        self._check_pipeline_token(batch, request, Operation.fund_prepaid, instrument, token)
        txn = self._charge(batch, request, print_, Operation.fund_prepaid, instrument, token, legs)
        if txn.status is not Status.failure:
            funded = instrument.funded_total + request.amount.minor
            batch.put_instrument(replace(instrument, funded_total=funded))
        return txn

    def _settle(self, batch: _Batch, request: SettleDebtRequest, print_: str) -> Transaction:
        token = batch.tokens.get(request.settlement_token_id)
        _refuse(rules.check_token(token, TokenKind.settlement, request.caller_id))
        assert token is not None
        instrument = batch.instruments.get(request.instrument_id)
        # Settling stays possible after expiry: the debt is still owed.
        if instrument is None or instrument.kind is not InstrumentKind.credit:
            raise PaymentsError(Refusal.unknown_instrument)
        if instrument.recipient_id != request.caller_id:
            raise PaymentsError(Refusal.unknown_instrument)
        if token.instrument_id != instrument.id:
            raise PaymentsError(Refusal.token_instrument_mismatch)
        _refuse(rules.check_amount(request.amount, instrument.currency))
        books = books_of(batch.parties[instrument.recipient_id])

        def legs(source: int, fee: Money) -> tuple[Any, ...]:
            return rules.settlement_legs(
                instrument, books, batch.chart, source, request.amount, fee
            )

        self._check_pipeline_token(batch, request, Operation.settle_debt, instrument, token)
        txn = self._charge(batch, request, print_, Operation.settle_debt, instrument, token, legs)
        if txn.status is not Status.failure:
            settled = instrument.settlement_count + 1
            batch.put_instrument(replace(instrument, settlement_count=settled))
        return txn

    def _write_off(self, batch: _Batch, request: WriteOffDebtRequest, print_: str) -> Transaction:
        instrument = batch.instruments.get(request.instrument_id)
        if instrument is None or instrument.kind is not InstrumentKind.credit:
            raise PaymentsError(Refusal.unknown_instrument)
        if instrument.recipient_id != request.caller_id:
            raise PaymentsError(Refusal.unknown_instrument)
        _refuse(rules.check_amount(request.amount, instrument.currency))
        books = books_of(batch.parties[instrument.recipient_id])
        legs = rules.write_off_legs(instrument, books, request.amount)
        txn = self._new_transaction(
            batch,
            request,
            print_,
            Operation.write_off_debt,
            instrument,
            Method.debt,
            request.amount,
        )
        journal_id = self._book(batch, txn.id, legs)
        return _succeeded(txn, journal_id, batch.now)

    def _withdraw(self, batch: _Batch, request: WithdrawRequest, print_: str) -> Transaction:
        merchant = batch.parties.get(request.caller_id)
        if merchant is None or merchant.kind is not PartyKind.business:
            raise PaymentsError(Refusal.invalid_params, "only a business account can withdraw")
        _refuse(rules.check_amount(request.amount, batch.chart.currency))
        legs = rules.withdrawal_legs(books_of(merchant), batch.chart, request.amount)
        txn_id = self.new_id(TRANSACTION_ID_LENGTH)
        journal_id = self._book(batch, txn_id, legs, pending=True)
        return Transaction(
            id=txn_id,
            operation=Operation.withdraw,
            caller_id=request.caller_id,
            caller_reference=request.caller_reference,
            fingerprint=print_,
            sender_id=request.caller_id,
            recipient_id=request.caller_id,
            amount=request.amount.minor,
            currency=request.amount.currency,
            fees=0,
            method=Method.bank,
            status=Status.pending,
            status_code="PendingNetworkResponse",
            status_message=PENDING_MESSAGE,
            received_at=batch.now,
            completed_at=None,
            pending_journal_id=journal_id,
            completes_at=batch.now + WITHDRAWAL_DAYS * MICROS_PER_DAY,
            caller_description=request.caller_description,
        )

    def _refund(self, batch: _Batch, request: RefundRequest, print_: str) -> Transaction:
        original = batch.originals.get(request.transaction_id)
        if original is None or original.caller_id != request.caller_id:
            raise PaymentsError(Refusal.unknown_transaction)
        original = batch.changed_transactions.get(original.id, original)
        if original.operation is not Operation.pay:
            raise PaymentsError(Refusal.not_refundable)
        if original.status is Status.pending:
            raise PaymentsError(Refusal.original_not_complete)
        if original.status is not Status.success:
            raise PaymentsError(Refusal.original_failed)
        left = original.amount - original.refunded
        if left <= 0:
            raise PaymentsError(Refusal.fully_refunded)
        amount = request.amount or Money(left, original.currency)
        _refuse(rules.check_amount(amount, original.currency))
        if amount.minor > left:
            raise PaymentsError(Refusal.refund_exceeds_original)
        assert original.instrument_id is not None
        instrument = batch.instruments[original.instrument_id]
        if instrument.kind is InstrumentKind.credit and instrument.settlement_count > (
            original.settlements_before or 0
        ):
            raise PaymentsError(Refusal.debt_already_settled)
        books = books_of(batch.parties[instrument.recipient_id])
        legs = rules.refund_legs(instrument, books, amount)
        txn = self._new_transaction(
            batch, request, print_, Operation.refund, instrument, original.method, amount
        )
        txn = replace(txn, parent_id=original.id, ipn_url=request.ipn_url)
        try:
            journal_id = self._book(batch, txn.id, legs)
        except PaymentsError as refused:
            if refused.refusal is Refusal.settle_exceeds_debt:
                raise PaymentsError(Refusal.debt_already_settled) from None
            raise
        refunded = replace(original, refunded=original.refunded + amount.minor)
        batch.changed_transactions[original.id] = refunded
        if instrument.kind is InstrumentKind.credit:
            charged = max(0, instrument.charged_total - amount.minor)
            batch.put_instrument(replace(instrument, charged_total=charged))
        return _succeeded(txn, journal_id, batch.now)

    # -- shared steps ---------------------------------------------------------------------

    def _check_pipeline_token(
        self,
        batch: _Batch,
        request: FundPrepaidRequest | SettleDebtRequest,
        operation: Operation,
        instrument: Instrument,
        token: Token,
    ) -> None:
        """The funding or settlement token's script (no usage limits: nothing to record)."""
        if not self.check_scripts:
            return
        context = gk.Context(
            operation=operation.value,
            amount=request.amount,
            now=batch.now,
            payment_method=None,
            sender_id=instrument.sender_id,
            recipient_id=instrument.recipient_id,
            caller_id=request.caller_id,
            sender_token=token.id,
        )
        batch.guard.check([_pipeline_slot(token, instrument)], context)

    def _charge(
        self,
        batch: _Batch,
        request: FundPrepaidRequest | SettleDebtRequest,
        print_: str,
        operation: Operation,
        instrument: Instrument,
        token: Token,
        legs_for: Callable[[int, Money], tuple[Any, ...]],
    ) -> Transaction:
        """Take money from the token's payment method and book it (now, or as pending)."""
        method_id = token.payment_method_id
        assert method_id is not None
        payment_method = batch.methods.get(method_id)
        if payment_method is None or payment_method.party_id != instrument.sender_id:
            raise PaymentsError(Refusal.invalid_params, "the token's payment method is gone")
        method = _METHOD_KINDS[payment_method.kind]
        fee = self.fees.fee(method, request.amount)
        txn = self._new_transaction(
            batch, request, print_, operation, instrument, method, request.amount
        )
        txn = replace(txn, fees=fee.minor, sender_token_id=token.id, ipn_url=request.ipn_url)
        decision = self.funding.charge(payment_method, request.amount, txn.id, batch.now)
        if decision.outcome is ChargeOutcome.declined:
            return replace(
                txn,
                fees=0,  # nothing was charged, so nothing is owed
                status=Status.failure,
                status_code="TransactionDenied",
                status_message=decision.reason or "The payment method was declined.",
                completed_at=batch.now,
            )
        if method is Method.balance:
            sender = batch.parties[instrument.sender_id]
            assert sender.balance_account_id is not None
            source = sender.balance_account_id
        else:
            source = batch.chart.external_funding
        legs = legs_for(source, fee)
        if decision.outcome is ChargeOutcome.succeeded:
            journal_id = self._book(batch, txn.id, legs)
            return _succeeded(txn, journal_id, batch.now)
        journal_id = self._book(batch, txn.id, legs, pending=True)
        return replace(
            txn,
            status=Status.pending,
            status_code="PendingNetworkResponse",
            status_message=PENDING_MESSAGE,
            pending_journal_id=journal_id,
            completes_at=decision.completes_at,
            completes_ok=decision.completes_ok,
        )

    def _new_transaction(
        self,
        batch: _Batch,
        request: PaymentRequest,
        print_: str,
        operation: Operation,
        instrument: Instrument,
        method: Method,
        amount: Money,
    ) -> Transaction:
        return Transaction(
            id=self.new_id(TRANSACTION_ID_LENGTH),
            operation=operation,
            caller_id=request.caller_id,
            caller_reference=request.caller_reference,
            fingerprint=print_,
            sender_id=instrument.sender_id,
            recipient_id=instrument.recipient_id,
            amount=amount.minor,
            currency=amount.currency,
            fees=0,
            method=method,
            status=Status.pending,
            status_code="",
            status_message="",
            received_at=batch.now,
            completed_at=None,
            instrument_id=instrument.id,
            sender_description=getattr(request, "sender_description", ""),
            caller_description=request.caller_description,
        )

    def _book(
        self, batch: _Batch, key: str, legs: tuple[Any, ...], *, pending: bool = False
    ) -> int:
        # Every key booked here is a transaction id just drawn by ``new_id``: nothing to look up.
        batch.session.assume_new_keys([(LEDGER_OWNER, key)])
        outcome = batch.session.apply(NewJournal(LEDGER_OWNER, key, legs, pending=pending))
        if outcome.ok:
            assert outcome.journal_id is not None
            return outcome.journal_id
        refusal = LEDGER_REFUSALS.get(outcome.code)
        if refusal is None:
            raise AssertionError(f"the ledger refused a journal the domain built: {outcome}")
        raise PaymentsError(refusal)

    # -- time -----------------------------------------------------------------------------

    def complete_due(self, limit: int = 1000) -> list[Transaction]:
        """Finish pending transactions whose money source has answered by now."""
        return self.ledger.run(lambda session: self._complete_due(session, limit))

    def _complete_due(self, session: LedgerSession, limit: int) -> list[Transaction]:
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
                done = _succeeded(txn, outcome.journal_id, now) if outcome.ok else None
            else:
                outcome = session.apply(VoidPending(LEDGER_OWNER, key, txn.pending_journal_id))
                done = None
            if done is None:
                done = replace(
                    txn,
                    fees=0,
                    status=Status.failure,
                    status_code="TransactionDenied",
                    status_message="The payment method was declined after processing.",
                    completed_at=now,
                    journal_id=outcome.journal_id,
                )
                instrument = changed.get(txn.instrument_id or "") or instruments.get(
                    txn.instrument_id or ""
                )
                if instrument is not None and txn.operation is Operation.fund_prepaid:
                    changed[instrument.id] = replace(
                        instrument, funded_total=instrument.funded_total - txn.amount
                    )
            finished.append(done)
        session.flush()
        sql.update_transactions(conn, finished)
        sql.update_instruments(conn, changed.values())
        if self.listener is not None:
            self.listener.transactions_changed(
                session, [TransactionChange(txn, due.get(txn.id)) for txn in finished]
            )
        return finished

    # -- tokens ---------------------------------------------------------------------------

    def cancel_token(self, caller_id: str, token_id: str, ipn_url: str | None = None) -> Token:
        """CancelToken: the token can no longer be used (cancelling twice is harmless);
        ``ipn_url`` (the request's OverrideIPNURL) is where its notification goes."""

        def work(session: LedgerSession) -> Token:
            token = sql.load_tokens(session.conn, [token_id]).get(token_id)
            if token is None or token.caller_id != caller_id:
                raise PaymentsError(Refusal.unknown_token)
            if not token.active:
                return token
            cancelled = replace(token, status=TokenStatus.inactive, cancelled_at=session.now)
            sql.set_token_status(session.conn, cancelled)
            if self.listener is not None:
                self.listener.token_cancelled(session, cancelled, ipn_url)
            return cancelled

        return self.ledger.run(work)


_METHOD_KINDS = {
    PaymentMethodKind.card: Method.card,
    PaymentMethodKind.bank: Method.bank,
    PaymentMethodKind.balance: Method.balance,
}


def _token_id_of(request: PaymentRequest) -> str | None:
    if isinstance(request, PayRequest):
        return request.sender_token_id
    if isinstance(request, FundPrepaidRequest):
        return request.funding_token_id
    if isinstance(request, SettleDebtRequest):
        return request.settlement_token_id
    return None


def _refuse(refusal: Refusal | None) -> None:
    if refusal is not None:
        raise PaymentsError(refusal)


def _succeeded(txn: Transaction, journal_id: int | None, now: int) -> Transaction:
    return replace(
        txn,
        status=Status.success,
        status_code="Success",
        status_message=SUCCESS_MESSAGE,
        completed_at=now,
        journal_id=journal_id,
    )


def _limits(request: SetupPrepaid | SetupPostpaid) -> dict[str, int | None]:
    def minor(value: Money | None) -> int | None:
        return None if value is None else value.minor

    if isinstance(request, SetupPrepaid):
        return {"funding_limit": minor(request.funding_limit)}
    return {
        "credit_limit": request.credit_limit.minor,
        "global_amount_limit": minor(request.global_amount_limit),
        "min_charge": minor(request.min_charge),
        "max_charge": minor(request.max_charge),
    }


def _limits_of(instrument: Instrument) -> dict[str, int | None]:
    if instrument.kind is InstrumentKind.prepaid:
        return {"funding_limit": instrument.funding_limit}
    return {
        "credit_limit": instrument.credit_limit,
        "global_amount_limit": instrument.global_amount_limit,
        "min_charge": instrument.min_charge,
        "max_charge": instrument.max_charge,
    }


# -- GateKeeper slots ------------------------------------------------------------------------


def _pipeline_slot(token: Token, instrument: Instrument) -> gk.Slot:
    """A pipeline token in the sender slot (FundPrepaid and SettleDebt use theirs there too);
    evaluated natively when its script is the generated one (:func:`gk.pipeline_slot`)."""
    return gk.pipeline_slot(token, instrument)


def _installed_slot(instruction: PaymentInstruction) -> gk.Slot:
    return gk.Slot(
        Role.RECIPIENT,
        instruction.id,
        instruction.script,
        instruction.created_at,
        single_use=instruction.token_type == gk.SINGLE_USE,
    )


def _recipient_slot(batch: _Batch, request: PayRequest) -> gk.Slot:
    """The caller's installed token named by RecipientTokenId (docs/decisions.md #7)."""
    assert request.recipient_token_id is not None
    instruction = batch.instructions.get(request.recipient_token_id)
    if instruction is None or instruction.caller_id != request.caller_id:
        raise PaymentsError(Refusal.unknown_recipient_token)
    if not instruction.active:
        raise PaymentsError(Refusal.recipient_token_not_active)
    return _installed_slot(instruction)
