"""The Co-Branded UI end to end in headless Chromium (Debian's ``chromium``, driven by
Playwright), against a real server on 127.0.0.1 and a merchant's return-URL receiver, on SQLite
and PostgreSQL.

Flows: prepaid (new buyer account, card, confirm, return verified with VerifySignature, then
FundPrepaid and Pay), postpaid (existing buyer, Pay and SettleDebt), a declined card (then the
buyer's balance: SA), a cancelled flow (A, nothing created), a tampered start URL (refused, no
redirect), an expired validity (CE on the return URL) and a bank account (SB; its funding stays
pending until ``penny sandbox advance --days 4``).

Screenshots of every page at 360 px and at 1280 px are written to
``test-artifacts/screenshots/`` (the SQLite run) for reviewers.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect
from typer.testing import CliRunner

from builders import amount_params, top_up_balance
from cobranded_browser_support import BrowserFlow, running_flow
from cobranded_support import (
    BUYER_PASSWORD,
    fps_text,
    make_world,
    postpaid_params,
    prepaid_params,
)
from penny.cli.main import app as cli_app


class Flow(BrowserFlow):
    """One buyer in one browser context (phone width), with the live server and receiver."""

    def register(self, name: str, email: str) -> None:
        self.page.get_by_role("link", name="Create a sandbox buyer account").click()
        self.heading_is("Create a sandbox buyer account")
        self.shot("register")
        self.fill_register(name, email, BUYER_PASSWORD, BUYER_PASSWORD)
        self.heading_is("How will you pay?")

    def fill_register(self, name: str, email: str, password: str, again: str) -> None:
        """Fill the register form and send it."""
        self.page.get_by_label("Your name").fill(name)
        self.page.get_by_label("Email address").fill(email)
        self.page.get_by_label("Password (at least 8 characters)").fill(password)
        self.page.get_by_label("Password again").fill(again)
        self.page.get_by_role("button", name="Create account").click()

    def add_card(self, number: str, expiry: str = "12/2030") -> None:
        self.page.get_by_label("Card number").fill(number)
        self.page.get_by_label("Expiry (MM/YYYY)").fill(expiry)
        self.page.get_by_role("button", name="Add card").click()
        self.heading_is("How will you pay?")


@pytest.fixture
def flow(browser: Browser, axe: str, database_url: str) -> Iterator[Flow]:
    with running_flow(Flow, browser, axe, make_world(database_url), database_url) as flow:
        yield flow


def _at(root: ET.Element, path: str) -> str:
    found = root.find(path)
    assert found is not None, ET.tostring(root)
    return found.text or ""


def test_prepaid_flow_new_buyer_card_then_fund_and_pay(flow: Flow) -> None:
    params = prepaid_params(flow.world, flow.shop.url, websiteDescription="the Game Shop")
    flow.start(params)
    flow.heading_is("Sign in to authorize this payment")
    expect(flow.page.locator(".summary")).to_contain_text("$25.00 USD")
    flow.shot("signin")
    flow.register("Bea Buyer", "bea@example.com")
    # A new buyer's balance is $0.00: shown with what it can pay, but it cannot be picked.
    expect(flow.page.locator("#amount")).to_contain_text("$25.00 USD")
    expect(flow.page.get_by_label("Penny balance")).to_be_disabled()
    expect(flow.page.get_by_label("Penny balance")).not_to_be_checked()
    expect(flow.page.locator("main")).to_contain_text("Available: $0.00 USD. Cannot pay")
    expect(flow.page.locator("#sandbox-badge")).to_be_visible()
    flow.shot("method")
    flow.add_card("4111 1111 1111 1111")
    flow.choose("Visa •••• 1111, expires 12/2030")
    flow.shows("DigitalDownload", "$25.00 USD", "•••• 1111", "Game credits")
    expect(flow.page.locator("main")).not_to_contain_text("4111 1111 1111 1111")
    flow.shot("review")
    got = flow.confirm()
    assert got["status"] == "SC"
    assert got["callerReferenceSender"] == "order-1-sender"
    assert got["callerReferenceFunding"] == "order-1-funding"
    assert re.fullmatch(r"[0-9]{2}/[0-9]{4}", got["expiry"])
    instrument, funding, sender = (
        got["prepaidInstrumentID"],
        got["fundingTokenID"],
        got["senderTokenID"],
    )
    # A lost redirect is recovered with GetTokenByCaller.
    token = flow.server.fps("GetTokenByCaller", CallerReference="order-1-sender")
    assert fps_text(token, "TokenId") == sender
    # Anything changed on the received URL fails verification.
    url, _ = flow.shop.last()
    assert flow.server.verify(url.replace("status=SC", "status=SA")) == "Failure"
    fund = flow.server.fps(
        "FundPrepaid",
        SenderTokenId=funding,
        PrepaidInstrumentId=instrument,
        CallerReference="fund-1",
        **amount_params("FundingAmount", "10"),
    )
    assert fps_text(fund, "TransactionStatus") == "Success"
    pay = flow.server.fps(
        "Pay",
        SenderTokenId=sender,
        CallerReference="pay-1",
        **amount_params("TransactionAmount", "2.50"),
    )
    assert fps_text(pay, "TransactionStatus") == "Success"
    balance = flow.server.fps("GetPrepaidBalance", PrepaidInstrumentId=instrument)
    assert _at(balance, ".//AvailableBalance/Value") == "7.500000"
    # Going back to the finished pipeline shows it is done; confirming again changes nothing.
    flow.page.go_back()
    flow.page.reload()
    flow.heading_is("This authorization is finished")
    flow.shot("finished")


def test_postpaid_flow_existing_buyer_pay_and_settle(flow: Flow) -> None:
    buyer = flow.world.directory.create_personal("Carl Credit", "carl@example.com", BUYER_PASSWORD)
    flow.world.directory.add_card(buyer.id, "5555 5555 5555 4444", 11, 2031)
    flow.start(postpaid_params(flow.world, flow.shop.url))
    # Keyboard order: skip link, email, password, the sign-in button, then the way out.
    page = flow.page
    for target in (
        page.get_by_role("link", name="Skip to content"),
        page.get_by_label("Email address"),
        page.get_by_label("Password"),
        page.get_by_role("button", name="Sign in"),
        page.get_by_role("link", name="Create a sandbox buyer account"),
        page.get_by_role("button", name="Cancel and return to DigitalDownload"),
    ):
        page.keyboard.press("Tab")
        expect(target).to_be_focused()
    flow.sign_in("carl@example.com", "wrong password")
    expect(flow.page.get_by_role("alert")).to_have_text(
        "The email address or the password is wrong."
    )
    flow.shot("signin-error")
    flow.sign_in("carl@example.com")
    flow.choose("Mastercard •••• 4444, expires 11/2031")
    flow.shows("Credit limit", "$50.00 USD", "$500.00 USD")
    flow.shot("review-postpaid")
    got = flow.confirm()
    assert got["status"] == "SC"
    assert got["callerReferenceSettlement"] == "tab-1-settlement"
    assert "expiry" not in got  # no validityExpiry was asked for
    pay = flow.server.fps(
        "Pay",
        SenderTokenId=got["creditSenderTokenID"],
        CallerReference="tab-pay-1",
        **amount_params("TransactionAmount", "20"),
    )
    assert fps_text(pay, "TransactionStatus") == "Success"
    debt = flow.server.fps("GetDebtBalance", CreditInstrumentId=got["creditInstrumentID"])
    assert _at(debt, ".//AvailableBalance/Value") == "20.000000"
    settle = flow.server.fps(
        "SettleDebt",
        SenderTokenId=got["settlementTokenID"],
        CreditInstrumentId=got["creditInstrumentID"],
        CallerReference="settle-1",
        **amount_params("SettlementAmount", "20"),
    )
    assert fps_text(settle, "TransactionStatus") == "Success"


def test_declined_card_is_refused_then_the_balance_is_used(flow: Flow) -> None:
    dee = flow.world.directory.create_personal("Dee Decline", "dee@example.com", BUYER_PASSWORD)
    top_up_balance(flow.world.payments, dee, 2_500)  # her balance covers the $25.00
    flow.start(prepaid_params(flow.world, flow.shop.url, ref="dee"))
    flow.sign_in("dee@example.com")
    flow.add_card("4000 0000 0000 0002")
    flow.choose("Visa •••• 0002, expires 12/2030")
    expect(flow.page.locator("#method_id-error")).to_have_text(
        "This card was declined by the issuing bank. Choose another payment method."
    )
    flow.shot("method-declined")
    flow.choose("Penny balance")
    got = flow.confirm()
    assert got["status"] == "SA"


def test_cancelled_flow_returns_a_and_creates_nothing(flow: Flow) -> None:
    cy = flow.world.directory.create_personal("Cy Cancel", "cy@example.com", BUYER_PASSWORD)
    top_up_balance(flow.world.payments, cy, 2_500)
    flow.start(prepaid_params(flow.world, flow.shop.url, ref="cy"))
    flow.sign_in("cy@example.com")
    flow.choose("Penny balance")
    flow.page.get_by_role("button", name="Cancel and return to DigitalDownload").click()
    got = flow.returned()
    assert got["status"] == "A"
    assert "senderTokenID" not in got
    missing = flow.server.fps("GetTokenByCaller", CallerReference="cy-sender")
    code = fps_text(missing, "Code")
    assert code == "InvalidParams" or code.startswith("Invalid")


def test_tampered_start_url_is_refused_without_redirect(flow: Flow) -> None:
    url = flow.server.start_url(prepaid_params(flow.world, flow.shop.url, ref="t"))
    tampered = url.replace("fundingAmount=25.00", "fundingAmount=2500.00")
    assert tampered != url
    response = flow.page.goto(tampered)
    assert response is not None
    assert response.status == 403
    flow.heading_is("This payment request was altered")
    expect(flow.page.get_by_role("link", name=re.compile("Return"))).to_have_count(0)
    flow.shot("tampered")
    assert flow.shop.received == []


def test_expired_validity_redirects_with_ce(flow: Flow) -> None:
    past = str(flow.world.clock.now_us() // 1_000_000 - 60)
    flow.start(prepaid_params(flow.world, flow.shop.url, ref="old", validityExpiry=past))
    expect(flow.page.get_by_role("alert")).to_have_text("validityExpiry has already passed.")
    flow.shot("invalid-request")
    flow.page.get_by_role("link", name="Return to DigitalDownload now").click()
    got = flow.returned()
    assert got["status"] == "CE"
    assert got["errorMessage"] == "validityExpiry has already passed."
    assert got["callerReferenceSender"] == "old-sender"


def test_bank_account_funding_completes_after_four_sandbox_days(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow.world.directory.create_personal("Bo Bank", "bo@example.com", BUYER_PASSWORD)
    flow.start(prepaid_params(flow.world, flow.shop.url, ref="bo", paymentMethod="ACH,ABT"))
    flow.sign_in("bo@example.com")
    expect(flow.page.get_by_role("button", name="Add card")).to_have_count(0)
    flow.page.get_by_label("Routing number").fill("110000000")
    flow.page.get_by_label("Account number").fill("000123456789")
    flow.page.get_by_role("button", name="Add bank account").click()
    flow.choose("bank account •••• 6789 (routing •••• 0000)")
    got = flow.confirm()
    assert got["status"] == "SB"
    fund = flow.server.fps(
        "FundPrepaid",
        SenderTokenId=got["fundingTokenID"],
        PrepaidInstrumentId=got["prepaidInstrumentID"],
        CallerReference="bo-fund",
        **amount_params("FundingAmount", "25"),
    )
    assert fps_text(fund, "TransactionStatus") == "Pending"
    txn = fps_text(fund, "TransactionId")
    monkeypatch.setenv("PENNY_SECRET_KEY", flow.world.key_hex)
    result = CliRunner().invoke(
        cli_app,
        ["sandbox", "advance", "--database", flow.world.db.url, "--days", "4", "--json"],
        env={**os.environ},
    )
    assert result.exit_code == 0, result.output
    assert txn in json.dumps(json.loads(result.output))
    status = flow.server.fps("GetTransactionStatus", TransactionId=txn)
    assert fps_text(status, "TransactionStatus") == "Success"


def test_the_register_form_shows_every_mistake_at_once(flow: Flow) -> None:
    """Every field's mistake on the first submit (not the e-mail's only after the next one);
    a taken e-mail is told once the rest is right, and points to signing in."""
    flow.world.directory.create_personal("Carl Credit", "carl@example.com", BUYER_PASSWORD)
    flow.start(prepaid_params(flow.world, flow.shop.url))
    page = flow.page
    page.get_by_role("link", name="Create a sandbox buyer account").click()
    flow.fill_register("", "not-an-email", "short", "shorter")
    expect(page.locator("#name-error")).to_have_text("Enter your name.")
    expect(page.locator("#email-error")).to_have_text(
        "'not-an-email' is not an email address like name@example.com."
    )
    expect(page.locator("#password-error")).to_have_text(
        "Choose a password of at least 8 characters."
    )
    expect(page.locator("#password2-error")).to_have_text("The two passwords differ.")
    expect(page.get_by_label("Email address")).to_have_attribute("aria-invalid", "true")
    flow.shot("register-errors")

    flow.fill_register("Carl Again", "Carl@Example.com", BUYER_PASSWORD, BUYER_PASSWORD)
    expect(page.locator("#email-error")).to_have_text(
        "An account with this email address already exists: sign in with it instead."
    )
    expect(page.locator(".error")).to_have_count(1)
    expect(page.get_by_label("Your name")).to_have_value("Carl Again")
    page.get_by_role("link", name="Sign in").click()
    flow.sign_in("carl@example.com")
    flow.heading_is("How will you pay?")
