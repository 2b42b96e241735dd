"""Snapshots of the FPS Query API's XML: every served action's success and errors, byte for byte.

One scripted session (:data:`STEPS`) runs once per module against a fresh SQLite store and
records the HTTP status and body of each request; each step is one test case comparing the body
with ``tests/snapshots/fps/<step name>.xml``. ``PENNY_UPDATE_SNAPSHOTS=1`` (re)writes the files
instead (and deletes the files no step produces any more); review the diff before committing.

Determinism: everything that would vary between runs is injected, so no normalisation is done
and the comparison is exact.

* Time: one :class:`ManualClock` for the payments, the directory and the Timestamp check; every
  step first advances it by one second.
* FPS ids (instruments, tokens, transactions): ``Payments(new_id=...)`` with a counter
  (:class:`CountingIds`).
* Party, payment-method and access-key ids: :func:`penny.domain.parties.random_id` is replaced
  by a counter while the session runs (the access key id appears in the string to sign that a
  ``SignatureDoesNotMatch`` message shows).
* Request ids: the request goes to :class:`penny.web.app.FpsEndpoint` directly, whose
  ``serve(request, request_id)`` takes the id; each step's id is ``uuid5`` of its name, so
  inserting a step does not change the other steps' ids. (:func:`penny.web.app.create_app`
  has no hook for request ids nor for ``new_id``; the HTTP layer around ``serve`` is covered
  by ``tests/test_fps_endpoint.py``.)

Inserting a step in the middle of :data:`STEPS` shifts the counters, so later snapshots change
(ids and dates): regenerate and review.

:func:`test_success_follows_the_schema_order` checks each success body against the element
order of the 2010-08-28 XSD transcribed from spec ``fps-api.md`` §4.4/§5 (:data:`TYPES`,
:data:`RESULTS`), so that regenerated snapshots cannot drift out of schema order unnoticed.
"""

from __future__ import annotations

import os
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlencode

import pytest

import penny.domain.parties
from builders import Shop, amount_params, fps_timestamp, new_shop, signed_fps
from penny.clock import MICROS_PER_SECOND, ManualClock
from penny.domain.model import RecipientToken, TokenKind
from penny.domain.parties import Party
from penny.fps.actions import ACTIONS, NOT_SUPPORTED
from penny.security import ServerKey
from penny.services.factory import build_services
from penny.services.payments import (
    InstrumentSetup,
)
from penny.signing import Signer, load_signer
from penny.storage.database import open_database
from penny.web.app import FpsEndpoint, FpsRequest

SNAPSHOTS: Final = Path(__file__).parent / "snapshots" / "fps"
UPDATE_ENV: Final = "PENNY_UPDATE_SNAPSHOTS"
HOST: Final = "testserver"
V2010: Final = "2010-08-28"
V2008: Final = "2008-09-17"
#: Namespace of the request ids (``uuid5(REQUEST_IDS, step name)``).
REQUEST_IDS: Final = uuid.UUID("6d1b1c52-51a3-4c1e-9b0a-7e5e1c0ffee0")


def _updating() -> bool:
    return os.environ.get(UPDATE_ENV, "") == "1"


# -- deterministic ids -----------------------------------------------------------------------


class CountingIds:
    """``new_id(length)``: ``prefix`` then a zero-padded counter, ``length`` characters."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.count = 0

    def __call__(self, length: int) -> str:
        self.count += 1
        return f"{self.prefix}{self.count:0{length - len(self.prefix)}d}"


# -- the session -----------------------------------------------------------------------------


@dataclass
class Outcome:
    status: int
    body: bytes
    step: Step


@dataclass
class Session:
    clock: ManualClock
    endpoint: FpsEndpoint
    merchant: Party
    key: str
    secret: str
    other_key: str
    other_secret: str
    prepaid: InstrumentSetup
    postpaid: InstrumentSetup
    signer: Signer
    shop: Shop
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    _recipient_token: RecipientToken | None = None
    _subscription: str | None = None

    def recipient_token(self) -> str:
        """The other merchant's recipient token for the merchant, issued when first asked for
        (by the last steps: earlier ids do not move)."""
        if self._recipient_token is None:
            self._recipient_token = self.shop.recipient_token(max_fixed="0.25", max_variable=500)
        return self._recipient_token.id

    def subscription(self) -> str:
        """A Recurring token on the buyer's card (a subscription, #19), issued when first
        asked for (by the last steps: earlier ids do not move)."""
        if self._subscription is None:
            made = self.shop.token(
                TokenKind.recurring,
                "sub",
                transaction_amount="10",
                recurring_period="1 Month",
                payment_reason="Music club",
            )
            self._subscription = made.token.id
        return self._subscription

    def completed(self, params: dict[str, str]) -> dict[str, str]:
        """``params``, once what is due has finished (the card answered), as ``penny serve``
        finishes it every few seconds."""
        self.shop.services.payments.complete_due()
        return params

    def timestamp(self, *, millis: bool = False, offset_s: int = 0) -> str:
        return fps_timestamp(self.clock.now_us(), millis=millis, offset_s=offset_s)

    def token_id(self, step: str) -> str:
        """The TokenId answered by an earlier step."""
        root = ET.fromstring(self.outcomes[step].body)
        found = next(node.text for node in root.iter() if _local(node.tag) == "TokenId")
        assert found
        return found

    def txn_id(self, step: str) -> str:
        """The TransactionId answered by an earlier step."""
        root = ET.fromstring(self.outcomes[step].body)
        found = next(node.text for node in root.iter() if _local(node.tag) == "TransactionId")
        assert found
        return found

    def run(self, step: Step) -> Outcome:
        self.clock.advance(MICROS_PER_SECOND)
        other = step.signer == "other"
        key, secret = (self.other_key, self.other_secret) if other else (self.key, self.secret)
        request = signed_fps(
            step.action,
            key,
            secret,
            step.params(self),
            method=step.method,
            host=HOST,
            timestamp=self.timestamp(millis=step.method == "POST"),
            version=step.version,
        )
        if step.signature == "none":
            del request["Signature"]
        if step.signature == "bad":
            request["Signature"] = "AAAA" + request["Signature"][4:]
        encoded = urlencode(request).encode("ascii")
        post = step.method == "POST"
        fps_request = FpsRequest(
            method=step.method,
            host=HOST,
            path="/",
            query_string=b"" if post else encoded,
            body=encoded if post else b"",
            content_type="application/x-www-form-urlencoded; charset=utf-8" if post else None,
            server_port=None,
        )
        status, body = self.endpoint.serve(fps_request, str(uuid.uuid5(REQUEST_IDS, step.name)))
        outcome = Outcome(status, body, step)
        self.outcomes[step.name] = outcome
        return outcome


Params = Callable[[Session], dict[str, str]]


#: The installed token of the GateKeeper steps (a recipient token with an amount cap).
HOUSE_RULES: Final = (
    "MyRole == 'Recipient' orSay 'Role does not match';\n"
    "TransactionAmount <= 'USD 100' && PaymentMethod in ('Prepaid', 'Debt')"
    " orSay 'At most USD 100, prepaid or on account';\n"
)


def _none(_session: Session) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Step:
    """One request of the session and the HTTP status it must get."""

    name: str
    action: str
    params: Params = _none
    status: int = 200
    version: str = V2010
    method: Literal["GET", "POST"] = "GET"
    signer: Literal["merchant", "other"] = "merchant"
    signature: Literal["good", "bad", "none"] = "good"

    @property
    def success(self) -> bool:
        return self.status == 200


def _fund(value: str, ref: str) -> Params:
    return lambda s: {
        "SenderTokenId": s.prepaid.second_token.id,
        "PrepaidInstrumentId": s.prepaid.instrument.id,
        "CallerReference": ref,
        **amount_params("FundingAmount", value),
    }


def _pay(value: str, ref: str, *, postpaid: bool = False, **extra: str) -> Params:
    return lambda s: {
        "SenderTokenId": (s.postpaid if postpaid else s.prepaid).sender_token.id,
        "CallerReference": ref,
        **amount_params("TransactionAmount", value),
        **extra,
    }


def _settle(value: str, ref: str) -> Params:
    return lambda s: {
        "SenderTokenId": s.postpaid.second_token.id,
        "CreditInstrumentId": s.postpaid.instrument.id,
        "CallerReference": ref,
        **amount_params("SettlementAmount", value),
    }


def _write_off(value: str, ref: str) -> Params:
    return lambda s: {
        "CreditInstrumentId": s.postpaid.instrument.id,
        "CallerReference": ref,
        **amount_params("AdjustmentAmount", value),
    }


def _of(step: str) -> Params:
    return lambda s: {"TransactionId": s.txn_id(step)}


def _const(**params: str) -> Params:
    return lambda _s: dict(params)


#: The session, in order. Names: ``[v2008.]<Action>.success[.<variant>]`` or
#: ``[v2008.]<Action>.error.<Code>[.<variant>]``; the file is ``<name>.xml``.
STEPS: Final[tuple[Step, ...]] = (
    # -- money-moving actions
    Step("FundPrepaid.success", "FundPrepaid", _fund("10", "fund-1")),
    Step("FundPrepaid.success.post", "FundPrepaid", _fund("5.00", "fund-post"), method="POST"),
    Step(
        "FundPrepaid.error.PrepaidFundingLimitExceeded",
        "FundPrepaid",
        _fund("90", "fund-2"),
        400,
    ),
    Step("Pay.success", "Pay", _pay("2.50", "pay-1")),
    Step("Pay.success.postpaid", "Pay", _pay("30", "pay-c1", postpaid=True)),
    Step("Pay.error.InsufficientBalance", "Pay", _pay("50", "pay-2"), 400),
    Step("Pay.error.DuplicateRequest", "Pay", _pay("3", "pay-1"), 400),
    Step(
        "Pay.error.MissingParameter",
        "Pay",
        _const(CallerReference="pay-3", **amount_params("TransactionAmount", "1")),
        400,
    ),
    Step("Pay.error.InvalidRequest", "Pay", _pay("1", "pay-4", recipient_token_id="x"), 400),
    Step("Pay.error.InvalidParams", "Pay", _pay("1", "pay-5", RecipientTokenId="x"), 400),
    Step(
        "Pay.error.InvalidParams.amount",
        "Pay",
        _pay("1.001", "pay-6"),
        400,
    ),
    Step(
        "Pay.error.InvalidTokenId_Sender",
        "Pay",
        _const(
            SenderTokenId="NOSUCHTOKEN",
            CallerReference="pay-7",
            **amount_params("TransactionAmount", "1"),
        ),
        400,
    ),
    Step("SettleDebt.success", "SettleDebt", _settle("10", "settle-1")),
    Step(
        "SettleDebt.error.SettleAmountGreaterThanDebt",
        "SettleDebt",
        _settle("500", "settle-2"),
        400,
    ),
    Step("WriteOffDebt.success", "WriteOffDebt", _write_off("5", "write-off-1")),
    Step(
        "WriteOffDebt.error.SettleAmountGreaterThanDebt",
        "WriteOffDebt",
        _write_off("16", "write-off-2"),
        400,
    ),
    Step(
        "Refund.success",
        "Refund",
        lambda s: {
            "TransactionId": s.txn_id("Pay.success"),
            "CallerReference": "refund-1",
            **amount_params("RefundAmount", "1.00"),
        },
    ),
    Step(
        "Refund.error.RefundAmountExceeded",
        "Refund",
        lambda s: {
            "TransactionId": s.txn_id("Pay.success"),
            "CallerReference": "refund-2",
            **amount_params("RefundAmount", "5"),
        },
        400,
    ),
    Step(
        "Refund.error.TransactionTypeNotRefundable",
        "Refund",
        lambda s: {"TransactionId": s.txn_id("FundPrepaid.success"), "CallerReference": "refund-3"},
        400,
    ),
    Step(
        "Refund.error.InvalidTransactionId",
        "Refund",
        _const(TransactionId="NOSUCH", CallerReference="refund-4"),
        400,
    ),
    # -- balances
    Step(
        "GetPrepaidBalance.success",
        "GetPrepaidBalance",
        lambda s: {"PrepaidInstrumentId": s.prepaid.instrument.id},
    ),
    Step(
        "GetPrepaidBalance.error.InstrumentAccessDenied",
        "GetPrepaidBalance",
        lambda s: {"PrepaidInstrumentId": s.prepaid.instrument.id},
        400,
        signer="other",
    ),
    Step("GetTotalPrepaidLiability.success", "GetTotalPrepaidLiability"),
    Step(
        "GetTotalPrepaidLiability.error.InvalidRequest",
        "GetTotalPrepaidLiability",
        _const(PrepaidInstrumentId="x"),
        400,
    ),
    Step(
        "GetDebtBalance.success",
        "GetDebtBalance",
        lambda s: {"CreditInstrumentId": s.postpaid.instrument.id},
    ),
    Step("GetDebtBalance.error.MissingParameter", "GetDebtBalance", status=400),
    Step("GetOutstandingDebtBalance.success", "GetOutstandingDebtBalance"),
    Step(
        "GetOutstandingDebtBalance.error.InvalidRequest",
        "GetOutstandingDebtBalance",
        _const(CreditInstrumentId="x"),
        400,
    ),
    Step("GetAccountBalance.success", "GetAccountBalance"),
    Step("GetAccountBalance.error.InvalidRequest", "GetAccountBalance", _const(Extra="1"), 400),
    # -- transactions
    Step("GetTransactionStatus.success", "GetTransactionStatus", _of("Pay.success")),
    Step(
        "GetTransactionStatus.error.InvalidTransactionId",
        "GetTransactionStatus",
        _of("Pay.success"),
        400,
        signer="other",
    ),
    Step("GetTransaction.success", "GetTransaction", _of("Pay.success")),
    Step("GetTransaction.success.refund", "GetTransaction", _of("Refund.success")),
    Step("GetTransaction.success.fund-prepaid", "GetTransaction", _of("FundPrepaid.success")),
    Step("GetTransaction.success.postpaid", "GetTransaction", _of("Pay.success.postpaid")),
    Step("GetTransaction.success.settle-debt", "GetTransaction", _of("SettleDebt.success")),
    Step("GetTransaction.success.write-off", "GetTransaction", _of("WriteOffDebt.success")),
    Step(
        "GetTransaction.error.InvalidTransactionId",
        "GetTransaction",
        _const(TransactionId="NOSUCH"),
        400,
    ),
    Step(
        "GetAccountActivity.success",
        "GetAccountActivity",
        lambda s: {"StartDate": s.timestamp(offset_s=-3600), "MaxBatchSize": "3"},
    ),
    Step(
        "GetAccountActivity.success.filtered",
        "GetAccountActivity",
        lambda s: {
            "StartDate": s.timestamp(offset_s=-3600)[:10],
            "SortOrderByDate": "Ascending",
            "FPSOperation": "Pay",
            "Role.1": "Caller",
        },
    ),
    Step(
        "GetAccountActivity.error.InvalidDateRange",
        "GetAccountActivity",
        lambda s: {"StartDate": s.timestamp(offset_s=-3600), "EndDate": "2000-01-01"},
        400,
    ),
    Step(
        "GetAccountActivity.error.InvalidParams",
        "GetAccountActivity",
        _const(StartDate="yesterday"),
        400,
    ),
    # -- tokens
    Step(
        "GetTokenByCaller.success",
        "GetTokenByCaller",
        lambda s: {"TokenId": s.prepaid.sender_token.id},
    ),
    Step(
        "GetTokenByCaller.success.by-reference",
        "GetTokenByCaller",
        _const(CallerReference="c-settlement"),
    ),
    Step(
        "GetTokenByCaller.error.InvalidCallerReference",
        "GetTokenByCaller",
        _const(CallerReference="nope"),
        400,
    ),
    Step(
        "GetTokenByCaller.error.InvalidParams",
        "GetTokenByCaller",
        _const(CallerReference="c-settlement", TokenId="x"),
        400,
    ),
    Step("GetTokens.success", "GetTokens"),
    Step("GetTokens.success.empty", "GetTokens", _const(TokenType="SingleUse")),
    Step("GetTokens.error.InvalidParams", "GetTokens", _const(TokenStatus="Expired"), 400),
    Step(
        "GetTokenUsage.success",
        "GetTokenUsage",
        lambda s: {"TokenId": s.prepaid.sender_token.id},
    ),
    Step(
        "GetTokenUsage.error.InvalidTokenId_Sender",
        "GetTokenUsage",
        _const(TokenId="NOSUCHTOKEN"),
        400,
    ),
    Step(
        "CancelToken.success",
        "CancelToken",
        lambda s: {"TokenId": s.postpaid.sender_token.id, "ReasonText": "closing the tab"},
    ),
    Step(
        "CancelToken.error.InvalidTokenId_Sender",
        "CancelToken",
        lambda s: {"TokenId": s.postpaid.sender_token.id},
        400,
        signer="other",
    ),
    Step(
        "Pay.error.TokenNotActive_Sender",
        "Pay",
        _pay("1", "pay-c2", postpaid=True),
        400,
    ),
    Step(
        "GetTokens.success.inactive",
        "GetTokens",
        _const(TokenStatus="Inactive"),
    ),
    # -- outbound signatures
    Step("VerifySignature.success", "VerifySignature", lambda s: _signed_return(s, "SC")),
    Step(
        "VerifySignature.success.altered",
        "VerifySignature",
        lambda s: {**_signed_return(s, "SC"), "UrlEndPoint": "http://shop.example/return/"},
    ),
    Step(
        "VerifySignature.error.InvalidParams",
        "VerifySignature",
        _const(UrlEndPoint="http://shop.example/return", HttpParameters="status=SC"),
        400,
    ),
    # -- actions not served, and the front end's refusals
    # (Reserve was refused here with InvalidAction before #19; a refusal that draws no id keeps
    # the later steps' ids and dates.)
    Step(
        "Cancel.error.InvalidTransactionId",
        "Cancel",
        _const(TransactionId="NOSUCH"),
        400,
    ),
    Step("NoSuchAction.error.InvalidAction", "NoSuchAction", status=400),
    Step(
        "GetAccountBalance.error.SignatureDoesNotMatch",
        "GetAccountBalance",
        status=403,
        signature="bad",
    ),
    Step(
        "GetAccountBalance.error.InvalidClientTokenId",
        "GetAccountBalance",
        _const(AWSAccessKeyId="PNYNOSUCHKEY00000000"),
        403,
    ),
    Step(
        "GetAccountBalance.error.RequestExpired",
        "GetAccountBalance",
        lambda s: {"Timestamp": s.timestamp(offset_s=-3600)},
        400,
    ),
    Step(
        "GetAccountBalance.error.InvalidParameterValue.signature-version",
        "GetAccountBalance",
        _const(SignatureVersion="1"),
        400,
    ),
    Step(
        "GetAccountBalance.error.MissingParameter.signature",
        "GetAccountBalance",
        status=400,
        signature="none",
    ),
    Step(
        "GetAccountBalance.error.InvalidParameterValue.version",
        "GetAccountBalance",
        version="2007-01-08",
        status=400,
    ),
    # -- 2008-09-17
    Step("v2008.Pay.success", "Pay", _pay("1", "pay-2008"), version=V2008),
    Step("v2008.GetTransaction.success", "GetTransaction", _of("v2008.Pay.success"), version=V2008),
    Step("v2008.GetAccountBalance.success", "GetAccountBalance", version=V2008),
    Step(
        "v2008.GetDebtBalance.success",
        "GetDebtBalance",
        lambda s: {"CreditInstrumentId": s.postpaid.instrument.id},
        version=V2008,
    ),
    Step(
        "v2008.Pay.error.InvalidRequest",
        "Pay",
        _pay("1", "pay-2008-2", OverrideIPNUrl="http://example.com/ipn"),
        400,
        version=V2008,
    ),
    Step(
        "v2008.GetSubscriptionDetails.error.InvalidAction",
        "GetSubscriptionDetails",
        _const(SubscriptionId="S"),
        400,
        version=V2008,
    ),
    # -- GateKeeper (issue #7): appended, so the earlier steps keep their ids and dates
    Step(
        "InstallPaymentInstruction.success",
        "InstallPaymentInstruction",
        _const(
            PaymentInstruction=HOUSE_RULES,
            CallerReference="gk-1",
            TokenType="Unrestricted",
            TokenFriendlyName="House rules",
            PaymentReason="Our terms",
        ),
    ),
    Step(
        "InstallPaymentInstruction.error.BadRule",
        "InstallPaymentInstruction",
        _const(
            PaymentInstruction="Invalid Instruction;",
            CallerReference="gk-2",
            TokenType="Unrestricted",
        ),
        400,
    ),
    Step(
        "InstallPaymentInstruction.error.UsageNotDefined",
        "InstallPaymentInstruction",
        _const(
            PaymentInstruction="MyRole == 'Recipient';",
            CallerReference="gk-3",
            TokenType="MultiUse",
        ),
        400,
    ),
    Step(
        "GetPaymentInstruction.success",
        "GetPaymentInstruction",
        lambda s: {"TokenId": s.token_id("InstallPaymentInstruction.success")},
    ),
    Step(
        "GetPaymentInstruction.success.pipeline",
        "GetPaymentInstruction",
        lambda s: {"TokenId": s.postpaid.sender_token.id},
    ),
    Step(
        "GetPaymentInstruction.error.InvalidTokenId_Sender",
        "GetPaymentInstruction",
        _const(TokenId="NOSUCHTOKEN"),
        400,
    ),
    Step(
        "Pay.success.recipient-token",
        "Pay",
        lambda s: {
            **_pay("1", "pay-gk-1")(s),
            "RecipientTokenId": s.token_id("InstallPaymentInstruction.success"),
        },
    ),
    Step(
        "Pay.error.TransactionDenied.recipient-token",
        "Pay",
        lambda s: {
            **_pay("101", "pay-gk-2")(s),
            "RecipientTokenId": s.token_id("InstallPaymentInstruction.success"),
        },
        400,
    ),
    Step(
        "v2008.InstallPaymentInstruction.success",
        "InstallPaymentInstruction",
        _const(
            PaymentInstruction="MyRole == 'Caller';",
            CallerReference="gk-2008",
            TokenType="Unrestricted",
        ),
        version=V2008,
    ),
    Step(
        "v2008.GetPaymentInstruction.success",
        "GetPaymentInstruction",
        lambda s: {"TokenId": s.token_id("v2008.InstallPaymentInstruction.success")},
        version=V2008,
    ),
    # -- Reserve, Settle and Cancel (issue #19): appended
    Step("Reserve.success", "Reserve", _pay("3", "reserve-1")),
    Step("Reserve.error.InsufficientBalance", "Reserve", _pay("50", "reserve-2"), 400),
    Step("Reserve.error.DuplicateRequest", "Reserve", _pay("2", "reserve-1"), 400),
    Step(
        "Settle.error.SettleAmountGreaterThanReserveAmount",
        "Settle",
        lambda s: {
            "ReserveTransactionId": s.txn_id("Reserve.success"),
            **amount_params("TransactionAmount", "3.01"),
        },
        400,
    ),
    Step(
        "Settle.success",
        "Settle",
        lambda s: {
            "ReserveTransactionId": s.txn_id("Reserve.success"),
            **amount_params("TransactionAmount", "2"),
        },
    ),
    Step(
        "Settle.error.InvalidTransactionState",
        "Settle",
        lambda s: {
            "ReserveTransactionId": s.txn_id("Reserve.success"),
            **amount_params("TransactionAmount", "1"),
        },
        400,
    ),
    Step(
        "Settle.error.MissingParameter",
        "Settle",
        lambda _s: amount_params("TransactionAmount", "1"),
        400,
    ),
    Step("GetTransaction.success.reserve", "GetTransaction", _of("Reserve.success")),
    Step("GetTransaction.success.settle", "GetTransaction", _of("Settle.success")),
    Step(
        "Refund.success.settle",
        "Refund",
        lambda s: {
            "TransactionId": s.txn_id("Settle.success"),
            "CallerReference": "refund-settle-1",
            **amount_params("RefundAmount", "0.50"),
        },
    ),
    Step("Reserve.success.to-cancel", "Reserve", _pay("1", "reserve-3")),
    Step(
        "Refund.error.InvalidTransactionState",
        "Refund",
        lambda s: {"TransactionId": s.txn_id("Reserve.success.to-cancel"), "CallerReference": "r"},
        400,
    ),
    Step("Cancel.success", "Cancel", _of("Reserve.success.to-cancel")),
    Step("Cancel.error.InvalidTransactionState", "Cancel", _of("Settle.success"), 400),
    Step(
        "GetTransactionStatus.success.cancelled",
        "GetTransactionStatus",
        _of("Reserve.success.to-cancel"),
    ),
    Step("GetTransaction.success.cancelled", "GetTransaction", _of("Reserve.success.to-cancel")),
    Step("v2008.Reserve.success", "Reserve", _pay("1", "reserve-2008"), version=V2008),
    Step(
        "v2008.Settle.success",
        "Settle",
        lambda s: {"ReserveTransactionId": s.txn_id("v2008.Reserve.success")},
        version=V2008,
    ),
    Step("v2008.Reserve.success.to-cancel", "Reserve", _pay("1", "reserve-2008-2"), version=V2008),
    Step("v2008.Cancel.success", "Cancel", _of("v2008.Reserve.success.to-cancel"), version=V2008),
    # -- the marketplace (#19): last, so that the ids of the steps above do not move
    Step(
        "Pay.success.marketplace",
        "Pay",
        lambda s: {
            **_pay("1", "pay-mp-1")(s),
            "RecipientTokenId": s.recipient_token(),
            **amount_params("MarketplaceFixedFee", "0.10"),
            "MarketplaceVariableFee": "5",
            "CallerDescription": "Song #12 from Elsewhere",
        },
    ),
    Step(
        "Pay.error.IncompatibleTokens.marketplace",
        "Pay",
        lambda s: {
            **_pay("1", "pay-mp-2")(s),
            "RecipientTokenId": s.recipient_token(),
            "MarketplaceVariableFee": "5.5",
        },
        400,
    ),
    Step(
        "Pay.error.NotMarketplaceApp",
        "Pay",
        lambda s: {**_pay("1", "pay-mp-3")(s), **amount_params("MarketplaceFixedFee", "0.10")},
        400,
    ),
    Step("GetTransaction.success.marketplace", "GetTransaction", _of("Pay.success.marketplace")),
    Step(
        "v2008.GetTransaction.success.marketplace",
        "GetTransaction",
        _of("Pay.success.marketplace"),
        version=V2008,
    ),
    Step(
        "GetTransaction.success.recipient-token",
        "GetTransaction",
        _of("Pay.success.recipient-token"),
    ),
    Step(
        "Refund.success.marketplace",
        "Refund",
        lambda s: {
            "TransactionId": s.txn_id("Pay.success.marketplace"),
            "CallerReference": "refund-mp-1",
            "MarketplaceRefundPolicy": "MasterAndMarketplaceTxn",
            **amount_params("RefundAmount", "0.50"),
        },
    ),
    Step(
        "GetAccountActivity.success.marketplace",
        "GetAccountActivity",
        lambda s: {"StartDate": s.timestamp(offset_s=-8), "FPSOperation": "Pay"},
    ),
    Step(
        "v2008.GetAccountActivity.success.marketplace",
        "GetAccountActivity",
        lambda s: {"StartDate": s.timestamp(offset_s=-9), "FPSOperation": "Pay"},
        version=V2008,
    ),
    Step(
        "GetRecipientVerificationStatus.success",
        "GetRecipientVerificationStatus",
        lambda s: {"RecipientTokenId": s.recipient_token()},
    ),
    Step(
        "GetRecipientVerificationStatus.error.InvalidParams",
        "GetRecipientVerificationStatus",
        _const(RecipientTokenId="NOSUCHTOKEN"),
        400,
    ),
    Step(
        "v2008.GetRecipientVerificationStatus.error.InvalidAction",
        "GetRecipientVerificationStatus",
        lambda s: {"RecipientTokenId": s.recipient_token()},
        400,
        version=V2008,
    ),
    # -- subscriptions (#19): appended, so the earlier steps keep their ids and dates
    Step(
        "Pay.success.recurring",
        "Pay",
        lambda s: {
            "SenderTokenId": s.subscription(),
            "CallerReference": "sub-month-1",
            "CallerDescription": "December",
            **amount_params("TransactionAmount", "10"),
        },
    ),
    Step(
        "GetSubscriptionDetails.success",
        "GetSubscriptionDetails",
        lambda s: {"SubscriptionId": s.subscription()},
    ),
    Step(
        "GetTransactionsForSubscription.success",
        "GetTransactionsForSubscription",
        lambda s: {"SubscriptionId": s.subscription()},
    ),
    Step(
        "GetSubscriptionDetails.error.InvalidParams",
        "GetSubscriptionDetails",
        _const(SubscriptionId="NOSUCHSUBSCRIPTION"),
        400,
    ),
    Step(
        "GetTransactionsForSubscription.error.InvalidParams",
        "GetTransactionsForSubscription",
        lambda s: {"SubscriptionId": s.prepaid.sender_token.id},
        400,
    ),
    Step(
        "CancelSubscriptionAndRefund.error.OriginalTransactionIncomplete",
        "CancelSubscriptionAndRefund",
        lambda s: {"SubscriptionId": s.subscription()},
        400,
    ),
    Step(
        "CancelSubscriptionAndRefund.error.MissingParameter",
        "CancelSubscriptionAndRefund",
        lambda s: {"SubscriptionId": s.subscription(), **amount_params("RefundAmount", "4")},
        400,
    ),
    Step(
        "CancelSubscriptionAndRefund.success",
        "CancelSubscriptionAndRefund",
        lambda s: s.completed(
            {
                "SubscriptionId": s.subscription(),
                "CallerReference": "sub-cancel-1",
                "CancelReason": "Moved away",
                **amount_params("RefundAmount", "4"),
            }
        ),
    ),
    Step(
        "CancelSubscriptionAndRefund.error.DuplicateRequest",
        "CancelSubscriptionAndRefund",
        lambda s: {
            "SubscriptionId": s.subscription(),
            "CallerReference": "sub-cancel-1",
            **amount_params("RefundAmount", "3"),
        },
        400,
    ),
    Step(
        "GetSubscriptionDetails.success.cancelled",
        "GetSubscriptionDetails",
        lambda s: {"SubscriptionId": s.subscription()},
    ),
    Step(
        "v2008.CancelSubscriptionAndRefund.success.retry",
        "CancelSubscriptionAndRefund",
        lambda s: {
            "SubscriptionId": s.subscription(),
            "CallerReference": "sub-cancel-1",
            "CancelReason": "Moved away",
            **amount_params("RefundAmount", "4"),
        },
        version=V2008,
    ),
    Step(
        "v2008.GetTransactionsForSubscription.error.InvalidAction",
        "GetTransactionsForSubscription",
        lambda s: {"SubscriptionId": s.subscription()},
        400,
        version=V2008,
    ),
)

STEP_NAMES: Final = tuple(step.name for step in STEPS)


def _signed_return(s: Session, status: str) -> dict[str, str]:
    """VerifySignature's parameters for a return URL Penny signed (with ``status``)."""
    url = s.signer.signed_redirect(
        "http://testserver", "http://shop.example/return", {"status": status}
    )
    query = url.partition("?")[2]
    return {"UrlEndPoint": "http://shop.example/return", "HttpParameters": query}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Run :data:`STEPS` once, in order, on a fresh SQLite store."""
    directory_path = tmp_path_factory.mktemp("fps-snapshots")
    db = open_database("sqlite:///" + str(directory_path / "penny.db"))
    clock = ManualClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(penny.domain.parties, "random_id", CountingIds("P"))
        services = build_services(
            db, clock=clock, server_key=ServerKey.generate(), new_id=CountingIds("PNY")
        )
        ledger = services.ledger
        directory, payments = services.directory, services.payments
        shop = new_shop(services, bank=False)
        merchant = shop.merchant.party
        merchant_key, other_key = shop.merchant, shop.other
        prepaid = shop.prepaid("p")
        postpaid = shop.postpaid("c")
        signer = load_signer(db, ServerKey.generate(), clock)
        session = Session(
            clock=clock,
            endpoint=FpsEndpoint(directory, payments, clock, signer),
            merchant=merchant,
            key=merchant_key.access_key,
            secret=merchant_key.secret,
            other_key=other_key.access_key,
            other_secret=other_key.secret,
            prepaid=prepaid,
            postpaid=postpaid,
            signer=signer,
            shop=shop,
        )
        for step in STEPS:
            session.run(step)
        yield session
    assert ledger.audit().ok
    db.dispose()


# -- snapshots -------------------------------------------------------------------------------


def _snapshot_path(name: str) -> Path:
    return SNAPSHOTS / f"{name}.xml"


@pytest.mark.parametrize("name", STEP_NAMES)
def test_snapshot(session: Session, name: str) -> None:
    outcome = session.outcomes[name]
    assert outcome.status == outcome.step.status, outcome.body
    path = _snapshot_path(name)
    if _updating():
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        path.write_bytes(outcome.body)
        return
    assert path.exists(), f"no snapshot {path.name}: run with {UPDATE_ENV}=1 to write it"
    expected = path.read_bytes()
    assert outcome.body.decode("utf-8") == expected.decode("utf-8")


def test_no_stray_snapshot_files() -> None:
    """Every file in the snapshot directory belongs to a step (update mode deletes strays)."""
    stray = sorted(
        path for path in SNAPSHOTS.glob("*.xml") if path.name[: -len(".xml")] not in STEP_NAMES
    )
    if _updating():
        for path in stray:
            path.unlink()
        return
    assert stray == []


def test_steps_are_uniquely_named_and_cover_every_action() -> None:
    assert len(set(STEP_NAMES)) == len(STEP_NAMES)
    for step in STEPS:
        version, _, rest = (
            step.name.partition(".") if step.name.startswith("v2008.") else ("", "", step.name)
        )
        assert rest.split(".")[0] == step.action, step.name
        assert (".success" in step.name) == step.success, step.name
        assert (version == "v2008") == (step.version == V2008), step.name
    for action in ACTIONS:
        for success in (True, False):
            assert any(
                step.action == action and step.success == success and step.version == V2010
                for step in STEPS
            ), (action, success)
    assert not NOT_SUPPORTED  # every action of the 2010-08-28 WSDL is served (#19)
    assert any(step.signature == "bad" for step in STEPS)
    assert sum(step.version == V2008 for step in STEPS) >= 2


# -- schema order (spec fps-api.md §4.4 and §5) ----------------------------------------------


@dataclass(frozen=True)
class Member:
    """One element of an XSD sequence: its name, type, and occurrence bounds."""

    name: str
    type: str
    optional: bool = False
    many: bool = False


def m(name: str, type_: str = "string", *, opt: bool = False, many: bool = False) -> Member:
    return Member(name, type_, opt, many)


#: Enumerations of §4.4 (the simple types used in responses).
ENUMS: Final[dict[str, frozenset[str]]] = {
    "CurrencyCode": frozenset({"USD"}),
    "FPSOperation": frozenset(
        {"Pay", "Refund", "Settle", "SettleDebt", "WriteOffDebt", "FundPrepaid", "Reserve"}
    ),
    "PaymentMethod": frozenset({"ABT", "CC", "ACH", "Debt", "Prepaid"}),
    "RelationType": frozenset({"Refund", "Parent", "MarketplaceFee", "RefundReversal"}),
    "RecipientVerificationStatus": frozenset(
        {"VerificationComplete", "VerificationPending", "VerificationCompleteNoLimits"}
    ),
    "SubscriptionStatus": frozenset({"Active", "Cancelled", "Completed"}),
    "TimeUnit": frozenset({"day", "month", "week", "year"}),
    "TokenStatus": frozenset({"Active", "Inactive"}),
    "TokenType": frozenset({"SingleUse", "MultiUse", "Recurring", "Unrestricted"}),
    "TransactionStatus": frozenset({"Reserved", "Success", "Failure", "Pending", "Cancelled"}),
    "TransactionalRole": frozenset({"Sender", "Caller", "Recipient"}),
}

#: Lexical forms of the other simple types as Penny writes them (docs/fps-wire.md).
SIMPLE: Final[dict[str, re.Pattern[str]]] = {
    "string": re.compile(r".*", re.DOTALL),
    "int": re.compile(r"-?[0-9]+"),
    "dateTime": re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00"),
    "decimal6": re.compile(r"-?[0-9]+\.[0-9]{6}"),
}

#: Complex types of §4.4, members in schema sequence order.
TYPES: Final[dict[str, tuple[Member, ...]]] = {
    "Amount": (m("CurrencyCode", "CurrencyCode"), m("Value", "decimal6")),
    "AccountBalance": (
        m("TotalBalance", "Amount"),
        m("PendingInBalance", "Amount"),
        m("PendingOutBalance", "Amount"),
        m("AvailableBalances", "AvailableBalances"),
    ),
    "AvailableBalances": (m("DisburseBalance", "Amount"), m("RefundBalance", "Amount")),
    "DebtBalance": (m("AvailableBalance", "Amount"), m("PendingOutBalance", "Amount", opt=True)),
    "OutstandingDebtBalance": (
        m("OutstandingBalance", "Amount"),
        m("PendingOutBalance", "Amount", opt=True),
    ),
    "OutstandingPrepaidLiability": (
        m("OutstandingBalance", "Amount"),
        m("PendingInBalance", "Amount", opt=True),
    ),
    "PrepaidBalance": (m("AvailableBalance", "Amount"), m("PendingInBalance", "Amount", opt=True)),
    "Token": (
        m("TokenId"),
        m("FriendlyName"),
        m("TokenStatus", "TokenStatus"),
        m("DateInstalled", "dateTime"),
        m("CallerReference"),
        m("TokenType", "TokenType"),
        m("OldTokenId", opt=True),
        m("PaymentReason", opt=True),
    ),
    "TokenUsageLimit": (
        m("Count", "int", opt=True),
        m("Amount", "Amount", opt=True),
        m("LastResetCount", "int", opt=True),
        m("LastResetAmount", "Amount", opt=True),
        m("LastResetTimestamp", "dateTime", opt=True),
    ),
    "Transaction": (
        m("TransactionId"),
        m("CallerTransactionDate", "dateTime"),
        m("DateReceived", "dateTime"),
        m("DateCompleted", "dateTime", opt=True),
        m("TransactionAmount", "Amount"),
        m("FPSOperation", "FPSOperation"),
        m("TransactionStatus", "TransactionStatus"),
        m("StatusMessage", opt=True),
        m("StatusCode", opt=True),
        m("OriginalTransactionId", opt=True),
        m("TransactionPart", "TransactionPart", many=True),
        m("PaymentMethod", "PaymentMethod"),
        m("SenderName", opt=True),
        m("CallerName"),
        m("RecipientName", opt=True),
        m("FPSFees", "Amount"),
        m("Balance", "Amount"),
        m("SenderTokenId", opt=True),
        m("RecipientTokenId", opt=True),
    ),
    "TransactionDetail": (
        m("TransactionId"),
        m("CallerReference"),
        m("CallerDescription", opt=True),
        m("SenderDescription", opt=True),
        m("DateReceived", "dateTime"),
        m("DateCompleted", "dateTime", opt=True),
        m("TransactionAmount", "Amount"),
        m("FPSFees", "Amount"),
        m("MarketplaceFees", "Amount", opt=True),
        m("FPSFeesPaidBy", "TransactionalRole"),
        m("SenderTokenId", opt=True),
        m("RecipientTokenId", opt=True),
        m("PrepaidInstrumentId", opt=True),
        m("CreditInstrumentId", opt=True),
        m("FPSOperation", "FPSOperation"),
        m("PaymentMethod", "PaymentMethod"),
        m("TransactionStatus", "TransactionStatus"),
        m("StatusCode", opt=True),
        m("StatusMessage", opt=True),
        m("SenderName", opt=True),
        m("SenderEmail", opt=True),
        m("CallerName"),
        m("RecipientName", opt=True),
        m("RecipientEmail", opt=True),
        m("RelatedTransaction", "RelatedTransaction", opt=True, many=True),
        m("StatusHistory", "StatusHistory", many=True),
    ),
    "TransactionPart": (
        m("InstrumentId", opt=True),
        m("Role", "TransactionalRole"),
        m("Name", opt=True),
        m("Reference", opt=True),
        m("Description", opt=True),
        m("FeesPaid", "Amount", opt=True),
    ),
    "RelatedTransaction": (m("TransactionId"), m("RelationType", "RelationType", opt=True)),
    "SubscriptionDetails": (
        m("SubscriptionId"),
        m("Description"),
        m("SubscriptionAmount", "Amount"),
        m("NextTransactionAmount", "Amount", opt=True),
        m("PromotionalAmount", "Amount", opt=True),
        m("NumberOfPromotionalTransactions", "int"),
        m("StartDate", "dateTime"),
        m("EndDate", "dateTime", opt=True),
        m("SubscriptionPeriod", "Duration", opt=True),
        m("SubscriptionFrequency", "Duration"),
        m("OverrideIPNUrl", opt=True),
        m("SubscriptionStatus", "SubscriptionStatus"),
        m("NumberOfTransactionsProcessed", "int"),
        m("RecipientEmail"),
        m("RecipientName"),
        m("SenderEmail"),
        m("SenderName"),
        m("NextTransactionDate", "dateTime", opt=True),
    ),
    "SubscriptionTransaction": (
        m("TransactionId"),
        m("TransactionDate", "dateTime"),
        m("TransactionSerialNumber", "int"),
        m("TransactionAmount", "Amount"),
        m("Description"),
        m("TransactionStatus", "TransactionStatus"),
    ),
    "Duration": (m("Value", "int"), m("TimeUnit", "TimeUnit")),
    "StatusHistory": (
        m("Date", "dateTime"),
        m("TransactionStatus", "TransactionStatus"),
        m("StatusCode", opt=True),
        m("Amount", "Amount"),
    ),
}

_TRANSACTION_RESULT: Final = (m("TransactionId"), m("TransactionStatus", "TransactionStatus"))

#: Content of ``<{Action}Result>`` per served action (§5); ``None``: no Result element.
RESULTS: Final[dict[str, tuple[Member, ...] | None]] = {
    "Pay": _TRANSACTION_RESULT,
    "FundPrepaid": _TRANSACTION_RESULT,
    "SettleDebt": _TRANSACTION_RESULT,
    "WriteOffDebt": _TRANSACTION_RESULT,
    "Refund": _TRANSACTION_RESULT,
    "Reserve": _TRANSACTION_RESULT,
    "Settle": _TRANSACTION_RESULT,
    "Cancel": (
        m("TransactionId", opt=True),
        m("TransactionStatus", "TransactionStatus", opt=True),
    ),
    "CancelToken": None,
    "GetPrepaidBalance": (m("PrepaidBalance", "PrepaidBalance", opt=True),),
    "GetTotalPrepaidLiability": (
        m("OutstandingPrepaidLiability", "OutstandingPrepaidLiability", opt=True),
    ),
    "GetDebtBalance": (m("DebtBalance", "DebtBalance", opt=True),),
    "GetOutstandingDebtBalance": (m("OutstandingDebt", "OutstandingDebtBalance", opt=True),),
    "GetAccountBalance": (m("AccountBalance", "AccountBalance", opt=True),),
    "GetTransactionStatus": (
        m("TransactionId"),
        m("TransactionStatus", "TransactionStatus"),
        m("CallerReference"),
        m("StatusCode", opt=True),
        m("StatusMessage", opt=True),
    ),
    "GetTransaction": (m("Transaction", "TransactionDetail", opt=True),),
    "GetTokenByCaller": (m("Token", "Token", opt=True),),
    "GetTokens": (m("Token", "Token", opt=True, many=True),),
    "GetTokenUsage": (m("TokenUsageLimits", "TokenUsageLimit", opt=True, many=True),),
    "VerifySignature": (m("VerificationStatus", opt=True),),
    "InstallPaymentInstruction": (m("TokenId"),),
    "GetPaymentInstruction": (
        m("Token", "Token"),
        m("PaymentInstruction"),
        m("CallerReference"),
        m("TokenFriendlyName", opt=True),
    ),
    "GetRecipientVerificationStatus": (
        m("RecipientVerificationStatus", "RecipientVerificationStatus", opt=True),
    ),
    "GetSubscriptionDetails": (m("SubscriptionDetails", "SubscriptionDetails", opt=True),),
    "GetTransactionsForSubscription": (
        m("SubscriptionTransaction", "SubscriptionTransaction", opt=True, many=True),
    ),
    "CancelSubscriptionAndRefund": (m("RefundTransactionId"),),
    "GetAccountActivity": (
        m("BatchSize", "int", opt=True),
        m("Transaction", "Transaction", opt=True, many=True),
        m("StartTimeForNextTransaction", "dateTime", opt=True),
    ),
}


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


Types = dict[str, tuple[Member, ...]]


def _check_value(
    node: ET.Element, type_: str, path: str, namespace: str, types: Types
) -> list[str]:
    here = f"{path}/{_local(node.tag)}"
    problems: list[str] = []
    if not node.tag.startswith(namespace):
        problems.append(f"{here}: not in namespace {namespace}")
    if type_ in types:
        if (node.text or "").strip():
            problems.append(f"{here}: text in a complex element")
        return problems + _check_sequence(node, types[type_], here, namespace, types)
    if len(node):
        problems.append(f"{here}: children in a simple element")
    text = node.text or ""
    if type_ in ENUMS:
        if text not in ENUMS[type_]:
            problems.append(f"{here}: {text!r} is not a {type_}")
    elif not SIMPLE[type_].fullmatch(text):
        problems.append(f"{here}: {text!r} is not a {type_}")
    return problems


def _check_sequence(
    node: ET.Element, members: tuple[Member, ...], path: str, namespace: str, types: Types
) -> list[str]:
    """Problems of ``node``'s children against the XSD sequence ``members``."""
    children = list(node)
    problems: list[str] = []
    index = 0
    for member in members:
        count = 0
        while (
            index < len(children)
            and _local(children[index].tag) == member.name
            and (member.many or count == 0)
        ):
            problems += _check_value(children[index], member.type, path, namespace, types)
            index += 1
            count += 1
        if count == 0 and not member.optional:
            problems.append(f"{path}: {member.name} missing")
    if index < len(children):
        order = [_local(child.tag) for child in children]
        problems.append(f"{path}: {order[index]} out of schema order (children: {order})")
    return problems


def _schema_problems(action: str, version: str, body: bytes) -> list[str]:
    """Problems of a success body against its envelope (§4.1) and Result content (§5)."""
    namespace = f"{{http://fps.amazonaws.com/doc/{version}/}}"
    root = ET.fromstring(body)
    if root.tag != f"{namespace}{action}Response":
        return [f"root is {root.tag}"]
    result = RESULTS[action]
    envelope: tuple[Member, ...] = (
        () if result is None else (m(f"{action}Result", f"{action}Result"),)
    ) + (m("ResponseMetadata", "ResponseMetadata"),)
    types: Types = {
        **TYPES,
        f"{action}Result": result or (),
        "ResponseMetadata": (m("RequestId"),),
    }
    return _check_sequence(root, envelope, _local(root.tag), namespace, types)


SUCCESSES: Final = tuple(step.name for step in STEPS if step.success)
ERRORS: Final = tuple(step.name for step in STEPS if not step.success)


@pytest.mark.parametrize("name", SUCCESSES)
def test_success_follows_the_schema_order(session: Session, name: str) -> None:
    outcome = session.outcomes[name]
    step = outcome.step
    assert _schema_problems(step.action, step.version, outcome.body) == []
    request_id = ET.fromstring(outcome.body).findtext(".//{*}RequestId")
    assert request_id == f"{uuid.uuid5(REQUEST_IDS, name)}:0"


@pytest.mark.parametrize("name", ERRORS)
def test_error_envelope_shape(session: Session, name: str) -> None:
    outcome = session.outcomes[name]
    code = name.split(".error.")[1].split(".", maxsplit=1)[0]
    root = ET.fromstring(outcome.body)
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Errors", "RequestID"]
    assert [child.tag for child in root.iter("Error")] == ["Error"]
    error = root.find("Errors/Error")
    assert error is not None
    assert [child.tag for child in error] == ["Code", "Message"]
    assert error.findtext("Code") == code
    assert error.findtext("Message")
    assert root.findtext("RequestID") == str(uuid.uuid5(REQUEST_IDS, name))
    assert b"\n<Response><Errors><Error><Code>" in outcome.body


def test_the_shape_check_catches_a_reordered_element() -> None:
    good = (
        b'<?xml version="1.0"?>\n<PayResponse xmlns="http://fps.amazonaws.com/doc/2010-08-28/">'
        b"<PayResult><TransactionId>T</TransactionId><TransactionStatus>Success"
        b"</TransactionStatus></PayResult><ResponseMetadata><RequestId>r:0</RequestId>"
        b"</ResponseMetadata></PayResponse>"
    )
    assert _schema_problems("Pay", V2010, good) == []
    swapped = good.replace(
        b"<TransactionId>T</TransactionId><TransactionStatus>Success</TransactionStatus>",
        b"<TransactionStatus>Success</TransactionStatus><TransactionId>T</TransactionId>",
    )
    assert _schema_problems("Pay", V2010, swapped) != []
    bad_enum = good.replace(b">Success<", b">Done<")
    assert _schema_problems("Pay", V2010, bad_enum) != []
