"""The money-moving actions: Pay, FundPrepaid, SettleDebt, WriteOffDebt and Refund.

Each validation turns the parameters into the payments service's typed request; the answer
of all five is the transaction's ``TransactionId`` then ``TransactionStatus`` (spec §5).

* ``RecipientTokenId`` on Pay names a payment instruction the caller installed (the payments
  service refuses any other id with ``InvalidParams``; docs/decisions.md #7).
* Marketplace fees and ``ChargeFeeTo=Caller`` are refused with ``InvalidParams``; the
  descriptor policy and the transaction timeout are validated and then ignored (Penny has no
  card statements and no timeouts).
"""

from __future__ import annotations

from typing import Final

from penny.domain.errors import PaymentsError
from penny.domain.model import Transaction
from penny.fps.actions.call import MAX_DESCRIPTION, Call, invalid
from penny.fps.actions.spec import CommitAction, amount_names, names
from penny.fps.wire import WireFault, Xml, leaf, refusal_error
from penny.services.payments import (
    FundPrepaidRequest,
    PayRequest,
    RefundRequest,
    SettleDebtRequest,
    WriteOffDebtRequest,
)


def transaction_result(txn: Transaction) -> Xml:
    """The Result content of every money-moving action (§5), for ``txn`` decided."""
    return Xml(leaf("TransactionId", txn.id) + leaf("TransactionStatus", txn.status.value))


def decided_result(outcome: Transaction | PaymentsError) -> Xml | WireFault:
    """The answer to a money-moving request once it was decided and committed (or refused)."""
    if isinstance(outcome, PaymentsError):
        return refusal_error(outcome.refusal, outcome.detail)
    return transaction_result(outcome)


def _pay(call: Call) -> PayRequest:
    sender_token = call.required("SenderTokenId")
    amount = call.amount("TransactionAmount")
    assert amount is not None
    reference = call.reference()
    recipient_token = call.optional("RecipientTokenId")
    if call.choice("ChargeFeeTo", ("Caller", "Recipient")) == "Caller":
        raise invalid("ChargeFeeTo=Caller is not supported: the recipient pays the fees.")
    if call.optional("MarketplaceFixedFee.Value") or call.optional("MarketplaceVariableFee"):
        raise invalid("Marketplace fees are not supported.")
    call.common_pay_options()
    return PayRequest(
        caller_id=call.caller_id,
        caller_reference=reference,
        sender_token_id=sender_token,
        amount=amount,
        sender_description=call.text("SenderDescription", MAX_DESCRIPTION),
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
        ipn_url=call.ipn_url(),
        recipient_token_id=recipient_token,
    )


def _fund_prepaid(call: Call) -> FundPrepaidRequest:
    token = call.required("SenderTokenId")
    instrument = call.required("PrepaidInstrumentId")
    amount = call.amount("FundingAmount")
    assert amount is not None
    reference = call.reference()
    call.common_pay_options()
    return FundPrepaidRequest(
        caller_id=call.caller_id,
        caller_reference=reference,
        funding_token_id=token,
        instrument_id=instrument,
        amount=amount,
        sender_description=call.text("SenderDescription", MAX_DESCRIPTION),
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
        ipn_url=call.ipn_url(),
    )


def _settle_debt(call: Call) -> SettleDebtRequest:
    token = call.required("SenderTokenId")
    instrument = call.required("CreditInstrumentId")
    amount = call.amount("SettlementAmount")
    assert amount is not None
    reference = call.reference()
    call.common_pay_options()
    return SettleDebtRequest(
        caller_id=call.caller_id,
        caller_reference=reference,
        settlement_token_id=token,
        instrument_id=instrument,
        amount=amount,
        sender_description=call.text("SenderDescription", MAX_DESCRIPTION),
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
        ipn_url=call.ipn_url(),
    )


def _write_off_debt(call: Call) -> WriteOffDebtRequest:
    instrument = call.required("CreditInstrumentId")
    amount = call.amount("AdjustmentAmount")
    assert amount is not None
    return WriteOffDebtRequest(
        caller_id=call.caller_id,
        caller_reference=call.reference(),
        instrument_id=instrument,
        amount=amount,
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
    )


def _refund(call: Call) -> RefundRequest:
    transaction_id = call.required("TransactionId")
    amount = call.amount("RefundAmount", required=False)
    reference = call.reference()
    call.choice(
        "MarketplaceRefundPolicy",
        ("MasterTxnOnly", "MarketplaceTxnOnly", "MasterAndMarketplaceTxn"),
    )
    return RefundRequest(
        caller_id=call.caller_id,
        caller_reference=reference,
        transaction_id=transaction_id,
        amount=amount,
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
        ipn_url=call.ipn_url(),
    )


_DESCRIPTOR: Final = names(
    "DescriptorPolicy.SoftDescriptorType",
    "DescriptorPolicy.CSOwner",
    "TransactionTimeoutInMins",
    "OverrideIPNURL",
)
_PAY_OPTIONS: Final = names("SenderDescription", "CallerDescription") | _DESCRIPTOR

PAY: Final = CommitAction(
    validate=_pay,
    parameters=names(
        "SenderTokenId",
        "RecipientTokenId",
        "ChargeFeeTo",
        "CallerReference",
        "MarketplaceVariableFee",
    )
    | _PAY_OPTIONS
    | amount_names("TransactionAmount", "MarketplaceFixedFee"),
)
FUND_PREPAID: Final = CommitAction(
    validate=_fund_prepaid,
    parameters=names("SenderTokenId", "PrepaidInstrumentId", "CallerReference")
    | _PAY_OPTIONS
    | amount_names("FundingAmount"),
)
SETTLE_DEBT: Final = CommitAction(
    validate=_settle_debt,
    parameters=names("SenderTokenId", "CreditInstrumentId", "CallerReference")
    | _PAY_OPTIONS
    | amount_names("SettlementAmount"),
)
WRITE_OFF_DEBT: Final = CommitAction(
    validate=_write_off_debt,
    parameters=names("CreditInstrumentId", "CallerReference", "CallerDescription")
    | amount_names("AdjustmentAmount"),
)
REFUND: Final = CommitAction(
    validate=_refund,
    parameters=names(
        "TransactionId",
        "CallerReference",
        "CallerDescription",
        "MarketplaceRefundPolicy",
        "OverrideIPNURL",
    )
    | amount_names("RefundAmount"),
)
