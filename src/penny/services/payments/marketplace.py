"""The marketplace steps of Pay and Refund (issue #19), over a :class:`Batch`.

Pay and Reserve call :func:`pay_legs` (:func:`direct_legs` on a SingleUse, MultiUse or
Recurring token) only when their ``RecipientTokenId`` names a recipient token, so the plain
prepaid and postpaid Pay stays as it was (docs/decisions.md, #19). The rules — the fee
caps, who bears Penny's fee, the legs — are :mod:`penny.domain.marketplace`'s.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from penny.domain import marketplace as mk
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import Method
from penny.domain.model import Instrument, RecipientToken, Transaction
from penny.money import Money
from penny.services.payment_queries import books_of
from penny.services.payments.batch import Batch
from penny.services.payments.steps import refuse


def recipient_token(batch: Batch, token_id: str, caller_id: str) -> RecipientToken:
    """The recipient token a Pay names, checked (exists, given to the caller, active)."""
    token = batch.recipient_tokens.get(token_id)
    refuse(mk.check_token(token, caller_id, batch.now))
    assert token is not None
    return token


def split(batch: Batch, token: RecipientToken, fees: mk.MarketplaceFees, amount: Money) -> mk.Split:
    """The caller's fee and Penny's on a marketplace Pay (Penny's: its ABT rule, since money
    moves between two Penny balances)."""
    penny_fee = batch.settings.fees.fee(Method.balance, amount)
    result = mk.split(token, fees, amount, penny_fee)
    if isinstance(result, Refusal):
        raise PaymentsError(result)
    return result


def pay_legs(
    batch: Batch, instrument: Instrument, token: RecipientToken, amount: Money, shares: mk.Split
) -> tuple[Any, ...]:
    """The legs that pay the recipient from the caller's payable balance (the caller is the
    instrument's recipient)."""
    return transfer(batch, instrument, token.recipient_id, amount, shares)


def transfer(
    batch: Batch, instrument: Instrument, recipient_id: str, amount: Money, shares: mk.Split
) -> tuple[Any, ...]:
    """:func:`pay_legs` to the recipient ``recipient_id`` (a Settle knows the reserve's
    recipient, not its token)."""
    caller = books_of(batch.parties[instrument.recipient_id])
    recipient = books_of(batch.parties[recipient_id])
    return mk.transfer_legs(caller.payable, recipient.payable, batch.chart.fees, amount, shares)


def direct_legs(
    batch: Batch,
    source: int,
    instrument: Instrument,
    recipient_id: str,
    amount: Money,
    shares: mk.Split,
) -> tuple[Any, ...]:
    """A marketplace payment on an authorization: from ``source`` to the recipient, the
    caller keeping its fee (:func:`penny.domain.marketplace.direct_transfer_legs`)."""
    caller = books_of(batch.parties[instrument.recipient_id])
    recipient = books_of(batch.parties[recipient_id])
    return mk.direct_transfer_legs(
        source, caller.payable, recipient.payable, batch.chart.fees, amount, shares
    )


def split_of(txn: Transaction) -> mk.Split:
    """The fees a marketplace transaction recorded."""
    return mk.Split(txn.marketplace_fee, txn.fees, txn.fees_paid_by)


def marked(txn: Transaction, token: RecipientToken, shares: mk.Split) -> Transaction:
    """A Pay's transaction as a marketplace Pay: its recipient, fees and recipient token."""
    return replace(
        txn,
        recipient_id=token.recipient_id,
        recipient_token_id=token.id,
        fees=shares.penny_fee,
        marketplace_fee=shares.marketplace_fee,
        fees_paid_by=shares.fee_payer,
    )


def refund_legs(
    batch: Batch,
    original: Transaction,
    instrument: Instrument,
    amount: Money,
    *,
    with_marketplace_fee: bool,
) -> tuple[Any, ...]:
    """Refunding (part of) a marketplace Pay: the recipient gives the value back to the caller,
    Penny its fee's share (pro rata), the caller its fee's share under
    ``MasterAndMarketplaceTxn`` (docs/decisions.md, #19)."""
    caller = books_of(batch.parties[instrument.recipient_id])
    recipient = books_of(batch.parties[original.recipient_id])
    shares = mk.refund_shares(
        original.amount,
        split_of(original),
        amount.minor,
        with_marketplace_fee=with_marketplace_fee,
    )
    return mk.refund_transfer_legs(
        caller.payable, recipient.payable, batch.chart.fees, amount, original.fees_paid_by, shares
    )


def is_marketplace(txn: Transaction) -> bool:
    """Whether ``txn`` paid another merchant than its instrument's (a marketplace Pay)."""
    return txn.recipient_token_id is not None and txn.recipient_id != txn.caller_id
