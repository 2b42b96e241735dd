"""The FPS Query API endpoint (``GET /`` and ``POST /``) through Starlette's TestClient.

Every test runs on SQLite and PostgreSQL. Requests are signed with Signature V2 like boto
(GET, ``…:SSZ`` timestamps) or like Amazon's Java library (a POSTed form, millisecond
timestamps, its user agent). Responses are parsed with ``xml.etree`` and checked against the
schema order of spec ``fps-api.md`` §4.4/§5 and against the payments service's own records.
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode

import pytest

from builders import (
    amount_params,
    application,
    fps_timestamp,
    manual_clock,
    new_merchant,
    new_shop,
    open_store,
    postpaid,
    prepaid,
    signed_fps,
    usd,
)
from penny.clock import MICROS_PER_SECOND, ManualClock
from penny.domain.parties import Party, PaymentMethod
from penny.fps.actions import ACTIONS, NOT_SUPPORTED
from penny.fps.decode import MAX_REQUEST_BYTES
from penny.fps.wire import ACTIONS_2010_08_28, fps_amount
from penny.parties import Directory
from penny.services.marketplace import SetupRecipient, issue_recipient_token
from penny.services.payments import (
    InstrumentSetup,
    Payments,
)
from penny.storage.database import Database, open_database
from penny.web.app import create_app

with warnings.catch_warnings():
    # This Starlette prefers the ``httpx2`` fork and warns when it drives plain httpx.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

HOST = "testserver"
NS = "{http://fps.amazonaws.com/doc/2010-08-28/}"
JAVA_AGENT = "Amazon FPS 2010-08-28 Java Library"


def strip(root: ET.Element) -> ET.Element:
    """Drop the namespace from every tag, for short paths in assertions."""
    for node in root.iter():
        node.tag = node.tag.rpartition("}")[2]
    return root


@dataclass
class Reply:
    status: int
    root: ET.Element
    raw: bytes
    content_type: str

    def text(self, path: str) -> str:
        found = self.root.find(path)
        assert found is not None, f"{path} not in {self.raw!r}"
        return found.text or ""

    @property
    def code(self) -> str:
        assert self.root.tag == "Response", self.raw
        return self.text("Errors/Error/Code")

    @property
    def message(self) -> str:
        return self.text("Errors/Error/Message")

    def children(self, path: str) -> list[str]:
        found = self.root.find(path)
        assert found is not None, f"{path} not in {self.raw!r}"
        return [child.tag for child in found]


@dataclass
class World:
    db: Database
    clock: ManualClock
    directory: Directory
    payments: Payments
    client: TestClient
    merchant: Party
    key: str
    secret: str
    other: Party
    other_key: str
    other_secret: str
    buyer: Party
    card: PaymentMethod
    bank: PaymentMethod

    def timestamp(self, millis: bool = False) -> str:
        return fps_timestamp(self.clock.now_us(), millis=millis)

    def signed(
        self, method: str, action: str, params: dict[str, str], *, other: bool = False
    ) -> dict[str, str]:
        key, secret = (self.other_key, self.other_secret) if other else (self.key, self.secret)
        timestamp = self.timestamp(millis=method == "POST")
        return signed_fps(
            action, key, secret, params, method=method, host=HOST, timestamp=timestamp
        )

    def reply(self, response: object) -> Reply:
        raw: bytes = response.content  # type: ignore[attr-defined]
        root = strip(ET.fromstring(raw))
        return Reply(
            response.status_code,  # type: ignore[attr-defined]
            root,
            raw,
            response.headers["content-type"],  # type: ignore[attr-defined]
        )

    def get(self, action: str, **params: str) -> Reply:
        query = urlencode(self.signed("GET", action, params))
        return self.reply(self.client.get("/?" + query))

    def get_other(self, action: str, **params: str) -> Reply:
        """A request signed by the other merchant."""
        query = urlencode(self.signed("GET", action, params, other=True))
        return self.reply(self.client.get("/?" + query))

    def post(self, action: str, **params: str) -> Reply:
        body = urlencode(self.signed("POST", action, params))
        return self.reply(
            self.client.post(
                "/",
                content=body.encode("utf-8"),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                    "User-Agent": JAVA_AGENT,
                },
            )
        )

    def prepaid(self, ref: str = "p", limit: str = "100") -> InstrumentSetup:
        return prepaid(
            self.payments, self.merchant.id, self.buyer.id, self.card.id, ref, limit=limit
        )

    def postpaid(self, ref: str = "c", limit: str = "100") -> InstrumentSetup:
        return postpaid(
            self.payments, self.merchant.id, self.buyer.id, self.card.id, ref, limit=limit
        )

    def fund(self, setup: InstrumentSetup, amount: str, ref: str, *, post: bool = False) -> Reply:
        """FundPrepaid of ``amount`` on ``setup``'s instrument (a GET, or a Java-style POST)."""
        return (self.post if post else self.get)(
            "FundPrepaid",
            SenderTokenId=setup.second_token.id,
            PrepaidInstrumentId=setup.instrument.id,
            CallerReference=ref,
            **amount_params("FundingAmount", amount),
        )

    def pay(
        self, setup: InstrumentSetup, amount: str, ref: str, *, post: bool = False, **more: str
    ) -> Reply:
        """Pay ``amount`` with ``setup``'s sender token (a GET, or a Java-style POST)."""
        return (self.post if post else self.get)(
            "Pay",
            SenderTokenId=setup.sender_token.id,
            CallerReference=ref,
            **more,
            **amount_params("TransactionAmount", amount),
        )


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    services = open_store(database_url)
    clock = manual_clock(services)
    shop = new_shop(services)
    assert shop.bank is not None
    app = application(services, request_clock=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(
            db=services.database,
            clock=clock,
            directory=services.directory,
            payments=services.payments,
            client=client,
            merchant=shop.merchant.party,
            key=shop.merchant.access_key,
            secret=shop.merchant.secret,
            other=shop.other.party,
            other_key=shop.other.access_key,
            other_secret=shop.other.secret,
            buyer=shop.buyer,
            card=shop.card,
            bank=shop.bank,
        )
    assert services.ledger.audit().ok
    services.database.dispose()


def amount_of(reply: Reply, path: str) -> str:
    assert reply.children(path) == ["CurrencyCode", "Value"]
    assert reply.text(f"{path}/CurrencyCode") == "USD"
    return reply.text(f"{path}/Value")


def success(reply: Reply, action: str) -> None:
    assert reply.status == 200, reply.raw
    assert reply.root.tag == f"{action}Response", reply.raw
    assert reply.raw.startswith(b'<?xml version="1.0"?>\n<' + action.encode() + b'Response xmlns="')
    assert reply.text("ResponseMetadata/RequestId").endswith(":0")
    assert reply.content_type.startswith("text/xml")


def result_names(reply: Reply, action: str, element: str | None = None) -> list[str]:
    """The names of the elements in a successful ``action`` answer's result (or in its
    ``element``), in document order."""
    success(reply, action)
    return reply.children(f"{action}Result" if element is None else f"{action}Result/{element}")


def amounts(reply: Reply, action: str, element: str) -> list[tuple[str, str]]:
    """The balances in ``element`` of a successful ``action`` answer's result: each one's
    name and amount (US dollars), in document order."""
    path = f"{action}Result/{element}"
    names = result_names(reply, action, element)
    return [(name, amount_of(reply, f"{path}/{name}")) for name in names]


def test_every_action_is_served_or_refused_as_not_supported() -> None:
    assert set(ACTIONS) | NOT_SUPPORTED == ACTIONS_2010_08_28
    assert not set(ACTIONS) & NOT_SUPPORTED


def test_all_27_actions_of_the_wsdl_are_served() -> None:
    """Since #19 (subscriptions) no action of the 2010-08-28 WSDL answers InvalidAction."""
    assert set(ACTIONS) == ACTIONS_2010_08_28
    assert len(ACTIONS) == 27
    assert not NOT_SUPPORTED


# -- FundPrepaid, Pay, GetPrepaidBalance ---------------------------------------------------


def test_fund_prepaid_pay_and_prepaid_balance(world: World) -> None:
    setup = world.prepaid()
    funded = world.fund(setup, "10", "fund-1")
    assert result_names(funded, "FundPrepaid") == ["TransactionId", "TransactionStatus"]
    assert world.clock.now_us() > 0
    assert funded.text("FundPrepaidResult/TransactionStatus") == "Success"
    fund_id = funded.text("FundPrepaidResult/TransactionId")
    assert len(fund_id) == 35
    assert world.payments.transaction(world.merchant.id, fund_id).amount == 1000

    paid = world.pay(setup, "2.50", "pay-1")
    assert result_names(paid, "Pay") == ["TransactionId", "TransactionStatus"]
    assert paid.text("PayResult/TransactionStatus") == "Success"

    balance = world.get("GetPrepaidBalance", PrepaidInstrumentId=setup.instrument.id)
    assert amounts(balance, "GetPrepaidBalance", "PrepaidBalance") == [
        ("AvailableBalance", "7.500000"),
        ("PendingInBalance", "0.000000"),
    ]


def test_java_style_post_is_served(world: World) -> None:
    setup = world.prepaid()
    success(world.fund(setup, "5.00", "fund-post", post=True), "FundPrepaid")
    paid = world.pay(setup, "1", "pay-post", post=True, SenderDescription="a b&c=d ☕")
    success(paid, "Pay")
    txn = world.payments.transaction(world.merchant.id, paid.text("PayResult/TransactionId"))
    assert txn.sender_description == "a b&c=d ☕"


def test_same_caller_reference_is_idempotent_and_other_content_is_duplicate(
    world: World,
) -> None:
    setup = world.prepaid()
    first = world.fund(setup, "10", "fund-1")
    again = world.fund(setup, "10", "fund-1")
    assert again.text("FundPrepaidResult/TransactionId") == first.text(
        "FundPrepaidResult/TransactionId"
    )
    other = world.fund(setup, "11", "fund-1")
    assert (other.status, other.code) == (400, "DuplicateRequest")
    assert other.raw.startswith(b'<?xml version="1.0"?>\n<Response><Errors><Error><Code>')
    assert other.text("RequestID")
    assert not other.text("RequestID").endswith(":0")


def test_pay_refusals(world: World) -> None:
    setup = world.prepaid()
    world.fund(setup, "1", "fund-1")
    over = world.pay(setup, "2", "pay-1")
    assert (over.status, over.code) == (400, "InsufficientBalance")
    unknown = world.get(
        "Pay",
        SenderTokenId="NOSUCHTOKEN",
        CallerReference="pay-2",
        **{"TransactionAmount.Value": "1"},
    )
    assert unknown.code == "InvalidTokenId_Sender"
    # Another merchant's token is the same as no token at all.
    theirs = world.get_other(
        "Pay",
        SenderTokenId=setup.sender_token.id,
        CallerReference="pay-3",
        **{"TransactionAmount.Value": "0.5"},
    )
    assert theirs.code == unknown.code
    assert theirs.message == unknown.message


@pytest.mark.parametrize(
    ("params", "code", "words"),
    [
        (
            {"CallerReference": "r", "TransactionAmount.Value": "1"},
            "MissingParameter",
            "SenderTokenId",
        ),
        (
            {"SenderTokenId": "T", "TransactionAmount.Value": "1"},
            "MissingParameter",
            "CallerReference",
        ),
        (
            {"SenderTokenId": "T", "CallerReference": "r"},
            "MissingParameter",
            "TransactionAmount.Value",
        ),
        (
            {"SenderTokenId": "T", "CallerReference": "r", "TransactionAmount.Value": "1.001"},
            "InvalidParams",
            "TransactionAmount.Value",
        ),
        (
            {"SenderTokenId": "T", "CallerReference": "r", "TransactionAmount.Value": "-1"},
            "InvalidParams",
            "TransactionAmount.Value",
        ),
        (
            {
                "SenderTokenId": "T",
                "CallerReference": "r",
                "TransactionAmount.Value": "1",
                "TransactionAmount.CurrencyCode": "EUR",
            },
            "InvalidParams",
            "USD",
        ),
        (
            {
                "SenderTokenId": "T",
                "CallerReference": "r",
                "TransactionAmount.Value": "1",
                "recipient_token_id": "x",
            },
            "InvalidRequest",
            "recipient_token_id",
        ),
        (
            {
                "SenderTokenId": "T",
                "CallerReference": "r",
                "TransactionAmount.Value": "1",
                "RecipientTokenId": "x",
            },
            "InvalidParams",
            "RecipientTokenId",
        ),
        (
            {"SenderTokenId": "T", "CallerReference": "r" * 129, "TransactionAmount.Value": "1"},
            "InvalidParams",
            "CallerReference",
        ),
    ],
)
def test_pay_parameter_errors(world: World, params: dict[str, str], code: str, words: str) -> None:
    reply = world.get("Pay", **params)
    assert (reply.status, reply.code) == (400, code)
    assert words in reply.message


def test_a_negative_amount_is_said_to_be_negative(world: World) -> None:
    """``-1.00`` is a plain decimal number: the answer says it must be positive instead."""
    setup = world.prepaid()
    for reply, name in (
        (world.pay(setup, "-1.00", "neg-pay"), "TransactionAmount"),
        (world.fund(setup, "-0.01", "neg-fund"), "FundingAmount"),
    ):
        assert (reply.status, reply.code) == (400, "InvalidParams")
        value = "-1.00" if name == "TransactionAmount" else "-0.01"
        assert reply.message == (
            f"{name}.Value is invalid: amount '{value}' is negative: it must be positive."
        )


def test_authentication_and_envelope_errors(world: World) -> None:
    params = world.signed("GET", "GetAccountBalance", {})
    bad = {**params, "Signature": "AAAA" + params["Signature"][4:]}
    reply = world.reply(world.client.get("/?" + urlencode(bad)))
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch")
    assert params["Signature"] not in reply.message
    unknown_key = world.signed("GET", "GetAccountBalance", {})
    unknown_key["AWSAccessKeyId"] = "NOSUCHKEY"
    reply = world.reply(world.client.get("/?" + urlencode(unknown_key)))
    assert (reply.status, reply.code) == (403, "InvalidClientTokenId")
    missing = {k: v for k, v in params.items() if k != "Signature"}
    reply = world.reply(world.client.get("/?" + urlencode(missing)))
    assert (reply.status, reply.code) == (400, "MissingParameter")
    reply = world.get("NoSuchAction")
    assert reply.code == "InvalidAction"
    reply = world.get("GetSubscriptionDetails", SubscriptionId="S")  # served since #19
    assert (reply.status, reply.code) == (400, "InvalidParams")
    assert "Recurring token" in reply.message
    reply = world.reply(world.client.put("/"))
    assert (reply.status, reply.code) == (405, "InvalidRequest")
    reply = world.reply(
        world.client.post(
            "/",
            content=b"a=" + b"x" * MAX_REQUEST_BYTES,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    )
    assert (reply.status, reply.code) == (413, "InvalidRequest")


def test_stale_timestamp_is_refused(world: World) -> None:
    params = world.signed("GET", "GetAccountBalance", {})
    world.clock.advance(3600 * MICROS_PER_SECOND)
    reply = world.reply(world.client.get("/?" + urlencode(params)))
    assert reply.code == "RequestExpired"


def test_unexpected_exception_is_internal_error_503(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(Payments, "account_balance", boom)
    reply = world.get("GetAccountBalance")
    assert (reply.status, reply.code) == (503, "InternalError")
    assert "boom" not in reply.message


# -- the other actions ---------------------------------------------------------------------


def test_postpaid_settle_write_off_and_debt_balances(world: World) -> None:
    setup = world.postpaid()
    paid = world.pay(setup, "30", "pay-1")
    assert paid.text("PayResult/TransactionStatus") == "Success"

    debt = world.get("GetDebtBalance", CreditInstrumentId=setup.instrument.id)
    assert amounts(debt, "GetDebtBalance", "DebtBalance") == [
        ("AvailableBalance", "30.000000"),
        ("PendingOutBalance", "0.000000"),
    ]

    settled = world.get(
        "SettleDebt",
        SenderTokenId=setup.second_token.id,
        CreditInstrumentId=setup.instrument.id,
        CallerReference="settle-1",
        **amount_params("SettlementAmount", "10"),
    )
    assert result_names(settled, "SettleDebt") == ["TransactionId", "TransactionStatus"]
    written = world.get(
        "WriteOffDebt",
        CreditInstrumentId=setup.instrument.id,
        CallerReference="write-off-1",
        **{"AdjustmentAmount.Value": "5"},
    )
    success(written, "WriteOffDebt")
    assert written.text("WriteOffDebtResult/TransactionStatus") == "Success"

    debt = world.get("GetDebtBalance", CreditInstrumentId=setup.instrument.id)
    assert amounts(debt, "GetDebtBalance", "DebtBalance") == [
        ("AvailableBalance", "15.000000"),
        ("PendingOutBalance", "0.000000"),
    ]
    outstanding = world.get("GetOutstandingDebtBalance")
    assert amounts(outstanding, "GetOutstandingDebtBalance", "OutstandingDebt") == [
        ("OutstandingBalance", "15.000000"),
        ("PendingOutBalance", "0.000000"),
    ]

    too_much = world.get(
        "WriteOffDebt",
        CreditInstrumentId=setup.instrument.id,
        CallerReference="write-off-2",
        **{"AdjustmentAmount.Value": "16"},
    )
    assert too_much.code == "SettleAmountGreaterThanDebt"
    theirs = world.get_other("GetDebtBalance", CreditInstrumentId=setup.instrument.id)
    assert theirs.code == "InstrumentAccessDenied"
    none = world.get("GetDebtBalance", CreditInstrumentId="NOSUCH")
    assert (none.code, none.message) == (theirs.code, theirs.message)
    missing = world.get("GetDebtBalance")
    assert missing.code == "MissingParameter"


def test_total_prepaid_liability_and_account_balance(world: World) -> None:
    setup = world.prepaid()
    world.fund(setup, "10", "fund-1")
    world.pay(setup, "4", "pay-1")
    liability = world.get("GetTotalPrepaidLiability")
    assert amounts(liability, "GetTotalPrepaidLiability", "OutstandingPrepaidLiability") == [
        ("OutstandingBalance", "6.000000"),
        ("PendingInBalance", "0.000000"),
    ]

    balance = world.get("GetAccountBalance")
    path = "GetAccountBalanceResult/AccountBalance"
    assert result_names(balance, "GetAccountBalance", "AccountBalance") == [
        "TotalBalance",
        "PendingInBalance",
        "PendingOutBalance",
        "AvailableBalances",
    ]
    assert balance.children(f"{path}/AvailableBalances") == ["DisburseBalance", "RefundBalance"]
    expected = world.payments.account_balance(world.merchant.id)
    assert amount_of(balance, f"{path}/TotalBalance") == fps_amount(expected.total)
    assert amount_of(balance, f"{path}/AvailableBalances/DisburseBalance") == fps_amount(
        expected.disburse
    )
    theirs = world.get_other("GetAccountBalance")
    assert amount_of(theirs, f"{path}/TotalBalance") == "0.000000"
    unknown = world.get("GetAccountBalance", Extra="1")
    assert unknown.code == "InvalidRequest"


def test_refund_and_transaction_queries(world: World) -> None:
    setup = world.prepaid()
    world.fund(setup, "10", "fund-1")
    paid = world.pay(setup, "4", "pay-1")
    pay_id = paid.text("PayResult/TransactionId")

    refunded = world.get(
        "Refund",
        TransactionId=pay_id,
        CallerReference="refund-1",
        **amount_params("RefundAmount", "1.50"),
    )
    assert result_names(refunded, "Refund") == ["TransactionId", "TransactionStatus"]
    refund_id = refunded.text("RefundResult/TransactionId")

    too_much = world.get(
        "Refund", TransactionId=pay_id, CallerReference="refund-2", **{"RefundAmount.Value": "3"}
    )
    assert too_much.code == "RefundAmountExceeded"
    rest = world.get("Refund", TransactionId=pay_id, CallerReference="refund-3")
    assert rest.text("RefundResult/TransactionStatus") == "Success"

    status = world.get("GetTransactionStatus", TransactionId=pay_id)
    assert result_names(status, "GetTransactionStatus") == [
        "TransactionId",
        "TransactionStatus",
        "CallerReference",
        "StatusCode",
        "StatusMessage",
    ]
    assert status.text("GetTransactionStatusResult/CallerReference") == "pay-1"
    assert status.text("GetTransactionStatusResult/StatusCode") == "Success"

    detail = world.get("GetTransaction", TransactionId=pay_id)
    success(detail, "GetTransaction")
    txn = "GetTransactionResult/Transaction"
    children = detail.children(txn)
    order = [
        "TransactionId",
        "CallerReference",
        "DateReceived",
        "DateCompleted",
        "TransactionAmount",
        "FPSFees",
        "FPSFeesPaidBy",
        "SenderTokenId",
        "PrepaidInstrumentId",
        "FPSOperation",
        "PaymentMethod",
        "TransactionStatus",
        "StatusCode",
        "StatusMessage",
        "SenderName",
        "SenderEmail",
        "CallerName",
        "RecipientName",
        "RecipientEmail",
        "RelatedTransaction",
        "RelatedTransaction",
        "StatusHistory",
    ]
    assert children == order
    assert detail.text(f"{txn}/SenderEmail") == "bea@example.com"
    assert detail.text(f"{txn}/RecipientEmail") == "shop@example.com"
    assert detail.text(f"{txn}/FPSOperation") == "Pay"
    assert detail.text(f"{txn}/PaymentMethod") == "Prepaid"
    assert detail.text(f"{txn}/PrepaidInstrumentId") == setup.instrument.id
    assert detail.text(f"{txn}/CallerName") == "DigitalDownload"
    assert detail.text(f"{txn}/SenderName") == "Bea Buyer"
    assert amount_of(detail, f"{txn}/TransactionAmount") == "4.000000"
    assert detail.text(f"{txn}/RelatedTransaction/TransactionId") == refund_id
    assert detail.text(f"{txn}/RelatedTransaction/RelationType") == "Refund"
    assert detail.children(f"{txn}/StatusHistory") == [
        "Date",
        "TransactionStatus",
        "StatusCode",
        "Amount",
    ]
    assert detail.text(f"{txn}/DateReceived").endswith("+00:00")

    refund_detail = world.get("GetTransaction", TransactionId=refund_id)
    rel = "GetTransactionResult/Transaction/RelatedTransaction"
    assert refund_detail.text(f"{rel}/TransactionId") == pay_id
    assert refund_detail.text(f"{rel}/RelationType") == "Parent"

    for action in ("GetTransaction", "GetTransactionStatus"):
        theirs = world.get_other(action, TransactionId=pay_id)
        unknown = world.get(action, TransactionId="NOSUCH")
        assert theirs.code == unknown.code == "InvalidTransactionId"
        assert theirs.message == unknown.message


def test_tokens(world: World) -> None:
    setup = world.prepaid()
    world.fund(setup, "10", "fund-1")
    world.pay(setup, "1", "pay-1")

    by_id = world.get("GetTokenByCaller", TokenId=setup.sender_token.id)
    token = "GetTokenByCallerResult/Token"
    assert result_names(by_id, "GetTokenByCaller", "Token")[:6] == [
        "TokenId",
        "FriendlyName",
        "TokenStatus",
        "DateInstalled",
        "CallerReference",
        "TokenType",
    ]
    assert by_id.text(f"{token}/TokenStatus") == "Active"
    assert by_id.text(f"{token}/CallerReference") == "p-sender"
    by_ref = world.get("GetTokenByCaller", CallerReference="p-funding")
    assert by_ref.text(f"{token}/TokenId") == setup.second_token.id
    both = world.get("GetTokenByCaller", CallerReference="p-funding", TokenId="x")
    assert both.code == "InvalidParams"
    nothing = world.get("GetTokenByCaller", CallerReference="nope")
    assert nothing.code == "InvalidCallerReference"
    theirs = world.get_other("GetTokenByCaller", TokenId=setup.sender_token.id)
    assert theirs.code == "InvalidTokenId_Sender"

    tokens = world.get("GetTokens")
    success(tokens, "GetTokens")
    ids = {node.text for node in tokens.root.iter("TokenId")}
    assert ids == {setup.sender_token.id, setup.second_token.id}
    assert world.get_other("GetTokens").children("GetTokensResult") == []
    single = world.get("GetTokens", TokenType="SingleUse")
    assert single.children("GetTokensResult") == []

    usage = world.get("GetTokenUsage", TokenId=setup.sender_token.id)
    success(usage, "GetTokenUsage")
    limits = usage.root.findall("GetTokenUsageResult/TokenUsageLimits")
    assert [limit.findtext("Count") for limit in limits] == ["1", None]
    value = limits[1].find("Amount/Value")
    assert value is not None
    assert value.text == "1.000000"

    cancelled = world.get("CancelToken", TokenId=setup.sender_token.id, ReasonText="bye")
    success(cancelled, "CancelToken")
    assert [child.tag for child in cancelled.root] == ["ResponseMetadata"]
    after = world.get("GetTokens", TokenStatus="Inactive")
    assert [node.text for node in after.root.iter("TokenId")] == [setup.sender_token.id]
    refused = world.pay(setup, "1", "pay-2")
    assert refused.code == "TokenNotActive_Sender"
    theirs_cancel = world.get_other("CancelToken", TokenId=setup.second_token.id)
    assert theirs_cancel.code == "InvalidTokenId_Sender"


def test_account_activity(world: World) -> None:
    start = world.timestamp()
    setup = world.prepaid()
    world.fund(setup, "10", "fund-1")
    world.clock.advance(MICROS_PER_SECOND)
    world.pay(setup, "1", "pay-1")
    world.clock.advance(MICROS_PER_SECOND)
    world.pay(setup, "2", "pay-2")
    world.clock.advance(MICROS_PER_SECOND)

    page = world.get("GetAccountActivity", StartDate=start, MaxBatchSize="2")
    assert result_names(page, "GetAccountActivity") == [
        "BatchSize",
        "Transaction",
        "Transaction",
        "StartTimeForNextTransaction",
    ]
    assert page.text("GetAccountActivityResult/BatchSize") == "2"
    first = page.root.find("GetAccountActivityResult/Transaction")
    assert first is not None
    assert [child.tag for child in first][:6] == [
        "TransactionId",
        "CallerTransactionDate",
        "DateReceived",
        "DateCompleted",
        "TransactionAmount",
        "FPSOperation",
    ]
    assert first.findtext("FPSOperation") == "Pay"  # newest first by default
    assert first.findtext("TransactionAmount/Value") == "2.000000"

    ascending = world.get(
        "GetAccountActivity",
        StartDate=start[:10],
        SortOrderByDate="Ascending",
        FPSOperation="Pay",
        **{"Role.1": "Caller"},
    )
    ops = [node.findtext("TransactionAmount/Value") for node in ascending.root.iter("Transaction")]
    assert ops == ["1.000000", "2.000000"]
    assert ascending.root.find("GetAccountActivityResult/StartTimeForNextTransaction") is None

    bad = world.get("GetAccountActivity", StartDate="yesterday")
    assert bad.code == "InvalidParams"
    backwards = world.get("GetAccountActivity", StartDate=start, EndDate="2000-01-01")
    assert backwards.code == "InvalidDateRange"
    assert world.get("GetAccountActivity").code == "MissingParameter"
    assert (
        world.get_other("GetAccountActivity", StartDate=start).text(
            "GetAccountActivityResult/BatchSize"
        )
        == "0"
    )


def test_version_2008_09_17_answers_in_its_namespace(world: World) -> None:
    params = world.signed("GET", "GetAccountBalance", {"Version": "2008-09-17"})
    response = world.client.get("/?" + urlencode(params))
    assert response.status_code == 200
    assert b'<GetAccountBalanceResponse xmlns="http://fps.amazonaws.com/doc/2008-09-17/">' in (
        response.content
    )
    params = world.signed("GET", "GetSubscriptionDetails", {"Version": "2008-09-17"})
    reply = world.reply(world.client.get("/?" + urlencode(params)))
    assert reply.code == "InvalidAction"


def test_request_timestamps_use_real_time_when_the_sandbox_clock_moved(database_url: str) -> None:
    """Clients sign with their real clock, even after the sandbox clock was advanced."""
    sandbox = ManualClock(start_us=4_000_000_000 * MICROS_PER_SECOND)
    services = open_store(database_url, clock=sandbox)
    api_key = new_merchant(services)
    params = signed_fps("GetAccountBalance", api_key.access_key, api_key.secret, host=HOST)
    with TestClient(application(services)) as client:
        response = client.get("/?" + urlencode(params))
        assert response.status_code == 200, response.content
        assert client.get("/healthz").json()["status"] == "ok"
    services.database.dispose()


def test_default_app_serves_xml_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``penny serve`` builds the app with no options: sandbox clock, key file next to SQLite."""
    monkeypatch.delenv("PENNY_SECRET_KEY", raising=False)
    monkeypatch.delenv("PENNY_SECRET_KEY_FILE", raising=False)
    db = open_database("sqlite:///" + str(tmp_path / "penny.db"))
    with TestClient(create_app(db)) as client:
        response = client.get("/?Action=Pay")
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/xml")
        root = ET.fromstring(response.content)
        assert root.findtext("Errors/Error/Code") == "MissingParameter"
        assert client.get("/healthz").status_code == 200
    assert (tmp_path / "penny-secret.key").exists()
    db.dispose()


def test_a_zero_amount_names_its_parameter(world: World) -> None:
    setup = world.prepaid()
    for reply, name, value in (
        (world.pay(setup, "0.00", "zero-pay"), "TransactionAmount", "0.00"),
        (world.fund(setup, "0", "zero-fund"), "FundingAmount", "0"),
    ):
        assert (reply.status, reply.code) == (400, "InvalidParams")
        assert reply.message == (
            f"{name}.Value is invalid: amount '{value}' is zero: it must be positive."
        )


def test_an_access_key_id_with_a_nul_is_refused_before_any_lookup(world: World) -> None:
    """Found by the fuzz test: the server's early key lookup once sent such an id to the
    database (PostgreSQL refuses NUL in text, and the answer was a 503)."""
    for key_id in ("PNY\x00KEY", "x" * 65, "bad key"):
        query = urlencode({"Action": "GetAccountBalance", "AWSAccessKeyId": key_id})
        reply = world.reply(world.client.get("/?" + query))
        assert reply.status < 500, (key_id, reply)
        assert reply.code in ("InvalidRequest", "MissingParameter", "InvalidClientTokenId")


def test_cancel_token_on_a_recipient_token(world: World) -> None:
    """CancelToken cancels a Recipient pipeline's token (#19): a later marketplace Pay naming
    it is TokenNotActive_Recipient; the recipient may cancel its own consent too."""
    setup = world.prepaid()
    world.fund(setup, "10", "fund-1")
    consent = SetupRecipient(world.merchant.id, world.other.id, "r1", usd("1"), 1000, True)
    token = issue_recipient_token(world.payments, consent)
    fees = amount_params("MarketplaceFixedFee", "0.10")
    amount = amount_params("TransactionAmount", "1")
    sender = setup.sender_token.id
    paid = world.get("Pay", SenderTokenId=sender, RecipientTokenId=token.id, CallerReference="m1",
                     **amount, **fees)  # fmt: skip
    success(paid, "Pay")
    success(world.get("CancelToken", TokenId=token.id), "CancelToken")
    success(world.get("CancelToken", TokenId=token.id), "CancelToken")  # twice is harmless
    refused = world.get("Pay", SenderTokenId=sender, RecipientTokenId=token.id,
                        CallerReference="m2", **amount)  # fmt: skip
    assert refused.code == "TokenNotActive_Recipient"
    second = issue_recipient_token(world.payments, replace(consent, caller_reference="r2"))
    success(world.get_other("CancelToken", TokenId=second.id), "CancelToken")
    assert world.get_other("CancelToken", TokenId="NOSUCHTOKEN").code == "InvalidTokenId_Sender"
