"""Read-only queries of the payments domain: balances, tokens, transactions, activity.

What FPS's Get* actions answer. Every query is scoped to the caller: another merchant's token,
instrument or transaction answers exactly like an unknown one. Balances are O(1) reads of
ledger counters (docs/decisions.md, "Chart of accounts").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from penny.clock import Clock
from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import Method
from penny.domain.model import (
    ANY_TOKEN,
    Instrument,
    InstrumentKind,
    Operation,
    Status,
    Token,
    TokenFilter,
    Transaction,
)
from penny.domain.parties import Party
from penny.engine.ledger import Ledger
from penny.ledger.model import Balance
from penny.money import Money
from penny.storage import driver, parties_sql
from penny.storage import payments_sql as sql
from penny.storage.database import Database


@dataclass(frozen=True, slots=True)
class TwoBalances:
    """A balance and its pending part, as FPS reports them."""

    main: Money
    pending: Money


@dataclass(frozen=True, slots=True)
class BalanceQuery:
    """GetPrepaidBalance (a prepaid instrument) or GetDebtBalance (a credit instrument)."""

    kind: InstrumentKind
    caller_id: str
    instrument_id: str


def _two_balances(kind: InstrumentKind, currency: str, balance: Balance) -> TwoBalances:
    if kind is InstrumentKind.prepaid:  # available now, and funding still pending
        return TwoBalances(
            Money(balance.available_credit, currency), Money(balance.credits_pending, currency)
        )
    # a credit instrument: the debt, and settlements still pending
    return TwoBalances(
        Money(balance.net_debit_posted, currency), Money(balance.credits_pending, currency)
    )


#: An instrument's kind, parties, currency and ledger counters, by instrument id.
_BALANCES = (
    "SELECT i.id, i.kind, i.sender_id, i.recipient_id, i.currency, a.debits_posted,"
    " a.credits_posted, a.debits_pending, a.credits_pending"
    " FROM instruments AS i JOIN ledger_accounts AS a ON a.id = i.ledger_account_id WHERE "
)


@dataclass(frozen=True, slots=True)
class AccountBalance:
    total: Money
    pending_in: Money
    pending_out: Money
    disburse: Money
    refund: Money


@dataclass(frozen=True, slots=True)
class TokenUsage:
    amount: Money
    count: int
    since: int


def books_of(party: Party) -> rules.MerchantBooks:
    """A business account's three ledger accounts (refused for a personal account)."""
    payable = party.payable_account_id
    prepaid = party.prepaid_issued_account_id
    credit = party.credit_extended_account_id
    if payable is None or prepaid is None or credit is None:
        raise PaymentsError(Refusal.instrument_access_denied, "not a business account")
    return rules.MerchantBooks(payable, prepaid, credit)


class PaymentQueries:
    """The queries; :class:`~penny.services.payments.Payments` adds the operations."""

    ledger: Ledger
    database: Database
    clock: Clock

    def token_by_caller(
        self, caller_id: str, *, token_id: str | None = None, caller_reference: str | None = None
    ) -> Token:
        """GetTokenByCaller: by token id or by the caller reference it was installed with."""
        if (token_id is None) == (caller_reference is None):
            raise PaymentsError(
                Refusal.invalid_params, "give exactly one of TokenId and CallerReference"
            )
        with self.database.read() as conn:
            if token_id is not None:
                token = sql.load_tokens(conn, [token_id]).get(token_id)
                if token is None or token.caller_id != caller_id:
                    raise PaymentsError(Refusal.unknown_token)
                return token
            assert caller_reference is not None
            found = sql.tokens_by_reference(conn, caller_id, [caller_reference])
        if caller_reference not in found:
            raise PaymentsError(Refusal.unknown_caller_reference)
        return found[caller_reference]

    def tokens(self, caller_id: str, only: TokenFilter = ANY_TOKEN) -> list[Token]:
        with self.database.read() as conn:
            return sql.find_tokens(conn, caller_id, only)

    def token_usage(self, caller_id: str, token_id: str) -> TokenUsage:
        """What a sender token has been used for so far: amount and count of its Pays."""
        token = self.token_by_caller(caller_id, token_id=token_id)
        with self.database.read() as conn:
            row = conn.execute(
                text(
                    "SELECT COALESCE(SUM(amount - refunded), 0), COUNT(*) FROM transactions"
                    " WHERE sender_token_id = :t AND status = 'Success' AND operation = 'Pay'"
                ),
                {"t": token.id},
            ).one()
            instrument = sql.load_instruments(conn, [token.instrument_id])[token.instrument_id]
        return TokenUsage(Money(int(row[0]), instrument.currency), int(row[1]), token.created_at)

    # -- balances -------------------------------------------------------------------------

    def _instrument_for(
        self, conn: Connection, caller_id: str, instrument_id: str, kind: InstrumentKind
    ) -> Instrument:
        instrument = sql.load_instruments(conn, [instrument_id]).get(instrument_id)
        if instrument is None or instrument.kind is not kind:
            raise PaymentsError(Refusal.unknown_instrument)
        if caller_id not in (instrument.sender_id, instrument.recipient_id):
            raise PaymentsError(Refusal.unknown_instrument)
        return instrument

    def balances(self, queries: Sequence[BalanceQuery]) -> list[TwoBalances | PaymentsError]:
        """GetPrepaidBalance and GetDebtBalance of many instruments in ONE statement (a
        consistent snapshot by itself), run outside any transaction on PostgreSQL: one round
        trip instead of the five of a REPEATABLE READ transaction (#8, P5; the FPS endpoint
        batches them). Each is answered, or refused like :meth:`_instrument_for`."""
        ids = sorted({q.instrument_id for q in queries})

        def read(conn: Connection) -> list[Sequence[Any]]:
            postgresql = driver.is_postgresql(conn)
            sql_text = _BALANCES + driver.in_clause(postgresql, "i.id")
            return driver.fetch_all(conn, sql_text, (driver.bound_list(postgresql, ids),))

        if self.database.is_postgresql:
            with self.database.read_engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            ) as conn:
                rows = read(conn)
        else:
            with self.database.read() as conn:
                rows = read(conn)
        by_id = {row[0]: row for row in rows}
        found: list[TwoBalances | PaymentsError] = []
        for query in queries:
            row = by_id.get(query.instrument_id)
            if row is None or row[1] != query.kind.value or query.caller_id not in row[2:4]:
                found.append(PaymentsError(Refusal.unknown_instrument))
                continue
            balance = Balance(int(row[5]), int(row[6]), int(row[7]), int(row[8]))
            found.append(_two_balances(query.kind, str(row[4]), balance))
        return found

    def balance(self, query: BalanceQuery) -> TwoBalances:
        """One of :meth:`balances`; raises its refusal."""
        (found,) = self.balances([query])
        if isinstance(found, PaymentsError):
            raise found
        return found

    def prepaid_balance(self, caller_id: str, instrument_id: str) -> TwoBalances:
        """GetPrepaidBalance: available now, and funding still pending."""
        return self.balance(BalanceQuery(InstrumentKind.prepaid, caller_id, instrument_id))

    def debt_balance(self, caller_id: str, instrument_id: str) -> TwoBalances:
        """GetDebtBalance: the debt, and settlements still pending."""
        return self.balance(BalanceQuery(InstrumentKind.credit, caller_id, instrument_id))

    def total_prepaid_liability(self, caller_id: str, currency: str = "USD") -> TwoBalances:
        """GetTotalPrepaidLiability: prepaid value the merchant has sold and not redeemed."""
        balance = self._balance_of(caller_id, lambda party: books_of(party).prepaid_issued)
        return TwoBalances(
            Money(balance.net_debit_posted, currency), Money(balance.debits_pending, currency)
        )

    def outstanding_debt(self, caller_id: str, currency: str = "USD") -> TwoBalances:
        """GetOutstandingDebtBalance: debt owed to the merchant over all its credit lines."""
        balance = self._balance_of(caller_id, lambda party: books_of(party).credit_extended)
        return TwoBalances(
            Money(balance.net_credit_posted, currency), Money(balance.debits_pending, currency)
        )

    def account_balance(self, party_id: str, currency: str = "USD") -> AccountBalance:
        """GetAccountBalance: the merchant's payable balance, or a buyer's own balance."""
        balance = self._balance_of(
            party_id, lambda party: party.payable_account_id or party.balance_account_id
        )
        total = Money(balance.net_credit_posted, currency)
        available = Money(balance.available_credit, currency)
        return AccountBalance(
            total=total,
            pending_in=Money(balance.credits_pending, currency),
            pending_out=Money(balance.debits_pending, currency),
            disburse=available,
            refund=available,
        )

    def _balance_of(self, party_id: str, account_of: Callable[[Party], int | None]) -> Balance:
        """The ledger balance of the party's account that ``account_of`` picks."""
        account = account_of(self._party(party_id))
        assert account is not None
        with self.database.read() as conn:
            balance = self.ledger.sql.balance(conn, account)
        assert balance is not None
        return balance

    def _party(self, party_id: str) -> Party:
        with self.database.read() as conn:
            party = parties_sql.load_parties(conn, [party_id]).get(party_id)
        if party is None:
            raise PaymentsError(Refusal.invalid_params, "unknown account")
        return party

    # -- transactions ---------------------------------------------------------------------

    def transaction(self, caller_id: str, transaction_id: str) -> Transaction:
        """GetTransaction / GetTransactionStatus: the caller's own transactions only."""
        with self.database.read() as conn:
            txn = sql.load_transactions(conn, [transaction_id]).get(transaction_id)
        if txn is None or caller_id not in (txn.caller_id, txn.recipient_id):
            raise PaymentsError(Refusal.unknown_transaction)
        return txn

    def refunds(self, caller_id: str, transaction_id: str) -> list[Transaction]:
        txn = self.transaction(caller_id, transaction_id)
        with self.database.read() as conn:
            return sql.refunds_of(conn, txn.id)

    def activity(
        self,
        party_id: str,
        *,
        start: int,
        end: int | None = None,
        operation: Operation | None = None,
        method: Method | None = None,
        status: Status | None = None,
        roles: Sequence[str] = (),
        ascending: bool = False,
        max_batch: int = 20,
    ) -> tuple[list[Transaction], int | None]:
        """GetAccountActivity: one page of transactions and where the next page starts."""
        end = self.clock.now_us() + 1 if end is None else end
        if end < start:
            raise PaymentsError(Refusal.invalid_date_range)
        if not 1 <= max_batch <= 200:
            raise PaymentsError(Refusal.invalid_params, "MaxBatchSize must be 1 to 200")
        with self.database.read() as conn:
            page = sql.activity(
                conn,
                party_id,
                start=start,
                end=end,
                operation=operation,
                method=method,
                status=status,
                roles=roles,
                ascending=ascending,
                limit=max_batch + 1,
            )
        if len(page) <= max_batch:
            return page, None
        return page[:max_batch], page[max_batch].received_at
