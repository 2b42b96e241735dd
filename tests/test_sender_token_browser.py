"""The SingleUse, MultiUse, Recurring and EditToken pipelines (issue #19) end to end in headless
Chromium (Playwright), against a real server on 127.0.0.1 and a merchant's return-URL receiver, on
SQLite and PostgreSQL.

Each flow: the signed start, sign in (or a new account), the buyer picks a card, a bank
account or the balance, the review shows the token's terms (checked with axe-core: no
violations), confirm, the signed return (verified with VerifySignature) carries SC/SB/SA and
``tokenID``, and the merchant pays with the token over the FPS API. Screenshots of the review
pages go to ``test-artifacts/screenshots/`` (the SQLite run).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from builders import amount_params, top_up_balance
from cobranded_browser_support import BrowserFlow, running_flow
from cobranded_support import (
    BUYER_PASSWORD,
    fps_text,
    make_world,
    start_params,
)

BEA = "bea@example.com"
"""The buyer's sign-in: she has a card, a bank account and (for Recurring) a balance."""


class Flow(BrowserFlow):
    def params(self, pipeline: str, ref: str, **more: str) -> dict[str, str]:
        return start_params(
            self.world,
            pipeline,
            self.shop.url,
            **{
                "callerReference": ref,
                "websiteDescription": "the Game Shop",
                **more,
            },
        )

    def start_and_choose(self, params: dict[str, str], label: str) -> None:
        """Starts the pipeline, signs in as Bea (the fixture's buyer) and picks the payment
        method ``label``: the review page."""
        self.start(params)
        self.heading_is("Sign in to authorize this payment")
        self.check_axe()
        self.sign_in(BEA)
        self.heading_is("How will you pay?")
        self.choose(label)

    def choose(self, label: str) -> None:
        super().choose(label)
        self.heading_is("Review and confirm")

    def review(self, shot: str, *texts: str) -> None:
        self.shows(*texts)
        self.shot(shot)

    def pay(self, token: str, amount: str, ref: str) -> ET.Element:
        return self.server.fps(
            "Pay",
            SenderTokenId=token,
            CallerReference=ref,
            **amount_params("TransactionAmount", amount),
        )


@pytest.fixture
def flow(browser: Browser, axe: str, database_url: str) -> Iterator[Flow]:
    world = make_world(database_url)
    buyer = world.directory.create_personal("Bea Buyer", BEA, BUYER_PASSWORD)
    world.directory.add_card(buyer.id, "4111 1111 1111 1111", 12, 2030)
    world.directory.add_bank(buyer.id, "110000000", "000123456789")
    with running_flow(Flow, browser, axe, world, database_url) as flow:
        yield flow


def _status(answer: ET.Element) -> str:
    return fps_text(answer, "TransactionStatus")


def _error(answer: ET.Element) -> str:
    return fps_text(answer, "Code")


def test_single_use_by_card(flow: Flow) -> None:
    params = flow.params("SingleUse", "single-1", transactionAmount="4.99", paymentReason="Game")
    flow.start_and_choose(params, "Visa •••• 1111, expires 12/2030")
    flow.review("review-single-use", "one payment", "$4.99 USD", "for 3 hours", "•••• 1111", "Game")
    got = flow.confirm()
    assert got["status"] == "SC"
    assert got["callerReference"] == "single-1"
    assert _status(flow.pay(got["tokenID"], "4.99", "pay-1")) == "Pending"
    assert _error(flow.pay(got["tokenID"], "1", "pay-2")) == "SameTokenIdUsedMultipleTimes"


def test_multi_use_by_bank_with_limits(flow: Flow) -> None:
    params = flow.params(
        "MultiUse",
        "multi-1",
        globalAmountLimit="100",
        transactionAmount="10",
        amountType="Maximum",
        usageLimitType1="Count",
        usageLimitValue1="2",
        usageLimitPeriod1="1 Day",
    )
    flow.start_and_choose(params, "Bank account •••• 6789")
    flow.review(
        "review-multi-use",
        "several payments",
        "Each payment up to",
        "$100.00 USD",
        "at most 2 payments every 1 Day",
    )
    got = flow.confirm()
    assert got["status"] == "SB"
    token = got["tokenID"]
    assert _status(flow.pay(token, "10", "pay-1")) == "Pending"
    assert _error(flow.pay(token, "10.01", "pay-2")) == "TransactionDenied"  # over the maximum
    assert _status(flow.pay(token, "5", "pay-3")) == "Pending"
    assert _error(flow.pay(token, "5", "pay-4")) == "TokenUsageError"


def test_recurring_by_balance_then_cancel_is_a(flow: Flow) -> None:
    params = flow.params("Recurring", "sub-1", transactionAmount="9.99", recurringPeriod="1 Month")
    bea = flow.world.directory.party_by_email(BEA)
    assert bea is not None
    # An empty balance cannot be picked for a $9.99 payment (#16): give it the $9.99.
    top_up_balance(flow.world.payments, bea, 999)
    flow.start_and_choose(params, "Penny balance")
    flow.review("review-recurring", "a recurring payment", "once every 1 Month", "$9.99 USD")
    got = flow.confirm()
    assert got["status"] == "SA"
    # The balance pays the first $9.99 and is then empty.
    assert _status(flow.pay(got["tokenID"], "9.99", "pay-1")) == "Success"
    assert flow.world.payments.account_balance(bea.id).total.minor == 0
    # Signed in already, the next pipeline opens on the methods; the buyer cancels it (A).
    flow.start(flow.params("Recurring", "sub-2", transactionAmount="1", recurringPeriod="7 Days"))
    flow.page.get_by_role("button", name="Cancel and return to the Game Shop").click()
    flow.heading_is("Thanks, back at the shop")
    _, back = flow.shop.last()
    assert back["status"] == "A"
    assert back["callerReference"] == "sub-2"


def test_edit_token_changes_a_multi_use_token(flow: Flow) -> None:
    """EditToken (#19): the merchant asks for new limits on a MultiUse token; the buyer (signed
    in already) picks another method, reviews the new terms and confirms; the return carries
    the new token, the old one is refused, and FPS Pay obeys the new limits."""
    params = flow.params(
        "MultiUse",
        "multi-1",
        globalAmountLimit="20",
        usageLimitType1="Count",
        usageLimitValue1="3",
        usageLimitPeriod1="1 Day",
    )
    flow.start_and_choose(params, "Visa •••• 1111, expires 12/2030")
    old = flow.confirm()["tokenID"]
    assert _status(flow.pay(old, "5", "pay-1")) == "Pending"
    assert _status(flow.pay(old, "5", "pay-2")) == "Pending"
    edit = flow.params(
        "EditToken",
        "edit-1",
        tokenId=old,
        globalAmountLimit="15",
        transactionAmount="4",
        amountType="Maximum",
        paymentMethod="CC,ACH",
    )
    flow.start(edit)
    flow.heading_is("How will you pay?")
    flow.check_axe()
    flow.choose("Bank account •••• 6789")
    flow.review(
        "review-edit-token",
        f"your authorization {old}",
        "$15.00 USD",
        "Each payment up to",
        "at most 3 payments every 1 Day",
        "These terms replace those of the authorization named above",
    )
    got = flow.confirm()
    assert got["status"] == "SB"
    assert got["callerReference"] == "edit-1"
    new = got["tokenID"]
    assert new != old
    assert _error(flow.pay(old, "1", "pay-3")) == "TokenNotActive_Sender"
    assert _error(flow.pay(new, "5", "pay-4")) == "TransactionDenied"  # at most $4 now
    assert _status(flow.pay(new, "4", "pay-5")) == "Pending"
    assert _error(flow.pay(new, "1", "pay-6")) == "TokenUsageError"  # the 4th payment today
