"""The FPS actions: parameters in (validated), a call into :class:`Payments`, XML out.

:func:`run_action` takes a request that has already been parsed, authenticated and given a
known ``Version``/``Action`` (see :mod:`penny.fps.wire`) and returns the content of the
``<{Action}Result>`` element in schema order (spec ``fps-api.md`` §4.4, §5), ``None`` for
CancelToken (which has no Result), or a :class:`~penny.fps.wire.WireFault`.

Decisions (see also ``docs/fps-wire.md``):

* Parameter names are checked against each action's schema (plus the common parameters of
  §2.1): an unknown name is ``InvalidRequest`` with the wording real FPS used (§4.3 note).
* A required parameter absent or empty is ``MissingParameter``. An amount ``X`` is
  ``X.Value`` plus ``X.CurrencyCode`` (``USD`` when absent); a malformed value or another
  currency is ``InvalidParams`` naming the parameter.
* Marketplace features (``RecipientTokenId``, marketplace fees, ``ChargeFeeTo=Caller``) are
  refused with ``InvalidParams``; the descriptor policy and the transaction timeout are
  validated and then ignored (Penny has no card statements and no timeouts).
* Actions of the 2010-08-28 WSDL that Penny does not serve yet answer ``InvalidAction`` with a
  message saying so (HTTP 400): it is the standard AWS code for an action a service does not
  offer, and every client handles it as a non-retriable error.
* Domain refusals come from :data:`penny.domain.errors.FPS_ERRORS` through
  :func:`~penny.fps.wire.refusal_error`; another merchant's ids are refused exactly like
  unknown ones (the Payments service checks ownership).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import Method
from penny.domain.model import Operation, Status, Token, TokenStatus, Transaction
from penny.fps.signature import parse_timestamp
from penny.fps.wire import (
    INVALID_ACTION,
    INVALID_REQUEST,
    WireFault,
    Xml,
    amount_element,
    element,
    fps_datetime,
    leaf,
    missing_parameter,
    namespace_for,
    refusal_error,
)
from penny.gatekeeper import UsageKind
from penny.money import Money, MoneyError, parse_amount
from penny.parties import Directory
from penny.services import gatekeeper as gk
from penny.services.payments import (
    FundPrepaidRequest,
    Payments,
    PayRequest,
    RefundRequest,
    SettleDebtRequest,
    WriteOffDebtRequest,
)

if TYPE_CHECKING:
    from penny.signing import Signer

#: Parameters every request may carry (spec §2.1).
COMMON_PARAMETERS: Final = frozenset(
    {
        "Action",
        "Version",
        "AWSAccessKeyId",
        "Signature",
        "SignatureVersion",
        "SignatureMethod",
        "Timestamp",
        "Expires",
    }
)

INVALID_PARAMS: Final = "InvalidParams"
CURRENCY: Final = "USD"
MAX_CALLER_REFERENCE: Final = 128
MAX_DESCRIPTION: Final = 160
#: Longest ``OverrideIPNURL`` (the column that keeps it; PostgreSQL refused longer ones).
MAX_IPN_URL: Final = 2048

#: The actions of the 2010-08-28 WSDL Penny does not serve yet.
NOT_SUPPORTED: Final = frozenset(
    {
        "Reserve",
        "Settle",
        "Cancel",
        "CancelSubscriptionAndRefund",
        "GetSubscriptionDetails",
        "GetTransactionsForSubscription",
        "GetRecipientVerificationStatus",
    }
)


class ParameterError(Exception):
    """A request refused while reading its parameters (raised inside handlers only)."""

    def __init__(self, fault: WireFault) -> None:
        super().__init__(fault.message)
        self.fault = fault


def _invalid(message: str) -> ParameterError:
    return ParameterError(WireFault(INVALID_PARAMS, message))


@dataclass
class Call:
    """One request being served: who calls, with what, and the services to call."""

    payments: Payments
    directory: Directory
    caller_id: str
    version: str
    params: Mapping[str, str]
    #: Penny's outbound signing keys (VerifySignature); None where nothing was signed.
    signer: Signer | None = None
    _names: dict[str, str] = field(default_factory=dict)

    # -- reading parameters ---------------------------------------------------------------

    def required(self, name: str) -> str:
        value = self.params.get(name, "")
        if not value:
            raise ParameterError(missing_parameter(name))
        return value

    def optional(self, name: str) -> str | None:
        value = self.params.get(name, "")
        return value or None

    def text(self, name: str, limit: int, *, required: bool = False) -> str:
        value = self.required(name) if required else (self.optional(name) or "")
        if len(value) > limit:
            raise _invalid(f"{name} is longer than {limit} characters.")
        return value

    def reference(self) -> str:
        return self.text("CallerReference", MAX_CALLER_REFERENCE, required=True)

    def amount(self, name: str, *, required: bool = True) -> Money | None:
        value = self.params.get(f"{name}.Value", "")
        currency = self.params.get(f"{name}.CurrencyCode", "") or CURRENCY
        if not value:
            if required:
                raise ParameterError(missing_parameter(f"{name}.Value"))
            return None
        if currency != CURRENCY:
            raise _invalid(f"{name}.CurrencyCode must be {CURRENCY}, not {currency!r}.")
        try:
            return parse_amount(value, currency)
        except MoneyError as error:
            raise _invalid(f"{name}.Value is invalid: {error}.") from None

    def choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        value = self.optional(name)
        if value is not None and value not in allowed:
            raise _invalid(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")
        return value

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self.optional(name)
        if value is None:
            return None
        if not re.fullmatch(r"[0-9]{1,9}", value) or not low <= int(value) <= high:
            raise _invalid(f"{name} must be a whole number from {low} to {high}.")
        return int(value)

    def date(self, name: str, *, required: bool = False) -> int | None:
        value = self.required(name) if required else self.optional(name)
        if value is None:
            return None
        text = value + "T00:00:00Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else value
        moment = parse_timestamp(text)
        if moment is None:
            raise _invalid(f"{name} ({value}) is not an ISO 8601 date or dateTime.")
        return moment

    def ipn_url(self) -> str | None:
        return self.text("OverrideIPNURL", MAX_IPN_URL) or None

    def common_pay_options(self) -> None:
        """Validate (and ignore) the descriptor policy and the transaction timeout."""
        self.choice("DescriptorPolicy.SoftDescriptorType", ("Dynamic", "Static"))
        self.choice("DescriptorPolicy.CSOwner", ("Caller", "Recipient"))
        self.integer("TransactionTimeoutInMins", 1, 1_000_000)

    # -- rendering helpers ----------------------------------------------------------------

    def name_of(self, party_id: str) -> str:
        if party_id not in self._names:
            party = self.directory.party(party_id)
            self._names[party_id] = party.name if party is not None else ""
        return self._names[party_id]


Handler = Callable[[Call], Xml | None]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    handler: Handler
    parameters: frozenset[str]
    #: Names matching this pattern are accepted too (``Role.1``, ``Role.2``, …).
    pattern: re.Pattern[str] | None = None


def _amount_names(*names: str) -> set[str]:
    return {f"{name}.{part}" for name in names for part in ("Value", "CurrencyCode")}


_DESCRIPTOR = {
    "DescriptorPolicy.SoftDescriptorType",
    "DescriptorPolicy.CSOwner",
    "TransactionTimeoutInMins",
    "OverrideIPNURL",
}


# -- money-moving actions ------------------------------------------------------------------


def _execute(
    call: Call,
    request: PayRequest
    | FundPrepaidRequest
    | SettleDebtRequest
    | WriteOffDebtRequest
    | RefundRequest,
) -> Xml:
    """Run a money-moving request: ``TransactionId`` then ``TransactionStatus`` (§5)."""
    return transaction_result(call.payments.execute(request))


def transaction_result(txn: Transaction) -> Xml:
    """The Result content of every money-moving action (§5), for ``txn`` decided."""
    return Xml(leaf("TransactionId", txn.id) + leaf("TransactionStatus", txn.status.value))


def decided_result(outcome: Transaction | PaymentsError) -> Xml | WireFault:
    """What :func:`run_action` answers a money-moving request whose ``execute`` returned or
    raised ``outcome`` (the group commit's second half, penny.web.app)."""
    if isinstance(outcome, PaymentsError):
        return refusal_error(outcome.refusal, outcome.detail)
    return transaction_result(outcome)


def _pay(call: Call) -> Xml | None:
    sender_token = call.required("SenderTokenId")
    amount = call.amount("TransactionAmount")
    assert amount is not None
    reference = call.reference()
    # RecipientTokenId: only a payment instruction the caller installed (the Payments service
    # refuses any other id with InvalidParams; docs/decisions.md #7).
    recipient_token = call.optional("RecipientTokenId")
    if call.choice("ChargeFeeTo", ("Caller", "Recipient")) == "Caller":
        raise _invalid("ChargeFeeTo=Caller is not supported: the recipient pays the fees.")
    if call.optional("MarketplaceFixedFee.Value") or call.optional("MarketplaceVariableFee"):
        raise _invalid("Marketplace fees are not supported.")
    call.common_pay_options()
    request = PayRequest(
        caller_id=call.caller_id,
        caller_reference=reference,
        sender_token_id=sender_token,
        amount=amount,
        sender_description=call.text("SenderDescription", MAX_DESCRIPTION),
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
        ipn_url=call.ipn_url(),
        recipient_token_id=recipient_token,
    )
    return _execute(call, request)


def _fund_prepaid(call: Call) -> Xml | None:
    token = call.required("SenderTokenId")
    instrument = call.required("PrepaidInstrumentId")
    amount = call.amount("FundingAmount")
    assert amount is not None
    reference = call.reference()
    call.common_pay_options()
    request = FundPrepaidRequest(
        caller_id=call.caller_id,
        caller_reference=reference,
        funding_token_id=token,
        instrument_id=instrument,
        amount=amount,
        sender_description=call.text("SenderDescription", MAX_DESCRIPTION),
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
        ipn_url=call.ipn_url(),
    )
    return _execute(call, request)


def _settle_debt(call: Call) -> Xml | None:
    token = call.required("SenderTokenId")
    instrument = call.required("CreditInstrumentId")
    amount = call.amount("SettlementAmount")
    assert amount is not None
    reference = call.reference()
    call.common_pay_options()
    request = SettleDebtRequest(
        caller_id=call.caller_id,
        caller_reference=reference,
        settlement_token_id=token,
        instrument_id=instrument,
        amount=amount,
        sender_description=call.text("SenderDescription", MAX_DESCRIPTION),
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
        ipn_url=call.ipn_url(),
    )
    return _execute(call, request)


def _write_off_debt(call: Call) -> Xml | None:
    instrument = call.required("CreditInstrumentId")
    amount = call.amount("AdjustmentAmount")
    assert amount is not None
    request = WriteOffDebtRequest(
        caller_id=call.caller_id,
        caller_reference=call.reference(),
        instrument_id=instrument,
        amount=amount,
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
    )
    return _execute(call, request)


def _refund(call: Call) -> Xml | None:
    transaction_id = call.required("TransactionId")
    amount = call.amount("RefundAmount", required=False)
    reference = call.reference()
    call.choice(
        "MarketplaceRefundPolicy",
        ("MasterTxnOnly", "MarketplaceTxnOnly", "MasterAndMarketplaceTxn"),
    )
    request = RefundRequest(
        caller_id=call.caller_id,
        caller_reference=reference,
        transaction_id=transaction_id,
        amount=amount,
        caller_description=call.text("CallerDescription", MAX_DESCRIPTION),
        ipn_url=call.ipn_url(),
    )
    return _execute(call, request)


# -- tokens --------------------------------------------------------------------------------


def _token_element(view: gk.TokenView) -> Xml:
    return element(
        "Token",
        leaf("TokenId", view.id),
        leaf("FriendlyName", view.friendly_name),
        leaf("TokenStatus", view.status.value),
        leaf("DateInstalled", fps_datetime(view.created_at)),
        leaf("CallerReference", view.caller_reference),
        leaf("TokenType", view.token_type),
        leaf("PaymentReason", view.payment_reason) if view.payment_reason else None,
    )


def _token(token: Token) -> Xml:
    return _token_element(gk.view_of_token(token, token.script or ""))


def _cancel_token(call: Call) -> Xml | None:
    token_id = call.required("TokenId")
    call.optional("ReasonText")
    ipn_url = call.ipn_url()
    try:
        call.payments.cancel_token(call.caller_id, token_id, ipn_url)
    except PaymentsError as error:
        if error.refusal is not Refusal.unknown_token:
            raise
        gk.cancel_instruction(call.payments, call.caller_id, token_id, ipn_url)  # or unknown
    return None


def _get_token_by_caller(call: Call) -> Xml | None:
    token_id = call.optional("TokenId")
    reference = call.optional("CallerReference")
    if (token_id is None) == (reference is None):
        raise _invalid("Give exactly one of TokenId and CallerReference.")
    try:
        token = call.payments.token_by_caller(
            call.caller_id, token_id=token_id, caller_reference=reference
        )
    except PaymentsError as error:
        installed = gk.instruction_by_caller(
            call.payments, call.caller_id, token_id=token_id, caller_reference=reference
        )
        if installed is None:
            raise error from None
        return _token_element(gk.view_of_instruction(installed))
    return _token(token)


def _get_tokens(call: Call) -> Xml | None:
    status = call.choice("TokenStatus", ("Active", "Inactive"))
    kind = call.choice("TokenType", gk.TOKEN_TYPES)
    token_status = None if status is None else TokenStatus(status)
    reference = call.optional("CallerReference")
    friendly = call.optional("TokenFriendlyName")
    tokens = call.payments.tokens(
        call.caller_id, status=token_status, caller_reference=reference, friendly_name=friendly
    )
    installed = gk.instructions(
        call.payments,
        call.caller_id,
        status=token_status,
        caller_reference=reference,
        friendly_name=friendly,
    )
    views = [gk.view_of_token(t, "") for t in tokens]
    views += [gk.view_of_instruction(i) for i in installed]
    views.sort(key=lambda view: (view.created_at, view.id))
    chosen = [view for view in views if kind is None or view.token_type == kind]
    return Xml("".join(_token_element(view) for view in chosen))


# -- GateKeeper payment instructions -------------------------------------------------------

#: Longest PaymentReason of an installed token (2007 InstallPaymentInstruction page).
MAX_PAYMENT_REASON: Final = 64
MAX_FRIENDLY_NAME: Final = 128


def _install_payment_instruction(call: Call) -> Xml | None:
    script = call.required("PaymentInstruction")
    reference = call.reference()
    token_type = call.choice("TokenType", gk.TOKEN_TYPES)
    if token_type is None:
        raise ParameterError(missing_parameter("TokenType"))
    installed = gk.install(
        call.payments,
        gk.InstallRequest(
            caller_id=call.caller_id,
            caller_reference=reference,
            script=script,
            token_type=token_type,
            friendly_name=call.text("TokenFriendlyName", MAX_FRIENDLY_NAME),
            payment_reason=call.text("PaymentReason", MAX_PAYMENT_REASON),
        ),
    )
    return leaf("TokenId", installed.id)


def _get_payment_instruction(call: Call) -> Xml | None:
    view = gk.instruction_view(call.payments, call.caller_id, call.required("TokenId"))
    return Xml(
        _token_element(view)
        + leaf("PaymentInstruction", view.script)
        + leaf("CallerReference", view.caller_reference)
        + (_optional_leaf("TokenFriendlyName", view.friendly_name) or "")
    )


def _installed_token_usage(limits: list[gk.LimitUsage]) -> Xml:
    """One TokenUsageLimits per usage limit of an installed token (Count or Amount first)."""
    blocks = []
    for limit in limits:
        since = leaf("LastResetTimestamp", fps_datetime(limit.window_start))
        if limit.kind is UsageKind.COUNT:
            body = (leaf("Count", str(limit.count)), leaf("LastResetCount", str(limit.last_count)))
        else:
            body = (
                amount_element("Amount", limit.amount),
                amount_element("LastResetAmount", limit.last_amount),
            )
        blocks.append(element("TokenUsageLimits", *body, since))
    return Xml("".join(blocks))


def _get_token_usage(call: Call) -> Xml | None:
    token_id = call.required("TokenId")
    installed = gk.token_usage(call.payments, call.caller_id, token_id)
    if installed is not None:
        return _installed_token_usage(installed)
    usage = call.payments.token_usage(call.caller_id, token_id)
    zero = Money.zero(usage.amount.currency)
    since = leaf("LastResetTimestamp", fps_datetime(usage.since))
    by_amount = element(
        "TokenUsageLimits",
        amount_element("Amount", usage.amount),
        amount_element("LastResetAmount", zero),
        since,
    )
    by_count = element(
        "TokenUsageLimits",
        leaf("Count", str(usage.count)),
        leaf("LastResetCount", "0"),
        since,
    )
    return Xml(by_count + by_amount)


# -- balances ------------------------------------------------------------------------------


def _get_prepaid_balance(call: Call) -> Xml | None:
    balance = call.payments.prepaid_balance(call.caller_id, call.required("PrepaidInstrumentId"))
    return element(
        "PrepaidBalance",
        amount_element("AvailableBalance", balance.main),
        amount_element("PendingInBalance", balance.pending),
    )


def _get_total_prepaid_liability(call: Call) -> Xml | None:
    balance = call.payments.total_prepaid_liability(call.caller_id)
    return element(
        "OutstandingPrepaidLiability",
        amount_element("OutstandingBalance", balance.main),
        amount_element("PendingInBalance", balance.pending),
    )


def _get_debt_balance(call: Call) -> Xml | None:
    balance = call.payments.debt_balance(call.caller_id, call.required("CreditInstrumentId"))
    return element(
        "DebtBalance",
        amount_element("AvailableBalance", balance.main),
        amount_element("PendingOutBalance", balance.pending),
    )


def _get_outstanding_debt_balance(call: Call) -> Xml | None:
    balance = call.payments.outstanding_debt(call.caller_id)
    return element(
        "OutstandingDebt",
        amount_element("OutstandingBalance", balance.main),
        amount_element("PendingOutBalance", balance.pending),
    )


def _get_account_balance(call: Call) -> Xml | None:
    balance = call.payments.account_balance(call.caller_id)
    return element(
        "AccountBalance",
        amount_element("TotalBalance", balance.total),
        amount_element("PendingInBalance", balance.pending_in),
        amount_element("PendingOutBalance", balance.pending_out),
        element(
            "AvailableBalances",
            amount_element("DisburseBalance", balance.disburse),
            amount_element("RefundBalance", balance.refund),
        ),
    )


# -- transactions --------------------------------------------------------------------------


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
    if txn.completed_at is None or txn.completed_at > txn.received_at:
        entries.append(
            element(
                "StatusHistory",
                leaf("Date", fps_datetime(txn.received_at)),
                leaf("TransactionStatus", Status.pending.value),
                leaf("StatusCode", "PendingNetworkResponse"),
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
    if txn.operation is Operation.pay:
        related.extend(
            element(
                "RelatedTransaction",
                leaf("TransactionId", refund.id),
                leaf("RelationType", "Refund"),
            )
            for refund in call.payments.refunds(call.caller_id, txn.id)
        )
    return Xml("".join(related))


def _optional_leaf(name: str, value: str | None) -> Xml | None:
    return leaf(name, value) if value else None


def _get_transaction(call: Call) -> Xml | None:
    txn = call.payments.transaction(call.caller_id, call.required("TransactionId"))
    completed = txn.completed_at
    return element(
        "Transaction",
        leaf("TransactionId", txn.id),
        leaf("CallerReference", txn.caller_reference),
        _optional_leaf("CallerDescription", txn.caller_description),
        _optional_leaf("SenderDescription", txn.sender_description),
        leaf("DateReceived", fps_datetime(txn.received_at)),
        None if completed is None else leaf("DateCompleted", fps_datetime(completed)),
        amount_element("TransactionAmount", _money(txn, txn.amount)),
        amount_element("FPSFees", _money(txn, txn.fees)),
        leaf("FPSFeesPaidBy", "Recipient"),
        _optional_leaf("SenderTokenId", txn.sender_token_id),
        _instrument_element(txn),
        leaf("FPSOperation", txn.operation.value),
        leaf("PaymentMethod", txn.method.value),
        leaf("TransactionStatus", txn.status.value),
        _optional_leaf("StatusCode", txn.status_code),
        _optional_leaf("StatusMessage", txn.status_message),
        _optional_leaf("SenderName", call.name_of(txn.sender_id)),
        leaf("CallerName", call.name_of(txn.caller_id)),
        _optional_leaf("RecipientName", call.name_of(txn.recipient_id)),
        _related(call, txn),
        _status_history(txn),
    )


def _get_transaction_status(call: Call) -> Xml | None:
    txn = call.payments.transaction(call.caller_id, call.required("TransactionId"))
    return Xml(
        leaf("TransactionId", txn.id)
        + leaf("TransactionStatus", txn.status.value)
        + leaf("CallerReference", txn.caller_reference)
        + (_optional_leaf("StatusCode", txn.status_code) or "")
        + (_optional_leaf("StatusMessage", txn.status_message) or "")
    )


_ROLES: Final = ("Sender", "Caller", "Recipient")
_ROLE_NAME: Final = re.compile(r"Role\.[1-9][0-9]?")


def _activity_transaction(call: Call, txn: Transaction) -> Xml:
    completed = txn.completed_at
    fees = _money(txn, txn.fees)
    parts = Xml(
        element(
            "TransactionPart",
            _optional_leaf("InstrumentId", txn.instrument_id),
            leaf("Role", "Sender"),
            _optional_leaf("Name", call.name_of(txn.sender_id)),
            _optional_leaf("Description", txn.sender_description),
        )
        + element(
            "TransactionPart",
            leaf("Role", "Recipient"),
            _optional_leaf("Name", call.name_of(txn.recipient_id)),
            _optional_leaf("Reference", txn.caller_reference),
            _optional_leaf("Description", txn.caller_description),
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
        _optional_leaf("StatusMessage", txn.status_message),
        _optional_leaf("StatusCode", txn.status_code),
        _optional_leaf("OriginalTransactionId", txn.parent_id),
        parts,
        leaf("PaymentMethod", txn.method.value),
        _optional_leaf("SenderName", call.name_of(txn.sender_id)),
        leaf("CallerName", call.name_of(txn.caller_id)),
        _optional_leaf("RecipientName", call.name_of(txn.recipient_id)),
        amount_element("FPSFees", fees),
        # Penny does not keep a per-transaction prepaid balance; see docs/fps-wire.md.
        amount_element("Balance", Money.zero(txn.currency)),
        _optional_leaf("SenderTokenId", txn.sender_token_id),
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


# -- signatures ----------------------------------------------------------------------------


def _verify_signature(call: Call) -> Xml | None:
    """Success exactly when ``HttpParameters`` is a message Penny signed for ``UrlEndPoint``
    (docs/cobranded-ui.md, docs/ipn.md; spec §3.2)."""
    endpoint = call.required("UrlEndPoint")
    pairs = parse_qsl(call.required("HttpParameters"), keep_blank_values=True)
    if not any(name == "certificateUrl" for name, _ in pairs):
        raise _invalid("certificateUrl is missing in 'HttpParameters'.")
    verified = call.signer is not None and call.signer.verify(endpoint, pairs)
    return leaf("VerificationStatus", "Success" if verified else "Failure")


# -- the table -----------------------------------------------------------------------------


def _spec(handler: Handler, *names: str, extra: set[str] | None = None) -> ActionSpec:
    return ActionSpec(handler, frozenset(names) | frozenset(extra or set()))


_PAY_OPTIONS = {"SenderDescription", "CallerDescription", *_DESCRIPTOR}

ACTIONS: Final[Mapping[str, ActionSpec]] = {
    "Pay": _spec(
        _pay,
        "SenderTokenId",
        "RecipientTokenId",
        "ChargeFeeTo",
        "CallerReference",
        "MarketplaceVariableFee",
        extra=_PAY_OPTIONS | _amount_names("TransactionAmount", "MarketplaceFixedFee"),
    ),
    "FundPrepaid": _spec(
        _fund_prepaid,
        "SenderTokenId",
        "PrepaidInstrumentId",
        "CallerReference",
        extra=_PAY_OPTIONS | _amount_names("FundingAmount"),
    ),
    "SettleDebt": _spec(
        _settle_debt,
        "SenderTokenId",
        "CreditInstrumentId",
        "CallerReference",
        extra=_PAY_OPTIONS | _amount_names("SettlementAmount"),
    ),
    "WriteOffDebt": _spec(
        _write_off_debt,
        "CreditInstrumentId",
        "CallerReference",
        "CallerDescription",
        extra=_amount_names("AdjustmentAmount"),
    ),
    "Refund": _spec(
        _refund,
        "TransactionId",
        "CallerReference",
        "CallerDescription",
        "MarketplaceRefundPolicy",
        "OverrideIPNURL",
        extra=_amount_names("RefundAmount"),
    ),
    "CancelToken": _spec(_cancel_token, "TokenId", "ReasonText", "OverrideIPNURL"),
    "GetPrepaidBalance": _spec(_get_prepaid_balance, "PrepaidInstrumentId"),
    "GetTotalPrepaidLiability": _spec(_get_total_prepaid_liability),
    "GetDebtBalance": _spec(_get_debt_balance, "CreditInstrumentId"),
    "GetOutstandingDebtBalance": _spec(_get_outstanding_debt_balance),
    "GetAccountBalance": _spec(_get_account_balance),
    "GetTransaction": _spec(_get_transaction, "TransactionId"),
    "GetTransactionStatus": _spec(_get_transaction_status, "TransactionId"),
    "GetTokenByCaller": _spec(_get_token_by_caller, "TokenId", "CallerReference"),
    "GetTokens": _spec(
        _get_tokens, "TokenStatus", "TokenType", "CallerReference", "TokenFriendlyName"
    ),
    "GetTokenUsage": _spec(_get_token_usage, "TokenId"),
    "VerifySignature": _spec(_verify_signature, "UrlEndPoint", "HttpParameters"),
    "InstallPaymentInstruction": _spec(
        _install_payment_instruction,
        "PaymentInstruction",
        "TokenFriendlyName",
        "CallerReference",
        "TokenType",
        "PaymentReason",
    ),
    "GetPaymentInstruction": _spec(_get_payment_instruction, "TokenId"),
    "GetAccountActivity": ActionSpec(
        _get_account_activity,
        frozenset(
            {
                "MaxBatchSize",
                "StartDate",
                "EndDate",
                "SortOrderByDate",
                "FPSOperation",
                "PaymentMethod",
                "Role",
                "TransactionStatus",
            }
        ),
        _ROLE_NAME,
    ),
}


def _unknown_parameter(
    spec: ActionSpec, params: Mapping[str, str], version: str
) -> ParameterError | None:
    for name in sorted(params):
        if name in COMMON_PARAMETERS or name in spec.parameters:
            continue
        if spec.pattern is not None and spec.pattern.fullmatch(name):
            continue
        return ParameterError(
            WireFault(
                INVALID_REQUEST,
                "The request doesn't conform to the interface specification in the WSDL. "
                f'Element/Parameter "{namespace_for(version)}:{name}" in request is either '
                "invalid or is found at unexpected location",
            )
        )
    return None


def run_action(
    payments: Payments,
    directory: Directory,
    caller_id: str,
    action: str,
    version: str,
    params: Mapping[str, str],
    signer: Signer | None = None,
) -> Xml | WireFault | None:
    """Serve one authenticated request of a known ``action``: its Result content or a fault.

    ``None`` is a success without a Result element (CancelToken).
    """
    spec = ACTIONS.get(action)
    if spec is None:
        served = ", ".join(sorted(ACTIONS))
        return WireFault(
            INVALID_ACTION,
            f"The action {action} is not supported by this server yet. Supported actions: "
            f"{served}.",
        )
    unknown = _unknown_parameter(spec, params, version)
    if unknown is not None:
        return unknown.fault
    call = Call(payments, directory, caller_id, version, params, signer)
    try:
        return spec.handler(call)
    except ParameterError as fault:
        return fault.fault
    except PaymentsError as error:
        return refusal_error(error.refusal, error.detail)
