"""The parameters of an IPN, as FPS sent them (spec ``fps-api.md`` §8; docs/ipn.md).

Pure: what a notification says is decided from the transaction or token and the parties and
instrument it names; nothing here reads a clock, a database or the network. The signature
parameters are added at delivery (:mod:`penny.ipn.delivery`).

Two kinds:

* ``TransactionStatus`` — a transaction was accepted or its status changed: ``notificationId``
  (Penny's, the same on every redelivery), ``notificationType``, ``transactionId``,
  ``transactionDate`` (epoch seconds it was received: the same on each notification of one
  transaction, as in the captures), ``transactionStatus`` (upper case), ``statusCode``,
  ``statusMessage``, ``operation`` (upper snake), ``paymentMethod``, ``transactionAmount``
  (``USD 2.22``), ``callerReference``, ``paymentReason`` (when there is one), ``buyerName``,
  ``buyerEmail``, ``recipientName``, ``recipientEmail``; refunds add ``parentTransactionId``
  and the legacy ``status`` (``INITIATED``/``SUCCESS``/``FAILURE``).
* ``TokenCancellation`` — ``notificationId``, ``notificationType``, ``tokenId``, ``tokenType``,
  ``callerReference`` (the token's), ``dateInstalled`` (``Sep 27, 2009``), ``customerName``,
  ``customerEmail``, ``paymentReason`` (when there is one).
"""

from __future__ import annotations

from typing import Final

from penny.clock import MICROS_PER_SECOND
from penny.domain.model import (
    Instrument,
    Operation,
    PaymentInstruction,
    Status,
    Token,
    Transaction,
)
from penny.domain.parties import Party
from penny.epoch import to_datetime
from penny.money import Money

TRANSACTION_STATUS: Final = "TransactionStatus"
TOKEN_CANCELLATION: Final = "TokenCancellation"  # noqa: S105 (a notification type)
#: Penny's id of a notification, repeated on every redelivery of it (the receiver's dedup key).
NOTIFICATION_ID: Final = "notificationId"

#: The legacy ``status`` field of refund IPNs (spec §8: INITIATED / SUCCESS).
_LEGACY_REFUND_STATUS: Final = {
    Status.pending: "INITIATED",
    Status.success: "SUCCESS",
    Status.failure: "FAILURE",
    Status.reserved: "INITIATED",
    Status.cancelled: "CANCELLED",
}

Params = tuple[tuple[str, str], ...]


def _seconds(us: int) -> str:
    return str(us // MICROS_PER_SECOND)


def human_date(us: int) -> str:
    """``Sep 27, 2009``: how FPS wrote ``dateInstalled`` (UTC)."""
    moment = to_datetime(us)
    return f"{moment:%b} {moment.day}, {moment.year}"


def transaction_params(
    notification_id: str,
    txn: Transaction,
    *,
    sender: Party | None,
    recipient: Party | None,
    instrument: Instrument | None,
) -> Params:
    """The ``TransactionStatus`` notification of ``txn`` as it is now."""
    pairs: list[tuple[str, str]] = [
        (NOTIFICATION_ID, notification_id),
        ("notificationType", TRANSACTION_STATUS),
        ("transactionId", txn.id),
        ("transactionDate", _seconds(txn.received_at)),
        ("transactionStatus", txn.status.value.upper()),
        ("statusCode", txn.status_code),
        ("statusMessage", txn.status_message),
        ("operation", txn.operation.ipn_name),
        ("paymentMethod", txn.method.value),
        ("transactionAmount", str(Money(txn.amount, txn.currency))),
        ("callerReference", txn.caller_reference),
    ]
    reason = txn.sender_description or (instrument.payment_reason if instrument else "")
    if reason:
        pairs.append(("paymentReason", reason))
    if sender is not None:
        pairs += [("buyerName", sender.name), ("buyerEmail", sender.email)]
    if recipient is not None:
        pairs += [("recipientName", recipient.name), ("recipientEmail", recipient.email)]
    if txn.operation is Operation.refund and txn.parent_id is not None:
        pairs += [
            ("parentTransactionId", txn.parent_id),
            ("status", _LEGACY_REFUND_STATUS[txn.status]),
        ]
    return tuple(pairs)


def token_cancellation_params(
    notification_id: str, token: Token | PaymentInstruction, *, sender: Party | None
) -> Params:
    """The ``TokenCancellation`` notification of ``token`` (a pipeline token or an installed
    payment instruction, which has no sender: no customer fields then)."""
    token_type = token.kind.fps_type if isinstance(token, Token) else token.token_type
    pairs: list[tuple[str, str]] = [
        (NOTIFICATION_ID, notification_id),
        ("notificationType", TOKEN_CANCELLATION),
        ("tokenId", token.id),
        ("tokenType", token_type),
        ("callerReference", token.caller_reference),
        ("dateInstalled", human_date(token.created_at)),
    ]
    if sender is not None:
        pairs += [("customerName", sender.name), ("customerEmail", sender.email)]
    if token.payment_reason:
        pairs.append(("paymentReason", token.payment_reason))
    return tuple(pairs)


def notifies(before: Transaction | None, after: Transaction) -> bool:
    """Whether this change is one FPS notified: a new transaction (whatever its first status,
    an immediate Success included) or a change of status. A refund's original, whose refunded
    amount changed but not its status, does not notify (the refund itself does)."""
    return before is None or before.status is not after.status
