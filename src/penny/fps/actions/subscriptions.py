"""The subscription actions (issue #19): GetSubscriptionDetails and
GetTransactionsForSubscription (2010-08-28 only), CancelSubscriptionAndRefund (both versions).

A subscription is a Recurring sender token (:mod:`penny.services.subscriptions`); the
elements are in the schema's order (spec §4.4: SubscriptionDetails, SubscriptionTransaction,
Duration).
"""

from __future__ import annotations

from typing import Final

from penny.domain import subscriptions as subs
from penny.domain.ids import MAX_CALLER_REFERENCE
from penny.domain.model import Transaction
from penny.fps.actions.call import MAX_DESCRIPTION, Call
from penny.fps.actions.spec import QueryAction, amount_names, names
from penny.fps.wire import Xml, amount_element, element, fps_datetime, leaf
from penny.money import Money
from penny.services import subscriptions
from penny.services.subscriptions import CancelSubscription, Subscription


def _duration(name: str, period: str) -> Xml:
    duration = subs.frequency(period)
    return element(name, leaf("Value", str(duration.value)), leaf("TimeUnit", duration.unit))


def _description(found: Subscription) -> str:
    return found.token.payment_reason or found.instrument.payment_reason


def _details(found: Subscription) -> Xml:
    instrument, next_date = found.instrument, found.next_payment_date
    end = instrument.valid_until
    return element(
        "SubscriptionDetails",
        leaf("SubscriptionId", found.token.id),
        leaf("Description", _description(found)),
        amount_element("SubscriptionAmount", found.amount),
        amount_element("NextTransactionAmount", found.amount) if next_date else None,
        leaf("NumberOfPromotionalTransactions", "0"),
        leaf("StartDate", fps_datetime(instrument.valid_from)),
        None if end is None else leaf("EndDate", fps_datetime(end)),
        _duration("SubscriptionFrequency", found.period),
        leaf("SubscriptionStatus", found.status.value),
        leaf("NumberOfTransactionsProcessed", str(found.processed)),
        leaf("RecipientEmail", found.recipient.email),
        leaf("RecipientName", found.recipient.name),
        leaf("SenderEmail", found.sender.email),
        leaf("SenderName", found.sender.name),
        None if next_date is None else leaf("NextTransactionDate", fps_datetime(next_date)),
    )


def _get_subscription_details(call: Call) -> Xml | None:
    found = subscriptions.subscription(
        call.payments, call.caller_id, call.required("SubscriptionId")
    )
    return _details(found)


def _transaction(found: Subscription, serial: int, pay: Transaction) -> Xml:
    return element(
        "SubscriptionTransaction",
        leaf("TransactionId", pay.id),
        leaf("TransactionDate", fps_datetime(pay.received_at)),
        leaf("TransactionSerialNumber", str(serial)),
        amount_element("TransactionAmount", Money(pay.amount, pay.currency)),
        leaf("Description", pay.caller_description or _description(found)),
        leaf("TransactionStatus", pay.status.value),
    )


def _get_transactions_for_subscription(call: Call) -> Xml | None:
    found = subscriptions.subscription(
        call.payments, call.caller_id, call.required("SubscriptionId")
    )
    return Xml("".join(_transaction(found, n, pay) for n, pay in enumerate(found.pays, 1)))


def _cancel_subscription_and_refund(call: Call) -> Xml | None:
    subscription_id = call.required("SubscriptionId")
    amount = call.amount("RefundAmount", required=False)
    # Required only with a RefundAmount (spec §5); without one it is not used (boto sends a
    # random one on every call: the default refund is keyed by the subscription).
    reference = call.text("CallerReference", MAX_CALLER_REFERENCE, required=amount is not None)
    request = CancelSubscription(
        call.caller_id,
        subscription_id,
        amount,
        reference or None,
        call.text("CancelReason", MAX_DESCRIPTION),
    )
    refund = subscriptions.cancel_and_refund(call.payments, request)
    return leaf("RefundTransactionId", "" if refund is None else refund.id)


GET_SUBSCRIPTION_DETAILS: Final = QueryAction(
    handler=_get_subscription_details, parameters=names("SubscriptionId")
)
GET_TRANSACTIONS_FOR_SUBSCRIPTION: Final = QueryAction(
    handler=_get_transactions_for_subscription, parameters=names("SubscriptionId")
)
CANCEL_SUBSCRIPTION_AND_REFUND: Final = QueryAction(
    handler=_cancel_subscription_and_refund,
    parameters=names("SubscriptionId", "CallerReference", "CancelReason")
    | amount_names("RefundAmount"),
)
