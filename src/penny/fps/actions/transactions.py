"""The transaction actions: GetTransaction, GetTransactionStatus and GetAccountActivity."""

from __future__ import annotations

import re
from typing import Final

from penny.domain.fees import Method
from penny.domain.model import Operation, Status, StatusCode, Transaction
from penny.fps.actions.call import Call
from penny.fps.actions.spec import QueryAction, names
from penny.fps.wire import Xml, amount_element, element, fps_datetime, leaf, optional_leaf
from penny.money import Money


def _money(txn: Transaction, minor: int) -> Money:
    return Money(minor, txn.currency)


def _instrument_element(txn: Transaction) -> Xml | None:
    """``PrepaidInstrumentId`` or ``CreditInstrumentId``, whichever the transaction used."""
    if txn.instrument_id is None:
        return None
    prepaid = txn.operation is Operation.fund_prepaid or txn.method is Method.prepaid
    credit = txn.operation in (Operation.settle_debt, Operation.write_off_debt) or (
        txn.method is Method.debt
    )
    if prepaid:
        return leaf("PrepaidInstrumentId", txn.instrument_id)
    if credit:
        return leaf("CreditInstrumentId", txn.instrument_id)
    return None


def _status_history(txn: Transaction) -> Xml:
    """The transaction's history, oldest first (boto keeps the last entry's status)."""
    amount = amount_element("Amount", _money(txn, txn.amount))
    entries: list[Xml] = []
    # A Reserve was Reserved first (its own code Success); anything else Pending until done.
    reserve = txn.operation is Operation.reserve
    if reserve or txn.completed_at is None or txn.completed_at > txn.received_at:
        entries.append(
            element(
                "StatusHistory",
                leaf("Date", fps_datetime(txn.received_at)),
                leaf("TransactionStatus", (Status.reserved if reserve else Status.pending).value),
                leaf(
                    "StatusCode",
                    StatusCode.success if reserve else StatusCode.pending_network_response,
                ),
                amount,
            )
        )
    if txn.completed_at is not None:
        entries.append(
            element(
                "StatusHistory",
                leaf("Date", fps_datetime(txn.completed_at)),
                leaf("TransactionStatus", txn.status.value),
                leaf("StatusCode", txn.status_code) if txn.status_code else None,
                amount,
            )
        )
    return Xml("".join(entries))


def _related(call: Call, txn: Transaction) -> Xml:
    related: list[Xml] = []
    if txn.parent_id is not None:
        related.append(
            element(
                "RelatedTransaction",
                leaf("TransactionId", txn.parent_id),
                leaf("RelationType", "Parent"),
            )
        )
    if txn.operation is Operation.pay or txn.operation is Operation.settle:
        related.extend(
            element(
                "RelatedTransaction",
                leaf("TransactionId", refund.id),
                leaf("RelationType", "Refund"),
            )
            for refund in call.payments.refunds(call.caller_id, txn.id)
        )
    return Xml("".join(related))


def _get_transaction(call: Call) -> Xml | None:
    txn = call.payments.transaction(call.caller_id, call.required("TransactionId"))
    completed = txn.completed_at
    return element(
        "Transaction",
        leaf("TransactionId", txn.id),
        leaf("CallerReference", txn.caller_reference),
        optional_leaf("CallerDescription", txn.caller_description),
        optional_leaf("SenderDescription", txn.sender_description),
        leaf("DateReceived", fps_datetime(txn.received_at)),
        None if completed is None else leaf("DateCompleted", fps_datetime(completed)),
        amount_element("TransactionAmount", _money(txn, txn.amount)),
        amount_element("FPSFees", _money(txn, txn.fees)),
        leaf("FPSFeesPaidBy", "Recipient"),
        optional_leaf("SenderTokenId", txn.sender_token_id),
        _instrument_element(txn),
        leaf("FPSOperation", txn.operation.value),
        leaf("PaymentMethod", txn.method.value),
        leaf("TransactionStatus", txn.status.value),
        optional_leaf("StatusCode", txn.status_code),
        optional_leaf("StatusMessage", txn.status_message),
        optional_leaf("SenderName", call.name_of(txn.sender_id)),
        leaf("CallerName", call.name_of(txn.caller_id)),
        optional_leaf("RecipientName", call.name_of(txn.recipient_id)),
        _related(call, txn),
        _status_history(txn),
    )


def _get_transaction_status(call: Call) -> Xml | None:
    txn = call.payments.transaction(call.caller_id, call.required("TransactionId"))
    return Xml(
        leaf("TransactionId", txn.id)
        + leaf("TransactionStatus", txn.status.value)
        + leaf("CallerReference", txn.caller_reference)
        + (optional_leaf("StatusCode", txn.status_code) or "")
        + (optional_leaf("StatusMessage", txn.status_message) or "")
    )


_ROLES: Final = ("Sender", "Caller", "Recipient")
_ROLE_NAME: Final = re.compile(r"Role\.[1-9][0-9]?")


def _activity_transaction(call: Call, txn: Transaction) -> Xml:
    completed = txn.completed_at
    fees = _money(txn, txn.fees)
    parts = Xml(
        element(
            "TransactionPart",
            optional_leaf("InstrumentId", txn.instrument_id),
            leaf("Role", "Sender"),
            optional_leaf("Name", call.name_of(txn.sender_id)),
            optional_leaf("Description", txn.sender_description),
        )
        + element(
            "TransactionPart",
            leaf("Role", "Recipient"),
            optional_leaf("Name", call.name_of(txn.recipient_id)),
            optional_leaf("Reference", txn.caller_reference),
            optional_leaf("Description", txn.caller_description),
            amount_element("FeesPaid", fees),
        )
    )
    return element(
        "Transaction",
        leaf("TransactionId", txn.id),
        leaf("CallerTransactionDate", fps_datetime(txn.received_at)),
        leaf("DateReceived", fps_datetime(txn.received_at)),
        None if completed is None else leaf("DateCompleted", fps_datetime(completed)),
        amount_element("TransactionAmount", _money(txn, txn.amount)),
        leaf("FPSOperation", txn.operation.value),
        leaf("TransactionStatus", txn.status.value),
        optional_leaf("StatusMessage", txn.status_message),
        optional_leaf("StatusCode", txn.status_code),
        optional_leaf("OriginalTransactionId", txn.parent_id),
        parts,
        leaf("PaymentMethod", txn.method.value),
        optional_leaf("SenderName", call.name_of(txn.sender_id)),
        leaf("CallerName", call.name_of(txn.caller_id)),
        optional_leaf("RecipientName", call.name_of(txn.recipient_id)),
        amount_element("FPSFees", fees),
        # Penny does not keep a per-transaction prepaid balance; see docs/fps-wire.md.
        amount_element("Balance", Money.zero(txn.currency)),
        optional_leaf("SenderTokenId", txn.sender_token_id),
    )


def _get_account_activity(call: Call) -> Xml | None:
    start = call.date("StartDate", required=True)
    assert start is not None
    end = call.date("EndDate")
    batch = call.integer("MaxBatchSize", 1, 200)
    order = call.choice("SortOrderByDate", ("Ascending", "Descending"))
    operation = call.choice("FPSOperation", tuple(op.value for op in Operation))
    method = call.choice("PaymentMethod", tuple(m.value for m in Method))
    status = call.choice("TransactionStatus", tuple(s.value for s in Status))
    roles: list[str] = []
    for name in sorted(call.params):
        if name == "Role" or _ROLE_NAME.fullmatch(name):
            role = call.choice(name, _ROLES)
            if role is not None and role not in roles:
                roles.append(role)
    page, next_start = call.payments.activity(
        call.caller_id,
        start=start,
        end=end,
        operation=None if operation is None else Operation(operation),
        method=None if method is None else Method(method),
        status=None if status is None else Status(status),
        roles=roles,
        ascending=order == "Ascending",
        max_batch=20 if batch is None else batch,
    )
    body = "".join(_activity_transaction(call, txn) for txn in page)
    after = (
        None
        if next_start is None
        else leaf("StartTimeForNextTransaction", fps_datetime(next_start))
    )
    return Xml(leaf("BatchSize", str(len(page))) + body + (after or ""))


GET_TRANSACTION: Final = QueryAction(handler=_get_transaction, parameters=names("TransactionId"))
GET_TRANSACTION_STATUS: Final = QueryAction(
    handler=_get_transaction_status, parameters=names("TransactionId")
)
GET_ACCOUNT_ACTIVITY: Final = QueryAction(
    handler=_get_account_activity,
    parameters=names(
        "MaxBatchSize",
        "StartDate",
        "EndDate",
        "SortOrderByDate",
        "FPSOperation",
        "PaymentMethod",
        "Role",
        "TransactionStatus",
    ),
    pattern=_ROLE_NAME,
)
