"""The start request of a Co-Branded UI pipeline and the return-URL status codes (spec §7).

:func:`parse_start` checks every parameter of a ``SetupPrepaid``, ``SetupPostpaid``,
``SingleUse``, ``MultiUse`` or ``Recurring`` start request (spec §7.1–§7.4) and answers a
:class:`PipelineRequest` or a :class:`StartError` that names the status to send back (``CE``,
``NM``) and the inputs at fault. :data:`STATUS` is the table of every status Penny sends
(spec §7.5) and :func:`success_status` picks SA/SB/SC by the payment method the buyer chose.
Pure: no SQL, no HTTP, "now" is handed in.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from penny.domain.model import AmountType, TokenKind, UsageLimitTerm, UsageLimitType
from penny.domain.parties import PaymentMethodKind
from penny.fps.outbound import SIGNATURE_PARAMETERS, Endpoint, OutboundError
from penny.gatekeeper import parse_duration
from penny.money import Money, MoneyError, parse_amount
from penny.web.cobranded import stored

MICROS: Final = 1_000_000
PIPELINE_VERSION: Final = "2009-01-09"
MAX_REFERENCE_BYTES: Final = 128
MAX_REASON_CHARS: Final = 256
MAX_TEXT_CHARS: Final = 256
MAX_URL_CHARS: Final = 2048
#: How far in the past a validityStart may be (the buyer took a while to get here).
START_SLACK_S: Final = 15 * 60
#: How far ahead a validityStart may be (spec §7.2: within one year from now).
START_HORIZON_S: Final = 366 * 86_400
#: Latest accepted validityExpiry: 9999-12-31, far beyond any sensible token.
MAX_EPOCH_S: Final = 253_402_300_799


class Pipeline(enum.StrEnum):
    prepaid = "SetupPrepaid"
    postpaid = "SetupPostpaid"
    #: FPS's sender token pipelines (issue #19): one token on the buyer's payment method.
    single_use = "SingleUse"
    multi_use = "MultiUse"
    recurring = "Recurring"

    @property
    def issues_token(self) -> bool:
        """A SingleUse, MultiUse or Recurring pipeline (one token, ``callerReference``)."""
        return self in TOKEN_PIPELINES


#: The sender token pipelines and the kind of token each issues.
TOKEN_PIPELINES: Final[Mapping[Pipeline, TokenKind]] = {
    Pipeline.single_use: TokenKind.single_use,
    Pipeline.multi_use: TokenKind.multi_use,
    Pipeline.recurring: TokenKind.recurring,
}


class Status(enum.StrEnum):
    """Return-URL ``status`` values Penny sends (spec §7.5)."""

    success_balance = "SA"
    success_bank = "SB"
    success_card = "SC"
    #: The Recipient pipeline: the recipient token was issued (#19).
    success_recipient = "SR"
    #: EditToken (#19): the buyer confirmed the token as it was; nothing changed.
    unchanged = "SU"
    system_error = "SE"
    aborted = "A"
    caller_exception = "CE"
    payment_method_mismatch = "PE"
    not_permitted = "NP"
    not_marketplace = "NM"


#: What each status tells the merchant (docs/cobranded-ui.md has the same table).
STATUS: Final[Mapping[Status, str]] = {
    Status.success_balance: "success: the buyer pays with their Penny balance (ABT)",
    Status.success_bank: "success: the buyer pays with a bank account (ACH)",
    Status.success_card: "success: the buyer pays with a credit card (CC)",
    Status.success_recipient: "success: the merchant accepted your terms (Recipient pipeline)",
    Status.unchanged: "EditToken: the buyer kept the token as it was (tokenID is the old one)",
    Status.system_error: "system error: nothing was created; send the buyer again",
    Status.aborted: "the buyer cancelled; nothing was created",
    Status.caller_exception: "the request was invalid; errorMessage names the inputs",
    Status.payment_method_mismatch: "the buyer has none of the payment methods you allow",
    Status.not_permitted: "the caller references were already used for other tokens",
    Status.not_marketplace: "only the recipient may issue these instruments (no marketplace)",
}

#: FPS ``paymentMethod`` codes and the kind of payment method each allows.
METHOD_CODES: Final[Mapping[str, PaymentMethodKind]] = {
    "CC": PaymentMethodKind.card,
    "ACH": PaymentMethodKind.bank,
    "ABT": PaymentMethodKind.balance,
}

_SUCCESS: Final[Mapping[PaymentMethodKind, Status]] = {
    PaymentMethodKind.balance: Status.success_balance,
    PaymentMethodKind.bank: Status.success_bank,
    PaymentMethodKind.card: Status.success_card,
}


def success_status(kind: PaymentMethodKind) -> Status:
    """SA, SB or SC: the success status for the kind of method the buyer chose."""
    return _SUCCESS[kind]


_COMMON: Final = frozenset(
    {
        "callerKey",
        "pipelineName",
        "returnURL",
        "version",
        "signature",
        "signatureMethod",
        "signatureVersion",
        "cobrandingStyle",
        "cobrandingUrl",
        "websiteDescription",
        "currencyCode",
        "paymentMethod",
        "paymentReason",
        "validityStart",
        "validityExpiry",
        "collectShippingAddress",
        "addressName",
        "addressLine1",
        "addressLine2",
        "city",
        "state",
        "zip",
        "country",
        "phoneNumber",
        # A marketplace caller acting for another recipient names it so (refused with NM).
        "recipientToken",
        # boto 2's cbui_url adds a capitalised CallerReference of its own (a uuid): ignored.
        "CallerReference",
    }
)
_ADDRESS: Final = ("addressName", "addressLine1", "addressLine2", "city", "state", "zip")
_ADDRESS_MORE: Final = ("country", "phoneNumber")
_PREPAID: Final = frozenset({"callerReferenceSender", "callerReferenceFunding", "fundingAmount"})
_POSTPAID: Final = frozenset(
    {
        "callerReferenceSender",
        "callerReferenceSettlement",
        "creditLimit",
        "globalAmountLimit",
        "minChargeAmount",
        "maxChargeAmount",
    }
)
_LIMITS: Final = frozenset(
    f"usageLimit{what}{n}" for what in ("Type", "Value", "Period") for n in (1, 2)
)
#: SingleUse's display-only amounts (spec §7.4): checked as amounts, not kept.
_DISPLAY: Final = ("discount", "giftWrapping", "handling", "itemTotal", "shipping", "tax")
_TOKEN_PARAMETERS: Final[Mapping[Pipeline, frozenset[str]]] = {
    Pipeline.single_use: frozenset(
        {"callerReference", "transactionAmount", "reserve", "collectEmailAddress", *_DISPLAY}
    ),
    Pipeline.multi_use: frozenset(
        {
            "callerReference",
            "globalAmountLimit",
            "amountType",
            "transactionAmount",
            "isRecipientCobranding",
            "recipientTokenList",
            *_LIMITS,
        }
    ),
    Pipeline.recurring: frozenset(
        {"callerReference", "transactionAmount", "recurringPeriod", "isRecipientCobranding"}
    ),
}
#: Names the return URL may not already carry: Penny adds them.
RETURN_PARAMETERS: Final = frozenset(
    {
        "status",
        "errorMessage",
        "expiry",
        "prepaidInstrumentID",
        "fundingTokenID",
        "senderTokenID",
        "creditInstrumentID",
        "creditSenderTokenID",
        "settlementTokenID",
        "callerReferenceSender",
        "callerReferenceFunding",
        "callerReferenceSettlement",
        "tokenID",
        "callerReference",
        *SIGNATURE_PARAMETERS,
    }
)


@dataclass(frozen=True, slots=True)
class PipelineRequest:
    """A valid start request: what the buyer will be asked to authorize.

    ``limit`` is the prepaid ``fundingAmount`` or the postpaid ``creditLimit``; the second
    reference is ``callerReferenceFunding`` or ``callerReferenceSettlement``. Times are µs.

    A token pipeline (SingleUse, MultiUse, Recurring) has one reference, ``callerReference``
    (``caller_reference_sender``; the second is empty), and ``limit`` is its headline amount:
    the ``transactionAmount`` of a SingleUse or Recurring token, a MultiUse token's
    ``globalAmountLimit`` (also ``global_amount_limit``); the other terms are the fields
    below it.
    """

    pipeline: Pipeline
    caller_key: str
    return_url: str
    caller_reference_sender: str
    caller_reference_second: str
    limit: Money
    global_amount_limit: Money | None = None
    min_charge: Money | None = None
    max_charge: Money | None = None
    valid_from: int | None = None
    valid_until: int | None = None
    methods: tuple[PaymentMethodKind, ...] = tuple(METHOD_CODES.values())
    payment_reason: str = ""
    website_description: str = ""
    transaction_amount: Money | None = None
    amount_type: AmountType | None = None
    usage_limits: tuple[UsageLimitTerm, ...] = ()
    recurring_period: str | None = None
    reserve: bool = False
    #: EditToken (#19): the token these terms replace and its buyer (the pipeline is the
    #: token's own, MultiUse or Recurring, so the pages show its terms as that pipeline's).
    old_token_id: str | None = None
    old_sender_id: str | None = None

    @property
    def pipeline_name(self) -> str:
        return "EditToken" if self.old_token_id is not None else self.pipeline.value

    @property
    def second_reference_name(self) -> str:
        if self.pipeline is Pipeline.prepaid:
            return "callerReferenceFunding"
        return "callerReferenceSettlement"

    def references(self) -> dict[str, str]:
        """The caller references by their parameter names (echoed on the return URL)."""
        if self.pipeline.issues_token:
            return {"callerReference": self.caller_reference_sender}
        return {
            "callerReferenceSender": self.caller_reference_sender,
            self.second_reference_name: self.caller_reference_second,
        }

    def to_json(self) -> str:
        return stored.dumps(self, _STORED_KEYS)

    @classmethod
    def from_json(cls, text: str) -> PipelineRequest:
        return stored.loads(cls, _STORED_KEYS, text)


#: The short key some fields of a :class:`PipelineRequest` are stored under (its pipeline's
#: row); the others are stored under their own names.
_STORED_KEYS: Final = {
    "caller_reference_sender": "sender",
    "caller_reference_second": "second",
    "global_amount_limit": "global",
    "min_charge": "min",
    "max_charge": "max",
    "valid_from": "from",
    "valid_until": "until",
    "payment_reason": "reason",
    "website_description": "site",
    "transaction_amount": "amount",
    "usage_limits": "usage",
    "recurring_period": "period",
    "old_token_id": "old",
    "old_sender_id": "old_sender",
}


@dataclass(frozen=True, slots=True)
class StartError:
    """A start request refused: the status for the return URL and a message for both."""

    status: Status
    message: str
    fields: tuple[str, ...] = ()


@dataclass
class _Checker:
    params: Mapping[str, str]
    malformed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def bad(self, name: str) -> None:
        if name not in self.malformed:
            self.malformed.append(name)

    def given(self, name: str, *, required: bool = False) -> str | None:
        """The parameter's value, or None when it is absent or empty (then malformed when
        ``required``)."""
        value = self.params.get(name)
        if value is None or value == "":
            if required:
                self.bad(name)
            return None
        return value

    def text(self, name: str, *, required: bool = False, limit: int = MAX_TEXT_CHARS) -> str:
        value = self.given(name, required=required)
        if value is None:
            return ""
        if len(value) > limit or not _printable(value):
            self.bad(name)
            return ""
        return value

    def reference(self, name: str) -> str:
        value = self.params.get(name, "")
        if (
            not value
            or len(value.encode("utf-8")) > MAX_REFERENCE_BYTES
            or not _printable(value)
            or value != value.strip()
        ):
            self.bad(name)
            return ""
        return value

    def amount(self, name: str, *, required: bool) -> Money | None:
        value = self.given(name, required=required)
        if value is None:
            return None
        try:
            money = parse_amount(value, "USD")
        except MoneyError:
            self.bad(name)
            return None
        if not money.is_positive:
            self.bad(name)
            return None
        return money

    def epoch(self, name: str) -> int | None:
        value = self.given(name)
        if value is None:
            return None
        if not value.isascii() or not value.isdigit() or len(value) > 12:
            self.bad(name)
            return None
        seconds = int(value)
        if seconds > MAX_EPOCH_S:
            self.bad(name)
            return None
        return seconds


def _printable(text: str) -> bool:
    return text.isprintable()


def parse_start(params: Mapping[str, str], now_us: int) -> PipelineRequest | StartError:
    """Check a start request's parameters (the signature is checked by the caller)."""
    check = _Checker(params)
    name = params.get("pipelineName", "")
    if name not in {pipeline.value for pipeline in Pipeline}:
        return StartError(
            Status.caller_exception,
            "The following input(s) are not well formed: [pipelineName] "
            "(Penny serves SetupPrepaid, SetupPostpaid, SingleUse, MultiUse and Recurring)",
            ("pipelineName",),
        )
    pipeline = Pipeline(name)
    if pipeline.issues_token:
        return _parse_token_start(check, pipeline, now_us)
    known = _COMMON | (_PREPAID if pipeline is Pipeline.prepaid else _POSTPAID)
    for unknown in sorted(set(params) - known):
        check.bad(unknown)
    if params.get("recipientToken"):
        return StartError(
            Status.not_marketplace,
            f"{pipeline.value} instruments can only be issued by their recipient: "
            "a marketplace caller cannot act for another recipient.",
            ("recipientToken",),
        )
    caller_key, return_url, site, reason = _common(check)
    methods = _methods(check)
    amounts = _amounts(check, pipeline)
    valid_from, valid_until = _validity(check, now_us // MICROS)
    refused = _refused(check)
    if refused is not None:
        return refused
    sender, second, limit, global_limit, min_charge, max_charge = amounts
    assert limit is not None
    return PipelineRequest(
        pipeline=pipeline,
        caller_key=caller_key,
        return_url=return_url,
        caller_reference_sender=sender,
        caller_reference_second=second,
        limit=limit,
        global_amount_limit=global_limit,
        min_charge=min_charge,
        max_charge=max_charge,
        valid_from=valid_from,
        valid_until=valid_until,
        methods=methods,
        payment_reason=reason,
        website_description=site,
    )


def _common(check: _Checker) -> tuple[str, str, str, str]:
    params = check.params
    caller_key = check.text("callerKey", required=True, limit=64)
    if params.get("version") != PIPELINE_VERSION:
        check.bad("version")
    return_url = check.text("returnURL", required=True, limit=MAX_URL_CHARS)
    if return_url and return_url_problem(return_url) is not None:
        check.bad("returnURL")
    if params.get("currencyCode", "USD") != "USD":
        check.bad("currencyCode")
    if params.get("cobrandingStyle", "logo") not in {"logo", "banner"}:
        check.bad("cobrandingStyle")
    cobranding_url = check.text("cobrandingUrl", limit=MAX_URL_CHARS)
    if cobranding_url and not cobranding_url.startswith("https://"):
        check.bad("cobrandingUrl")
    site = check.text("websiteDescription")
    reason = check.text("paymentReason", limit=MAX_REASON_CHARS)
    if params.get("collectShippingAddress", "False") not in {"True", "False"}:
        check.bad("collectShippingAddress")
    for address_field in (*_ADDRESS, *_ADDRESS_MORE):
        check.text(address_field)
    return caller_key, return_url, site, reason


_Amounts = tuple[str, str, Money | None, Money | None, Money | None, Money | None]


def _amounts(check: _Checker, pipeline: Pipeline) -> _Amounts:
    sender = check.reference("callerReferenceSender")
    global_limit = min_charge = max_charge = None
    if pipeline is Pipeline.prepaid:
        second_name = "callerReferenceFunding"
        second = check.reference(second_name)
        limit = check.amount("fundingAmount", required=True)
    else:
        second_name = "callerReferenceSettlement"
        second = check.reference(second_name)
        limit = check.amount("creditLimit", required=True)
        global_limit = check.amount("globalAmountLimit", required=True)
        min_charge = check.amount("minChargeAmount", required=False)
        max_charge = check.amount("maxChargeAmount", required=False)
        if min_charge is not None and max_charge is not None and min_charge > max_charge:
            check.problems.append("minChargeAmount is more than maxChargeAmount")
    if sender and second and sender == second:
        check.problems.append(f"callerReferenceSender and {second_name} must differ")
    return sender, second, limit, global_limit, min_charge, max_charge


def _validity(check: _Checker, now_s: int) -> tuple[int | None, int | None]:
    """validityStart and validityExpiry in µs; a start a little in the past means now."""
    start = check.epoch("validityStart")
    expiry = check.epoch("validityExpiry")
    if start is not None:
        if start < now_s - START_SLACK_S:
            check.problems.append("validityStart is in the past")
        elif start > now_s + START_HORIZON_S:
            check.problems.append("validityStart is more than a year from now")
    if expiry is not None:
        if expiry <= now_s:
            check.problems.append("validityExpiry has already passed")
        elif start is not None and expiry <= start:
            check.problems.append("validityExpiry is not after validityStart")
    valid_from = None if start is None else max(start, now_s) * MICROS
    return valid_from, None if expiry is None else expiry * MICROS


def _methods(check: _Checker) -> tuple[PaymentMethodKind, ...]:
    text = check.params.get("paymentMethod")
    if text is None or text == "":
        return tuple(METHOD_CODES.values())
    codes = [code.strip() for code in text.split(",")]
    if not codes or any(code not in METHOD_CODES for code in codes):
        check.bad("paymentMethod")
        return ()
    return tuple(kind for code, kind in METHOD_CODES.items() if code in codes)


def return_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a return URL (``None`` when it can): it must be an absolute
    http(s) URL without credentials or a fragment, and may not carry a name Penny adds."""
    if len(url) > MAX_URL_CHARS or not url.isprintable() or any(c.isspace() for c in url):
        return "the returnURL is too long or has spaces or control characters"
    try:
        endpoint = Endpoint.parse(url)
    except OutboundError as error:
        return str(error)
    if "@" in url.split("?", 1)[0].split("#", 1)[0].partition("://")[2].split("/", 1)[0]:
        return "the returnURL may not carry a user name or password"
    if "#" in url:
        return "the returnURL may not have a fragment"
    names = [name for name, _ in endpoint.query]
    if len(set(names)) != len(names) or RETURN_PARAMETERS & set(names):
        return "the returnURL repeats a parameter or carries one Penny adds"
    return None


# -- the sender token pipelines (issue #19) ---------------------------------------------------


def _refused(check: _Checker) -> StartError | None:
    """The CE answer when the checker found anything wrong."""
    if check.malformed:
        listed = ", ".join(check.malformed)
        return StartError(
            Status.caller_exception,
            f"The following input(s) are not well formed: [{listed}]",
            tuple(check.malformed),
        )
    if check.problems:
        return StartError(Status.caller_exception, "; ".join(check.problems) + ".")
    return None


def _parse_token_start(
    check: _Checker, pipeline: Pipeline, now_us: int
) -> PipelineRequest | StartError:
    """A SingleUse, MultiUse or Recurring start request (spec §7.4)."""
    params = check.params
    for unknown in sorted(set(params) - _COMMON - _TOKEN_PARAMETERS[pipeline]):
        check.bad(unknown)
    if params.get("recipientToken") or params.get("recipientTokenList"):
        return StartError(
            Status.not_marketplace,
            f"Penny's {pipeline.value} tokens pay their caller: a marketplace recipient token "
            "is not accepted here.",
            ("recipientToken" if params.get("recipientToken") else "recipientTokenList",),
        )
    caller_key, return_url, site, reason = _common(check)
    methods = _methods(check)
    reference = check.reference("callerReference")
    amount = check.amount("transactionAmount", required=pipeline is not Pipeline.multi_use)
    for name in _DISPLAY:
        check.amount(name, required=False)
    for name in ("reserve", "collectEmailAddress", "isRecipientCobranding"):
        if params.get(name, "False") not in {"True", "False"}:
            check.bad(name)
    global_limit = None
    amount_type = None
    limits: tuple[UsageLimitTerm, ...] = ()
    period = None
    if pipeline is Pipeline.multi_use:
        global_limit = check.amount("globalAmountLimit", required=True)
        amount_type = _amount_type(check, amount)
        limits = tuple(u for u in (_usage_limit(check, 1), _usage_limit(check, 2)) if u)
    if pipeline is Pipeline.recurring:
        period = _period(check, "recurringPeriod", required=True)
    valid_from, valid_until = _validity(check, now_us // MICROS)
    refused = _refused(check)
    if refused is not None:
        return refused
    headline = amount if pipeline is not Pipeline.multi_use else global_limit
    assert headline is not None
    return PipelineRequest(
        pipeline=pipeline,
        caller_key=caller_key,
        return_url=return_url,
        caller_reference_sender=reference,
        caller_reference_second="",
        limit=headline,
        global_amount_limit=global_limit,
        valid_from=valid_from,
        valid_until=valid_until,
        methods=methods,
        payment_reason=reason,
        website_description=site,
        transaction_amount=amount,
        amount_type=amount_type,
        usage_limits=limits,
        recurring_period=period,
        reserve=params.get("reserve") == "True",
    )


def _amount_type(check: _Checker, amount: Money | None) -> AmountType | None:
    text = check.params.get("amountType")
    if text is None or text == "":
        return None if amount is None else AmountType.exact
    if text not in {kind.value for kind in AmountType} or amount is None:
        check.bad("amountType")
        return None
    return AmountType(text)


def _period(check: _Checker, name: str, *, required: bool) -> str | None:
    text = check.given(name, required=required)
    if text is None:
        return None
    try:
        period = parse_duration(text)
    except ValueError:
        check.bad(name)
        return None
    if period.months <= 0 and period.micros < 3_600 * MICROS:
        check.bad(name)
        return None
    return text


def _usage_limit(check: _Checker, n: int) -> UsageLimitTerm | None:
    """``usageLimitTypeN``, ``usageLimitValueN``, ``usageLimitPeriodN`` (spec §7.1)."""
    kind_name, value_name = f"usageLimitType{n}", f"usageLimitValue{n}"
    kind = check.params.get(kind_name)
    if not kind:
        for name in (value_name, f"usageLimitPeriod{n}"):
            if check.params.get(name):
                check.bad(name)
        return None
    period = _period(check, f"usageLimitPeriod{n}", required=False)
    if kind == UsageLimitType.amount.value:
        money = check.amount(value_name, required=True)
        return None if money is None else UsageLimitTerm(UsageLimitType.amount, money.minor, period)
    if kind != UsageLimitType.count.value:
        check.bad(kind_name)
        return None
    text = check.params.get(value_name, "")
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 1_000_000:
        check.bad(value_name)
        return None
    return UsageLimitTerm(UsageLimitType.count, int(text), period)
