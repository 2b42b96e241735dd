"""Why a payments request is refused, and the one table that maps that to FPS error codes.

:class:`Refusal` is the closed set of expected refusals of the Aggregated Payments domain (and
``internal_error``, the answer to an unexpected failure). :data:`FPS_ERRORS` gives, for each,
everything an adapter says about it: the FPS error code, whether FPS called it retriable, a
message a developer understands, the HTTP status, whether it is *transient* (the request never
ran; a retry with the same CallerReference may succeed), and the Co-Branded UI return status
of a pipeline whose confirmation is refused that way, and its :class:`ErrorKind` for the
JSON API (the error ``type`` and HTTP status there). :data:`LEDGER_REFUSALS` translates the
ledger's result codes into refusals. Adapters (the FPS XML API, the hosted pages, the CLI)
never invent codes of their own: the FPS front end's request-level codes (``MissingParameter``
…, before a request reaches the domain) are named once in :mod:`penny.fps.wire`, and a
transaction's own status codes are :class:`penny.domain.model.StatusCode`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from penny.ledger.results import ResultCode


class Refusal(enum.Enum):
    """An expected reason to refuse a request. Values are stable identifiers."""

    invalid_amount = "invalid_amount"
    amount_out_of_range = "amount_out_of_range"
    invalid_currency = "invalid_currency"
    invalid_params = "invalid_params"
    duplicate_request = "duplicate_request"
    unknown_token = "unknown_token"
    token_not_active = "token_not_active"
    wrong_token_type = "wrong_token_type"
    unknown_instrument = "unknown_instrument"
    instrument_access_denied = "instrument_access_denied"
    instrument_not_yet_valid = "instrument_not_yet_valid"
    instrument_expired = "instrument_expired"
    token_instrument_mismatch = "token_instrument_mismatch"
    insufficient_balance = "insufficient_balance"
    exceeds_instrument_limits = "exceeds_instrument_limits"
    amount_below_minimum = "amount_below_minimum"
    amount_above_maximum = "amount_above_maximum"
    funding_limit_exceeded = "funding_limit_exceeded"
    settle_exceeds_debt = "settle_exceeds_debt"
    unknown_transaction = "unknown_transaction"
    not_refundable = "not_refundable"
    refund_exceeds_original = "refund_exceeds_original"
    fully_refunded = "fully_refunded"
    original_not_complete = "original_not_complete"
    original_failed = "original_failed"
    debt_already_settled = "debt_already_settled"
    same_sender_and_recipient = "same_sender_and_recipient"
    payment_method_declined = "payment_method_declined"
    unknown_caller_reference = "unknown_caller_reference"
    invalid_date_range = "invalid_date_range"
    account_closed = "account_closed"
    busy = "busy"
    # GateKeeper (issue #7)
    gatekeeper_denied = "gatekeeper_denied"
    token_usage_exceeded = "token_usage_exceeded"
    incompatible_instructions = "incompatible_instructions"
    bad_rule = "bad_rule"
    usage_on_single_use_token = "usage_on_single_use_token"
    usage_not_defined = "usage_not_defined"
    unknown_recipient_token = "unknown_recipient_token"
    recipient_token_not_active = "recipient_token_not_active"
    token_used_already = "token_used_already"
    invalid_token_type = "invalid_token_type"
    # the marketplace (issue #19)
    not_marketplace_app = "not_marketplace_app"
    marketplace_fee_too_high = "marketplace_fee_too_high"
    recipient_does_not_pay_fees = "recipient_does_not_pay_fees"
    fees_exceed_amount = "fees_exceed_amount"
    # Reserve, Settle and Cancel (issue #19)
    invalid_transaction_state = "invalid_transaction_state"
    settle_exceeds_reserve = "settle_exceeds_reserve"
    # subscriptions (issue #19)
    unknown_subscription = "unknown_subscription"
    #: Not a refusal of the domain: the server failed unexpectedly (a bug, an outage).
    internal_error = "internal_error"


#: HTTP status of a refusal (spec §4.2: FPS answered them with 400).
HTTP_BAD_REQUEST: Final = 400
#: HTTP status of a transient failure: every FPS client retries 500/503 with back-off (§4.2).
HTTP_SERVICE_UNAVAILABLE: Final = 503

# Co-Branded UI return-URL statuses (spec §7.5) a refused confirmation sends; the hosted pages
# hold the full set (penny.web.cobranded.params.Status) and check these against it.
#: System error: nothing was created; the merchant may send the buyer again.
SE: Final = "SE"
#: Caller exception: the request was invalid.
CE: Final = "CE"
#: Not permitted: the caller references were already used for other tokens.
NP: Final = "NP"
#: Not a marketplace: only the recipient may issue these instruments.
NM: Final = "NM"


class ErrorKind(enum.Enum):
    """What kind of refusal an entry is, for the JSON API (``/v1``): the error object's
    ``type`` is the value, the HTTP status :data:`KIND_STATUS` (FPS answers every refusal 400)."""

    #: The request is malformed or names something invalid.
    invalid_request = "invalid_request_error"
    #: Well-formed, but the money is not there or a rule declines it.
    declined = "payment_error"
    #: A token, instrument or transaction the caller cannot see.
    not_found = "not_found_error"
    #: Conflicts with the state of an earlier request (an idempotency key, a refund).
    conflict = "conflict_error"
    #: Understood, but the operation cannot apply to what it names.
    unprocessable = "unprocessable_error"
    #: The store stayed busy: retry the same request later.
    rate_limited = "rate_limit_error"
    #: The server failed (a bug, an outage): retry the same request.
    unavailable = "api_error"


#: HTTP status of each kind in the JSON API.
KIND_STATUS: Final[dict[ErrorKind, int]] = {
    ErrorKind.invalid_request: 400,
    ErrorKind.declined: 402,
    ErrorKind.not_found: 404,
    ErrorKind.conflict: 409,
    ErrorKind.unprocessable: 422,
    ErrorKind.rate_limited: 429,
    ErrorKind.unavailable: 503,
}


@dataclass(frozen=True, slots=True)
class FpsError:
    """Everything the adapters say about one :class:`Refusal`."""

    code: str
    #: Whether FPS's error table called the code retriable (documentation for clients).
    retriable: bool
    message: str
    #: The Co-Branded UI return ``status`` when a pipeline's confirmation is refused this way.
    cbui_status: str
    http_status: int = HTTP_BAD_REQUEST
    #: The request never ran (nothing was remembered): the same request may succeed later.
    transient: bool = False
    #: The JSON API's kind of error (its ``type`` and HTTP status; ``code`` is the refusal).
    kind: ErrorKind = ErrorKind.invalid_request

    @property
    def api_status(self) -> int:
        """The HTTP status the JSON API answers this refusal with."""
        return KIND_STATUS[self.kind]


#: The one table from refusals to FPS errors (codes and retriable flags per the FPS error table,
#: FPS API reference §4.3). Messages are ours; where FPS's own is known it is used.
FPS_ERRORS: Final[dict[Refusal, FpsError]] = {
    Refusal.invalid_amount: FpsError(
        "InvalidParams",
        False,
        "The amount must be a positive number with at most two decimals.",
        SE,
    ),
    Refusal.amount_out_of_range: FpsError(
        "AmountOutOfRange", False, "The amount is outside the range this operation allows.", SE
    ),
    Refusal.invalid_currency: FpsError(
        "InvalidParams", False, "The currency must be USD, the currency of the instrument.", SE
    ),
    Refusal.invalid_params: FpsError(
        "InvalidParams", False, "One or more parameters are invalid.", CE
    ),
    Refusal.duplicate_request: FpsError(
        "DuplicateRequest",
        False,
        "A different request associated with this caller reference already exists.",
        NP,
        kind=ErrorKind.conflict,
    ),
    Refusal.unknown_token: FpsError(
        "InvalidTokenId_Sender",
        False,
        "Sender token is not valid.",
        SE,
        kind=ErrorKind.not_found,
    ),
    Refusal.token_not_active: FpsError(
        "TokenNotActive_Sender",
        False,
        "The sender token has been cancelled.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.wrong_token_type: FpsError(
        "InvalidSenderRoleForAccountType",
        False,
        "This token cannot be used for this operation.",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.unknown_instrument: FpsError(
        "InstrumentAccessDenied",
        False,
        "The instrument does not exist or is not yours.",
        SE,
        kind=ErrorKind.not_found,
    ),
    Refusal.instrument_access_denied: FpsError(
        "InstrumentAccessDenied",
        False,
        "Only the recipient of the instrument may do this; a third-party caller may not.",
        NM,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.instrument_not_yet_valid: FpsError(
        "InactiveInstrument",
        False,
        "The instrument is not valid yet (see its validity start).",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.instrument_expired: FpsError(
        "InstrumentExpired",
        False,
        "The prepaid or postpaid instrument has expired.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.token_instrument_mismatch: FpsError(
        "IncompatibleTokens",
        False,
        "The token does not belong to this instrument.",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.insufficient_balance: FpsError(
        "InsufficientBalance",
        True,
        "The balance is insufficient for this transaction.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.exceeds_instrument_limits: FpsError(
        "InsufficientBalance",
        True,
        "The transaction exceeds the account/instrument limits.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.amount_below_minimum: FpsError(
        "TransactionDenied",
        False,
        "The amount is below the instrument's minimum charge.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.amount_above_maximum: FpsError(
        "TransactionDenied",
        False,
        "The amount is above the instrument's maximum charge.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.funding_limit_exceeded: FpsError(
        "PrepaidFundingLimitExceeded",
        True,
        "Funding would exceed the prepaid instrument's funding limit.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.settle_exceeds_debt: FpsError(
        "SettleAmountGreaterThanDebt",
        False,
        "The amount being settled or written off is greater than the current debt.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.unknown_transaction: FpsError(
        "InvalidTransactionId",
        False,
        "The transaction does not exist or is not yours.",
        SE,
        kind=ErrorKind.not_found,
    ),
    Refusal.not_refundable: FpsError(
        "TransactionTypeNotRefundable",
        False,
        "Only a Pay can be refunded.",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.refund_exceeds_original: FpsError(
        "RefundAmountExceeded",
        False,
        "The refund exceeds what is left to refund.",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.fully_refunded: FpsError(
        "TransactionFullyRefundedAlready",
        False,
        "The transaction is already fully refunded.",
        SE,
        kind=ErrorKind.conflict,
    ),
    Refusal.original_not_complete: FpsError(
        "OriginalTransactionIncomplete",
        True,
        "The original transaction is still in progress.",
        SE,
        kind=ErrorKind.conflict,
    ),
    Refusal.original_failed: FpsError(
        "OriginalTransactionFailed",
        False,
        "The original transaction failed.",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.invalid_transaction_state: FpsError(
        "InvalidTransactionState",
        False,
        "The transaction is not in a state that allows this (only a Reserved transaction can"
        " be settled; only a Reserved or Pending one cancelled).",
        SE,
        kind=ErrorKind.conflict,
    ),
    Refusal.settle_exceeds_reserve: FpsError(
        "SettleAmountGreaterThanReserveAmount",
        False,
        "The amount to settle is greater than the reserved amount.",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.debt_already_settled: FpsError(
        "TransactionTypeNotRefundable",
        False,
        "The debt this Pay created has been settled since; a settled Pay cannot be refunded.",
        SE,
        kind=ErrorKind.conflict,
    ),
    Refusal.same_sender_and_recipient: FpsError(
        "SameSenderAndRecipient",
        False,
        "The sender and the recipient are the same account.",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.payment_method_declined: FpsError(
        "TransactionDenied",
        False,
        "The payment method was declined.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.unknown_caller_reference: FpsError(
        "InvalidCallerReference",
        False,
        "No token is associated with this caller reference.",
        SE,
        kind=ErrorKind.not_found,
    ),
    Refusal.invalid_date_range: FpsError(
        "InvalidDateRange", False, "The end date is before the start date.", SE
    ),
    Refusal.account_closed: FpsError(
        "AccountClosed", True, "The account is not active.", SE, kind=ErrorKind.declined
    ),
    Refusal.busy: FpsError(
        "InternalError",
        True,
        "The service is busy; retry with the same caller reference.",
        SE,
        http_status=HTTP_SERVICE_UNAVAILABLE,
        transient=True,
        kind=ErrorKind.rate_limited,
    ),
    # GateKeeper (docs/decisions.md, issue #7): a failed assertion is TransactionDenied with the
    # script's orSay text; the language's own failures have FPS's codes for them.
    Refusal.gatekeeper_denied: FpsError(
        "TransactionDenied",
        False,
        "The payment instructions of a token do not allow this.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.token_usage_exceeded: FpsError(
        "TokenUsageError",
        False,
        "The token's usage limit would be exceeded.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.incompatible_instructions: FpsError(
        "IncompatibleTokens",
        False,
        "The tokens have incompatible payment instructions.",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.bad_rule: FpsError(
        "BadRule", False, "One of the GateKeeper constructs is not well defined.", SE
    ),
    Refusal.usage_on_single_use_token: FpsError(
        "CannotSpecifyUsageForSingleUseToken",
        False,
        "A single-use token cannot have usage limits.",
        SE,
    ),
    Refusal.usage_not_defined: FpsError(
        "UsageNotDefined", False, "A multi-use or recurring token needs a usage limit.", SE
    ),
    Refusal.unknown_recipient_token: FpsError(
        "InvalidParams",
        False,
        "RecipientTokenId must be a recipient token a merchant gave you in the Recipient "
        "pipeline, or a payment instruction you installed with InstallPaymentInstruction.",
        SE,
    ),
    Refusal.recipient_token_not_active: FpsError(
        "TokenNotActive_Recipient",
        False,
        "The recipient token has been cancelled.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.invalid_token_type: FpsError(
        "InvalidTokenType", False, "A single-use token has no usage to report.", SE
    ),
    Refusal.token_used_already: FpsError(
        "SameTokenIdUsedMultipleTimes",
        False,
        "This single-use token has been used already.",
        SE,
        kind=ErrorKind.declined,
    ),
    Refusal.not_marketplace_app: FpsError(
        "NotMarketplaceApp",
        True,
        "Marketplace fees need a RecipientTokenId naming another merchant: without one the "
        "caller is the recipient.",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.marketplace_fee_too_high: FpsError(
        "IncompatibleTokens",
        False,
        "The marketplace fee is more than the recipient token allows (its maxFixedFee and "
        "maxVariableFee).",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.recipient_does_not_pay_fees: FpsError(
        "IncompatibleTokens",
        False,
        "The recipient token does not let the recipient pay the fees (recipientPaysFee=False): "
        "use ChargeFeeTo=Caller.",
        SE,
        kind=ErrorKind.unprocessable,
    ),
    Refusal.fees_exceed_amount: FpsError(
        "InvalidParams",
        False,
        "Transaction amount must be greater than Recipient Fee liability.",
        SE,
    ),
    Refusal.unknown_subscription: FpsError(
        "InvalidParams",
        False,
        "SubscriptionId must be the token id of a Recurring token a buyer gave you.",
        SE,
        kind=ErrorKind.not_found,
    ),
    Refusal.internal_error: FpsError(
        "InternalError",
        True,
        "The server could not serve the request; retry it with the same CallerReference.",
        SE,
        http_status=HTTP_SERVICE_UNAVAILABLE,
        transient=True,
        kind=ErrorKind.unavailable,
    ),
}

#: The ledger's refusals as the domain reports them. Codes missing here are bugs of the domain
#: (it built a journal the ledger calls malformed) and are raised, not reported.
LEDGER_REFUSALS: Final[dict[ResultCode, Refusal]] = {
    ResultCode.insufficient_balance: Refusal.insufficient_balance,
    ResultCode.exceeds_limit: Refusal.exceeds_instrument_limits,
    ResultCode.exceeds_debits: Refusal.settle_exceeds_debt,
    ResultCode.account_closed: Refusal.account_closed,
    ResultCode.amount_out_of_range: Refusal.amount_out_of_range,
    ResultCode.counter_overflow: Refusal.amount_out_of_range,
    ResultCode.storage_unavailable: Refusal.busy,
}


class PaymentsError(Exception):
    """A refused request, carrying its :class:`Refusal` and a specific message."""

    def __init__(self, refusal: Refusal, detail: str | None = None) -> None:
        self.refusal = refusal
        self.fps = FPS_ERRORS[refusal]
        self.detail = detail or self.fps.message
        super().__init__(f"{self.fps.code}: {self.detail}")
