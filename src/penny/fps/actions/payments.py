"""The money-moving actions: Pay, FundPrepaid, SettleDebt, WriteOffDebt, Refund, Reserve,
Settle and Cancel.

Each validation turns the parameters into the payments service's typed request; the answer
of all eight is the transaction's ``TransactionId`` then ``TransactionStatus`` (spec §5):
Settle answers the new Settle transaction, Cancel the cancelled transaction itself. Settle and
Cancel carry no ``CallerReference``: their keys are derived from what they settle or cancel
(docs/decisions.md, #19).

* ``RecipientTokenId`` on Pay and Reserve names a recipient token a merchant gave the caller (a
  marketplace Pay, with ``MarketplaceFixedFee``/``MarketplaceVariableFee`` and ``ChargeFeeTo``;
  #19) or a payment instruction the caller installed (docs/decisions.md #7); the payments
  service refuses any other id with ``InvalidParams``. ``ChargeFeeTo=Caller`` without one is
  ``InvalidParams`` (the caller is then the recipient).
* ``MarketplaceRefundPolicy`` on Refund: ``MasterTxnOnly`` (the default) and
  ``MasterAndMarketplaceTxn``; ``MarketplaceTxnOnly`` is ``InvalidParams`` (docs/decisions.md,
  #19).
* The descriptor policy and the transaction timeout are validated and then ignored (Penny has
  no card statements and no timeouts).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, TypeVar

from penny.domain.errors import PaymentsError
from penny.domain.marketplace import MAX_VARIABLE_FEE
from penny.domain.model import FeePayer, Transaction
from penny.fps.actions.call import MAX_DESCRIPTION, Call, invalid
from penny.fps.actions.spec import CommitAction, amount_names, names
from penny.fps.wire import WireFault, Xml, leaf, refusal_error
from penny.services.payments import (
    CancelRequest,
    FundPrepaidRequest,
    PayRequest,
    RefundRequest,
    ReserveRequest,
    SettleDebtRequest,
    SettleRequest,
    WriteOffDebtRequest,
    cancel_request,
    settle_request,
)


def transaction_result(txn: Transaction) -> Xml:
    """The Result content of every money-moving action (§5), for ``txn`` decided."""
    return Xml(leaf("TransactionId", txn.id) + leaf("TransactionStatus", txn.status.value))


def decided_result(outcome: Transaction | PaymentsError) -> Xml | WireFault:
    """The answer to a money-moving request once it was decided and committed (or refused)."""
    if isinstance(outcome, PaymentsError):
        return refusal_error(outcome.refusal, outcome.detail)
    return transaction_result(outcome)


def _descriptions(call: Call) -> tuple[str, str, str | None]:
    """The sender's and the caller's descriptions and the IPN URL, in the requests' order."""
    return (
        call.text("SenderDescription", MAX_DESCRIPTION),
        call.text("CallerDescription", MAX_DESCRIPTION),
        call.ipn_url(),
    )


_Pay = TypeVar("_Pay", PayRequest, ReserveRequest)


def _pay_validator(request_type: type[_Pay]) -> Callable[[Call], _Pay]:
    """Pay's validation, and Reserve's (the same parameters; a Reserve's timeout is its
    ``TransactionTimeoutInMins``, which Pay validates and ignores). Marketplace fees and
    ``ChargeFeeTo`` are both's (#19)."""

    def validate(call: Call) -> _Pay:
        sender_token = call.required("SenderTokenId")
        amount = call.amount("TransactionAmount")
        assert amount is not None
        reference = call.reference()
        recipient_token = call.optional("RecipientTokenId")
        charge_fee_to = call.choice("ChargeFeeTo", ("Caller", "Recipient"))
        if charge_fee_to == "Caller" and recipient_token is None:
            raise invalid(
                "ChargeFeeTo=Caller needs a RecipientTokenId: the caller is the recipient."
            )
        fixed = call.amount("MarketplaceFixedFee", required=False)
        variable = _variable_fee(call)
        call.common_pay_options()
        fields = (call.caller_id, reference, sender_token, amount, *_descriptions(call))
        extra: dict[str, Any] = {}
        if request_type is ReserveRequest:
            extra["timeout_minutes"] = call.integer("TransactionTimeoutInMins", 1, 1_000_000)
        return request_type(
            *fields,
            recipient_token,
            marketplace_fixed_fee=0 if fixed is None else fixed.minor,
            marketplace_variable_fee=variable,
            charge_fee_to=None if charge_fee_to is None else FeePayer(charge_fee_to),
            **extra,
        )

    return validate


def _settle(call: Call) -> SettleRequest:
    reserve_id = call.required("ReserveTransactionId")
    amount = call.amount("TransactionAmount", required=False)
    return settle_request(call.caller_id, reserve_id, amount, call.ipn_url())


def _cancel(call: Call) -> CancelRequest:
    transaction_id = call.required("TransactionId")
    description = call.text("Description", MAX_DESCRIPTION)
    return cancel_request(call.caller_id, transaction_id, description, call.ipn_url())


_PERCENT: Final = re.compile(r"(?P<whole>[0-9]{1,3})(?:\.(?P<fraction>[0-9]{1,2})0*)?")


def _variable_fee(call: Call) -> int:
    """MarketplaceVariableFee, a percentage of the amount with at most two decimals, in
    hundredths of a percent (0 when absent)."""
    text = call.optional("MarketplaceVariableFee")
    if text is None:
        return 0
    match = _PERCENT.fullmatch(text)
    if match is None:
        raise invalid("MarketplaceVariableFee must be a percentage from 0 to 100.")
    fraction = (match["fraction"] or "").ljust(2, "0")
    hundredths = int(match["whole"]) * 100 + int(fraction)
    if hundredths > MAX_VARIABLE_FEE:
        raise invalid("MarketplaceVariableFee must be a percentage from 0 to 100.")
    return hundredths


_Charge = TypeVar("_Charge", FundPrepaidRequest, SettleDebtRequest)


def _charge_validator(
    request_type: type[_Charge], instrument_name: str, amount_name: str
) -> Callable[[Call], _Charge]:
    """FundPrepaid's and SettleDebt's validation: the sender token charged onto an instrument.

    Both requests list their fields in the same order (caller, reference, token, instrument,
    amount, descriptions, IPN URL); the parameters are checked in that order too.
    """

    def validate(call: Call) -> _Charge:
        token = call.required("SenderTokenId")
        instrument = call.required(instrument_name)
        amount = call.amount(amount_name)
        assert amount is not None
        reference = call.reference()
        call.common_pay_options()
        return request_type(
            call.caller_id, reference, token, instrument, amount, *_descriptions(call)
        )

    return validate


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
    policy = call.choice(
        "MarketplaceRefundPolicy",
        ("MasterTxnOnly", "MarketplaceTxnOnly", "MasterAndMarketplaceTxn"),
    )
    if policy == "MarketplaceTxnOnly":
        raise invalid(
            "MarketplaceRefundPolicy=MarketplaceTxnOnly is not supported: use MasterTxnOnly "
            "or MasterAndMarketplaceTxn."
        )
    return RefundRequest(
        caller_id=call.caller_id,
        caller_reference=reference,
        transaction_id=transaction_id,
        amount=amount,
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
        ipn_url=call.ipn_url(),
        refund_marketplace_fee=policy == "MasterAndMarketplaceTxn",
    )


_DESCRIPTOR: Final = names(
    "DescriptorPolicy.SoftDescriptorType",
    "DescriptorPolicy.CSOwner",
    "TransactionTimeoutInMins",
    "OverrideIPNURL",
)
_PAY_OPTIONS: Final = names("SenderDescription", "CallerDescription") | _DESCRIPTOR

_PAY_PARAMETERS: Final = (
    names(
        "SenderTokenId",
        "RecipientTokenId",
        "ChargeFeeTo",
        "CallerReference",
        "MarketplaceVariableFee",
    )
    | _PAY_OPTIONS
    | amount_names("TransactionAmount", "MarketplaceFixedFee")
)
PAY: Final = CommitAction(validate=_pay_validator(PayRequest), parameters=_PAY_PARAMETERS)
RESERVE: Final = CommitAction(validate=_pay_validator(ReserveRequest), parameters=_PAY_PARAMETERS)
SETTLE: Final = CommitAction(
    validate=_settle,
    parameters=names("ReserveTransactionId", "OverrideIPNURL") | amount_names("TransactionAmount"),
)
CANCEL: Final = CommitAction(
    validate=_cancel, parameters=names("TransactionId", "Description", "OverrideIPNURL")
)


def _charge_action(
    request_type: type[_Charge], instrument_name: str, amount_name: str
) -> CommitAction:
    return CommitAction(
        validate=_charge_validator(request_type, instrument_name, amount_name),
        parameters=names("SenderTokenId", instrument_name, "CallerReference")
        | _PAY_OPTIONS
        | amount_names(amount_name),
    )


FUND_PREPAID: Final = _charge_action(FundPrepaidRequest, "PrepaidInstrumentId", "FundingAmount")
SETTLE_DEBT: Final = _charge_action(SettleDebtRequest, "CreditInstrumentId", "SettlementAmount")
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
