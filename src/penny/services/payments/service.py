"""The payments service: the Aggregated Payments operations over one store.

:class:`Payments` is what the doors (the FPS API, the hosted pages, the CLI) call. Money-moving
requests go through :meth:`Payments.submit` — a batch in one transaction, decided by
:mod:`.runner` with the operations of :mod:`.registry` — and the read-only queries are those of
:class:`~penny.services.payment_queries.PaymentQueries`. Money sources are decided by a
:class:`~penny.domain.funding.FundingSource`; a pending one (a bank transfer) is a pending
journal, posted or voided by :meth:`Payments.complete_due` when its time comes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from penny.clock import Clock
from penny.domain import rules
from penny.domain.errors import PaymentsError
from penny.domain.fees import FeeSchedule
from penny.domain.funding import FundingSource, SandboxFunding
from penny.domain.model import InstrumentKind, Token, Transaction
from penny.domain.parties import PaymentMethodKind, random_id
from penny.engine.ledger import Ledger, LedgerSession
from penny.ledger.model import AccountFlags, AccountSpec
from penny.services.payment_queries import PaymentQueries
from penny.services.payments import authorize, completion, edit_token, runner
from penny.services.payments.batch import Settings
from penny.services.payments.listener import ChangeListener, cancel_found
from penny.services.payments.requests import (
    InstrumentSetup,
    PaymentRequest,
    Result,
    SenderTokenSetup,
    SetupPostpaid,
    SetupPrepaid,
    SetupSenderToken,
)
from penny.services.payments.setup import setup_instrument
from penny.storage import parties_sql
from penny.storage import payments_sql as sql

T = TypeVar("T")
#: Decides and records a batch of requests in the transaction it was given to (see transact).
RunBatch = Callable[[Sequence[PaymentRequest]], list[Result]]


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
        spec = AccountSpec(currency, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
        references = (request.caller_reference_sender, request.caller_reference_funding)
        return self._setup(InstrumentKind.prepaid, request, currency, references, spec)

    def setup_postpaid(self, request: SetupPostpaid) -> InstrumentSetup:
        """Open a credit instrument with its credit sender token and settlement token."""
        currency = request.credit_limit.currency
        spec = AccountSpec(
            currency,
            AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
            debit_limit=request.credit_limit.minor,
        )
        references = (request.caller_reference_sender, request.caller_reference_settlement)
        return self._setup(InstrumentKind.credit, request, currency, references, spec)

    def setup_sender_token(self, request: SetupSenderToken) -> SenderTokenSetup:
        """Issue a SingleUse, MultiUse or Recurring sender token on a new authorization."""
        self.chart(request.currency)  # its payments book against the currency's system accounts
        return self.ledger.run(
            lambda session: authorize.setup_sender_token(session, request, self.new_id)
        )

    def edit_sender_token(self, old_token_id: str, request: SetupSenderToken) -> SenderTokenSetup:
        """EditToken: replace a MultiUse or Recurring token by one with ``request``'s terms
        (:mod:`.edit_token`); the old token itself when nothing changes."""
        return self.ledger.run(
            lambda session: edit_token.edit_sender_token(
                session, old_token_id, request, self.new_id
            )
        )

    def editable_token(self, caller_id: str, token_id: str) -> edit_token.Editable:
        """The caller's token EditToken may change, or PaymentsError (:mod:`.edit_token`)."""
        with self.database.read() as conn:
            return edit_token.editable_token(conn, caller_id, token_id)

    def old_token_ids(self, tokens: list[Token]) -> dict[str, str]:
        """The tokens ``tokens`` replaced by EditToken (FPS ``OldTokenId``), by token id."""
        with self.database.read() as conn:
            return edit_token.old_token_ids(conn, tokens)

    # -- mutating operations --------------------------------------------------------------

    def settings(self) -> Settings:
        """How this service decides now (``check_scripts`` may be switched off to measure)."""
        return Settings(self.fees, self.funding, self.new_id, self.check_scripts)

    def submit(self, requests: Sequence[PaymentRequest]) -> list[Result]:
        """Decide and record a batch of requests in one transaction; one result each."""
        if not requests:
            return []
        return self.transact(lambda _session, run: run(requests))

    def transact(self, work: Callable[[LedgerSession, RunBatch], T]) -> T:
        """Run ``work`` in one write transaction with a function that decides and records a
        batch of requests in it: an adapter's own rows (the JSON API's idempotency keys) then
        commit or roll back with the batch. ``work`` is re-run from the start on a conflict."""
        chart, settings, listener = self.chart(), self.settings(), self.listener

        def run_in(session: LedgerSession) -> T:
            def run(requests: Sequence[PaymentRequest]) -> list[Result]:
                return runner.run_batch(session, chart, settings, listener, requests)

            return work(session, run)

        return self.ledger.run(run_in)

    def execute(self, request: PaymentRequest) -> Transaction:
        """One request; raises :class:`PaymentsError` when refused."""
        (result,) = self.submit([request])
        if isinstance(result, PaymentsError):
            raise result
        return result

    def complete_due(self, limit: int = 1000) -> list[Transaction]:
        """Finish pending transactions whose money source has answered by now."""
        return self.ledger.run(
            lambda session: completion.complete_due(session, limit, self.listener)
        )

    def _setup(
        self,
        kind: InstrumentKind,
        request: SetupPrepaid | SetupPostpaid,
        currency: str,
        references: tuple[str, str],
        spec: AccountSpec,
    ) -> InstrumentSetup:
        """Either set-up, in one ledger transaction."""
        return self.ledger.run(
            lambda session: setup_instrument(
                session,
                kind=kind,
                request=request,
                currency=currency,
                references=references,
                spec=spec,
                new_id=self.new_id,
            )
        )

    # -- tokens ---------------------------------------------------------------------------

    def cancel_token(self, caller_id: str, token_id: str, ipn_url: str | None = None) -> Token:
        """CancelToken: the token can no longer be used (cancelling twice is harmless);
        ``ipn_url`` (the request's OverrideIPNURL) is where its notification goes."""

        return self.ledger.run(
            lambda session: self.cancel_token_in(session, caller_id, token_id, ipn_url)
        )

    def cancel_token_in(
        self, session: LedgerSession, caller_id: str, token_id: str, ipn_url: str | None = None
    ) -> Token:
        """:meth:`cancel_token` in ``session``'s transaction."""
        # Locked: of two CancelTokens at once, the second reads the first's cancel (one IPN).
        token = sql.load_tokens(session.conn, [token_id], lock=True).get(token_id)
        save, listener = sql.set_token_status, self.listener
        return cancel_found(session, token, caller_id, save, listener, ipn_url)

    # -- payment methods --------------------------------------------------------------------

    def charging(self, buyer_id: str, method_id: str) -> list[Token]:
        """The buyer's active authorizations that charge payment method ``method_id``."""
        with self.database.read() as conn:
            return sql.active_tokens_charging(conn, buyer_id, method_id)

    def remove_payment_method(self, buyer_id: str, method_id: str) -> list[Token] | None:
        """Remove a buyer's card or bank account (``None``: no such method of theirs, or the
        Penny balance, which cannot be removed). The authorizations that charge it are
        cancelled in the same transaction, each exactly as its merchant's CancelToken (the
        merchant's IPN is written to the outbox); what the instruments hold stays (a prepaid
        balance can still be spent, a tab's debt is still owed). The cancelled tokens."""

        def work(session: LedgerSession) -> list[Token] | None:
            found = parties_sql.load_payment_methods(session.conn, [method_id]).get(method_id)
            if found is None or found.party_id != buyer_id:
                return None
            if found.kind is PaymentMethodKind.balance:
                return None
            cancelled = [
                self.cancel_token_in(session, token.caller_id, token.id)
                for token in sql.active_tokens_charging(session.conn, buyer_id, method_id)
            ]
            parties_sql.delete_payment_method(session.conn, method_id)
            return cancelled

        return self.ledger.run(work)
