"""Subscriptions (issue #19): GetSubscriptionDetails, GetTransactionsForSubscription and
CancelSubscriptionAndRefund over Recurring sender tokens (:mod:`penny.domain.subscriptions`).

Only the caller that holds the token (the merchant the buyer subscribed to) may ask; any other
id — another caller's token, a token of another kind, an unknown id — is refused alike
(``unknown_subscription``).

:func:`cancel_and_refund` is one write transaction (:meth:`Payments.transact`): the refund of
the subscription's most recent Pay goes through the batch runner exactly as a Refund does
(keyed by its CallerReference: a retry returns the original refund, the same reference with
other content is ``DuplicateRequest``), and only once it is accepted is the token cancelled,
as CancelToken cancels it (with its IPN). A refused refund raises before anything is written,
so a subscription is never cancelled without the refund asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from penny.domain import subscriptions as subs
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import Instrument, Status, Token, TokenKind, TokenTerms, Transaction
from penny.domain.parties import Party
from penny.engine.ledger import LedgerSession
from penny.money import Money
from penny.services.payments import Payments, RefundRequest
from penny.services.payments.service import RunBatch
from penny.storage import parties_sql, terms_sql
from penny.storage import payments_sql as sql

#: The CallerReference of the refund a CancelSubscriptionAndRefund without RefundAmount makes
#: (one per subscription, so a retry finds it).
DEFAULT_REFUND_REFERENCE = "CancelSubscriptionAndRefund {}"


@dataclass(frozen=True, slots=True)
class Subscription:
    """A Recurring token seen as a subscription, at ``now``."""

    token: Token
    instrument: Instrument
    terms: TokenTerms
    #: The Pays made with the token, oldest first (TransactionSerialNumber 1..n).
    pays: tuple[Transaction, ...]
    sender: Party
    recipient: Party
    now: int

    @property
    def status(self) -> subs.SubscriptionStatus:
        return subs.status(self.token, self.instrument, self.now)

    @property
    def amount(self) -> Money:
        assert self.terms.transaction_amount is not None, "a Recurring token has its amount"
        return Money(self.terms.transaction_amount, self.instrument.currency)

    @property
    def period(self) -> str:
        assert self.terms.recurring_period is not None, "a Recurring token has its period"
        return self.terms.recurring_period

    @property
    def processed(self) -> int:
        """NumberOfTransactionsProcessed: the Pays that succeeded."""
        return sum(1 for pay in self.pays if pay.status is Status.success)

    @property
    def next_payment_date(self) -> int | None:
        """While Active: when the next period starts (before the end date)."""
        if self.status is not subs.SubscriptionStatus.active:
            return None
        return subs.next_payment_date(self.instrument, self.period, self.now)


@dataclass(frozen=True, slots=True)
class CancelSubscription:
    """CancelSubscriptionAndRefund: ``refund_amount`` None refunds what is still refundable of
    the most recent Pay (nothing when it failed or is refunded already), keyed by the
    subscription (:data:`DEFAULT_REFUND_REFERENCE`: boto sends a random CallerReference on
    every call, so a retry would not find it); a given amount is keyed by
    ``caller_reference``, which it needs. ``reason`` (CancelReason) is the refund's
    CallerDescription."""

    caller_id: str
    subscription_id: str
    refund_amount: Money | None = None
    caller_reference: str | None = None
    reason: str = ""


def _token(conn: Connection, caller_id: str, subscription_id: str) -> Token:
    token = sql.load_tokens(conn, [subscription_id]).get(subscription_id)
    if token is None or token.caller_id != caller_id or token.kind is not TokenKind.recurring:
        raise PaymentsError(Refusal.unknown_subscription)
    return token


def _load(conn: Connection, caller_id: str, subscription_id: str, now: int) -> Subscription:
    token = _token(conn, caller_id, subscription_id)
    instrument = sql.load_instruments(conn, [token.instrument_id])[token.instrument_id]
    terms = terms_sql.load_terms(conn, [token.id])[token.id]
    pays = tuple(sql.pays_with_token(conn, instrument.sender_id, token.id))
    parties = parties_sql.load_parties(conn, [instrument.sender_id, instrument.recipient_id])
    sender, recipient = parties[instrument.sender_id], parties[instrument.recipient_id]
    return Subscription(token, instrument, terms, pays, sender, recipient, now)


def subscription(payments: Payments, caller_id: str, subscription_id: str) -> Subscription:
    """GetSubscriptionDetails and GetTransactionsForSubscription: the caller's subscription."""
    now = payments.clock.now_us()
    with payments.database.read() as conn:
        return _load(conn, caller_id, subscription_id, now)


def _refund_of(
    conn: Connection, request: CancelSubscription, last: Transaction | None
) -> RefundRequest | None:
    """The refund the request asks for, against the most recent Pay ``last``; None: none."""
    caller = request.caller_id
    if request.refund_amount is not None:
        assert request.caller_reference, "the door requires a CallerReference with an amount"
        if last is None:
            raise PaymentsError(Refusal.invalid_params, "The subscription has no payment.")
        return RefundRequest(
            caller, request.caller_reference, last.id, request.refund_amount, request.reason
        )
    if last is None:
        return None
    reference = DEFAULT_REFUND_REFERENCE.format(request.subscription_id)
    made = sql.transactions_by_reference(conn, [(caller, reference)])
    refundable = last.status is Status.success and last.amount > last.refunded
    if not made and not refundable and last.status is not Status.pending:
        return None  # it failed, or nothing of it is left to refund
    return RefundRequest(caller, reference, last.id, None, request.reason)


def cancel_and_refund(payments: Payments, request: CancelSubscription) -> Transaction | None:
    """Cancel the subscription and refund as asked, in one transaction; the refund (None when
    none was made). Refused (and nothing changed) when the refund is refused."""

    def work(session: LedgerSession, run: RunBatch) -> Transaction | None:
        conn = session.conn
        # Two cancels of one subscription at once: the second waits and finds it cancelled
        # (one TokenCancellation IPN, not two).
        session.lock_keys("subscription", [(request.caller_id, request.subscription_id)])
        token = _token(conn, request.caller_id, request.subscription_id)
        pays = sql.pays_with_token(conn, token.sender_id, token.id)
        refund = _refund_of(conn, request, pays[-1] if pays else None)
        refunded: Transaction | None = None
        if refund is not None:
            (result,) = run([refund])
            if isinstance(result, PaymentsError):
                raise result  # before the token is touched: the transaction rolls back
            refunded = result
        payments.cancel_token_in(session, request.caller_id, token.id)
        return refunded

    return payments.transact(work)
