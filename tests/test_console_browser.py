"""The account site end to end in headless Chromium (Debian's ``chromium``, driven by
Playwright), against a real server on 127.0.0.1, on SQLite and PostgreSQL.

A merchant walks the landing page, sign-in, the dashboard (its figures checked against the
ledger), the transaction list, a detail page (its legs sum to zero), a refund with its
confirmation (checked in the store), a filtered CSV export, creating and revoking an API key,
and the activity log. A buyer walks their account, a MultiUse authorization (what it allows,
its rules in words) which they cancel (the merchant's IPN is in the outbox, a later Pay is
refused), a prepaid instrument's history and a prepaid balance's authorization, and cancels
it too (the token is inactive, the merchant's IPN is in the outbox).
Every page is checked with axe-core (zero violations), for fitting a 360 px screen without
scrolling sideways (wide tables scroll in their own region), and for its skip link being the
first keyboard stop; screenshots of every page at 360 px and 1280 px go to
``test-artifacts/screenshots/`` (the SQLite run).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from browser_support import PHONE, axe_violations, screenshot
from builders import BUYER_PASSWORD, sender_token, top_up_balance, usd
from cobranded_support import LiveServer, live_server
from console_support import Shop, notifications_about
from penny.domain.errors import PaymentsError
from penny.domain.model import (
    AmountType,
    Token,
    TokenKind,
    TokenStatus,
    UsageLimitTerm,
    UsageLimitType,
)
from penny.services.payments import PayRequest
from penny.web.console.views import money


class Walk:
    """One person in one browser context (phone width) on the live server."""

    def __init__(self, browser: Browser, server: LiveServer, store: str, axe: str) -> None:
        self.server, self.store, self.axe = server, store, axe
        self.context = browser.new_context(viewport=PHONE)
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(15_000)

    def go(self, path: str) -> None:
        self.page.goto(f"{self.server.base}{path}")

    def check(self, name: str) -> None:
        """axe-core finds nothing; the skip link is the first stop of the keyboard; and, in
        the SQLite run, screenshots."""
        violations = axe_violations(self.page, self.axe)
        assert violations == [], (name, violations)
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (name, "wider than a phone", width)
        if self.store == "sqlite":
            screenshot(self.page, f"console-{name}")
        self.page.locator("body").focus()
        self.page.keyboard.press("Tab")
        assert self.page.evaluate("document.activeElement.textContent") == "Skip to content"
        self.page.evaluate("document.activeElement.blur()")

    def heading(self, text: str) -> None:
        expect(self.page.get_by_role("heading", level=1)).to_have_text(text)

    def text_of(self, selector: str) -> str:
        return self.page.locator(selector).inner_text().strip()


def _store(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


def test_a_merchant_walks_the_console(
    browser: Browser, axe: str, shop: Shop, database_url: str, tmp_path: Path
) -> None:
    payments, side = shop.world.payments, shop.main
    merchant = side.merchant.id
    with live_server(shop.world) as server:
        walk = Walk(browser, server, _store(database_url), axe)
        walk.go("/")
        walk.heading("Penny: aggregated payments")
        walk.check("landing")
        walk.page.get_by_role("link", name="Merchant sign-in").click()
        walk.heading("Merchant sign-in")
        walk.check("signin-merchant")
        walk.page.get_by_label("Access key ID").fill(side.access_key)
        walk.page.get_by_label("Secret key").fill(side.secret)
        walk.page.get_by_role("button", name="Sign in").click()
        walk.heading("Dashboard")
        liability = payments.total_prepaid_liability(merchant).main.minor
        assert walk.text_of("#fig-liability") == money(liability)
        assert walk.text_of("#fig-debt") == money(payments.outstanding_debt(merchant).main.minor)
        available = payments.account_balance(merchant).disburse.minor
        assert walk.text_of("#fig-available") == money(available)
        assert walk.text_of("#fig-sales") == money(sum(t.amount for t in side.pays))
        charts = walk.page.locator("svg.chart")
        expect(charts).to_have_count(4)  # sales, count, liability, debt
        expect(charts.first.locator("rect.bar")).to_have_count(30)
        walk.check("dashboard")
        walk.page.get_by_role("link", name="90 days").click()
        expect(walk.page.locator("svg.chart").last.locator("rect.bar")).to_have_count(90)
        _transactions(walk, shop)
        _keys(walk, shop)
        walk.page.get_by_role("link", name="Activity log").click()
        walk.heading("Activity log")
        log = walk.text_of("#log")
        for action in ("refund", "key.create", "key.revoke"):
            assert action in log
        walk.check("log")
        walk.context.close()


def _transactions(walk: Walk, shop: Shop) -> None:
    payments, side = shop.world.payments, shop.main
    pay = side.pays[1]
    walk.page.get_by_role("link", name="Transactions").click()
    walk.heading("Transactions")
    walk.check("transactions")
    walk.page.get_by_role("link", name=pay.id).click()
    walk.heading(f"Pay {money(pay.amount)}")
    rows = walk.page.locator("#legs tbody tr")
    total = 0
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        debit, credit = cells.nth(2).inner_text().strip(), cells.nth(3).inner_text().strip()
        total += _cents(debit) - _cents(credit)
    assert rows.count() >= 2
    assert total == 0
    walk.check("transaction")
    before = payments.prepaid_balance(side.buyer.id, side.prepaid.instrument.id).main.minor
    walk.page.get_by_role("link", name="Refund…").click()
    walk.heading("Refund this payment?")
    walk.check("refund")
    walk.page.get_by_label("Amount to refund (USD)").fill("1.00")
    walk.page.get_by_role("button", name="Confirm refund").click()
    walk.heading(f"Pay {money(pay.amount)}")
    assert walk.text_of("#txn-refunded") == "$1.00"
    assert payments.transaction(side.merchant.id, pay.id).refunded == 100
    after = payments.prepaid_balance(side.buyer.id, side.prepaid.instrument.id).main.minor
    assert after == before + 100
    walk.page.get_by_role("link", name="All transactions").click()
    walk.page.get_by_label("Operation").select_option("Pay")
    walk.page.get_by_role("button", name="Filter").click()
    with walk.page.expect_download() as download:
        walk.page.get_by_role("link", name="Export CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [r["transaction_id"] for r in exported] == [t.id for t in reversed(side.pays)]
    assert {r["refunded"] for r in exported if r["transaction_id"] == pay.id} == {"1.00"}


def _cents(text: str) -> int:
    return int(text.replace("$", "").replace(",", "").replace(".", "")) if text else 0


def _keys(walk: Walk, shop: Shop) -> None:
    directory, side = shop.world.directory, shop.main
    walk.page.get_by_role("link", name="API keys").click()
    walk.heading("API keys")
    walk.page.get_by_role("button", name="Create a new key").click()
    new_key, secret = walk.text_of("#new-key"), walk.text_of("#new-secret")
    assert directory.secret_for(new_key) == secret
    walk.check("keys")
    walk.page.get_by_role("link", name=f"Revoke {new_key}").click()
    walk.heading(f"Revoke key {new_key}?")
    walk.check("revoke")
    walk.page.get_by_role("button", name="Revoke the key").click()
    walk.heading("API keys")
    assert directory.secret_for(new_key) is None
    assert directory.secret_for(side.access_key) is not None
    assert secret not in walk.page.content()


def test_a_buyer_sees_their_instruments_and_cancels_an_authorization(
    browser: Browser, axe: str, shop: Shop, database_url: str
) -> None:
    payments, side = shop.world.payments, shop.main
    token = side.prepaid.sender_token
    (card,) = [m for m in shop.world.directory.payment_methods(side.buyer.id) if m.last4]
    every_week = UsageLimitTerm(UsageLimitType.count, 2, "1 Week")
    given = sender_token(
        payments,
        side.merchant.id,
        side.buyer.id,
        card.id,
        "walk-multi",
        TokenKind.multi_use,
        transaction_amount=usd("10"),
        amount_type=AmountType.maximum,
        global_amount_limit=usd("60"),
        usage_limits=(every_week,),
    ).token
    with live_server(shop.world) as server:
        walk = Walk(browser, server, _store(database_url), axe)
        walk.go("/account/signin/buyer")
        walk.heading("Buyer sign-in")
        walk.check("signin-buyer")
        walk.page.get_by_label("Email address").fill(side.buyer_email)
        walk.page.get_by_label("Password").fill(BUYER_PASSWORD)
        walk.page.get_by_role("button", name="Sign in").click()
        walk.heading("My account")
        balance = payments.prepaid_balance(side.buyer.id, side.prepaid.instrument.id).main
        assert money(balance.minor) in walk.text_of("#prepaid-table")
        debt = payments.debt_balance(side.buyer.id, side.postpaid.instrument.id).main
        assert money(debt.minor) in walk.text_of("#postpaid-table")
        assert "Visa •••• 1111" in walk.text_of("#method-list")
        given_row = walk.text_of("#authorization-table")
        for words in (side.merchant.name, "Multi use", "at most $10.00", "2 payments every 1 Week"):
            assert words in given_row, words
        walk.check("buyer")
        _cancel_the_authorization(walk, shop, given)
        walk.page.locator("#prepaid-table").get_by_role("link").first.click()
        walk.heading(f"Prepaid balance with {side.merchant.name}")
        assert walk.text_of("#inst-balance") == money(balance.minor)
        walk.check("buyer-instrument")
        walk.page.get_by_role("link", name="Back to my account").click()
        walk.page.get_by_role("link", name=f"Details of authorization {token.id}").click()
        walk.heading(f"Authorization for {side.merchant.name}")
        walk.check("buyer-token")
        walk.page.get_by_role("button", name="Cancel the authorization").click()
        expect(walk.page.locator("#token-state")).to_contain_text("Cancelled")
        walk.context.close()
    cancelled = payments.token_by_caller(side.merchant.id, token_id=token.id)
    assert cancelled.status is TokenStatus.inactive
    sent = notifications_about(shop.world, token.id)
    assert sent == 1


def _cancel_the_authorization(walk: Walk, shop: Shop, given: Token) -> None:
    """From the home page: a MultiUse authorization's page (what it allows, its rules in
    words), Cancel, and back home; the merchant is told and a later Pay is refused."""
    merchant = shop.main.merchant
    walk.page.get_by_role("link", name=f"Details of authorization {given.id}").click()
    walk.heading(f"Authorization for {merchant.name}")
    expect(walk.page.locator("#token-rules")).to_contain_text("At most 2 payments every 1 Week")
    walk.check("buyer-authorization")
    walk.page.get_by_role("button", name="Cancel the authorization").click()
    expect(walk.page.locator("#token-state")).to_contain_text("Cancelled")
    assert notifications_about(shop.world, given.id) == 1
    with pytest.raises(PaymentsError):
        shop.world.payments.execute(PayRequest(merchant.id, "walk-late", given.id, usd("1")))
    walk.page.get_by_role("link", name="Back to my account").click()
    walk.heading("My account")
    assert "Cancelled" in walk.text_of("#authorization-table")


def test_a_buyer_adds_and_removes_payment_methods_and_reads_the_balance(
    browser: Browser, axe: str, shop: Shop, database_url: str
) -> None:
    payments, directory, side = shop.world.payments, shop.world.directory, shop.main
    top_up_balance(payments, side.buyer, 1_234)
    with live_server(shop.world) as server:
        walk = Walk(browser, server, _store(database_url), axe)
        walk.go("/account/signin/buyer")
        walk.page.get_by_label("Email address").fill(side.buyer_email)
        walk.page.get_by_label("Password").fill(BUYER_PASSWORD)
        walk.page.get_by_role("button", name="Sign in").click()
        walk.page.get_by_role("link", name="Add or remove payment methods").click()
        walk.heading("Payment methods")
        walk.page.get_by_label("Card number").fill("5555 5555 5555 4444")
        walk.page.get_by_label("Expiry (MM/YYYY)").fill("11/2031")
        walk.page.get_by_role("button", name="Add card").click()
        walk.heading("Payment methods")
        walk.page.get_by_label("Routing number").fill("110000000")
        walk.page.get_by_label("Account number").fill("000123456789")
        walk.page.get_by_role("button", name="Add bank account").click()
        table = walk.text_of("#methods-table")
        for shown in ("Visa •••• 1111", "Mastercard •••• 4444", "bank account •••• 6789"):
            assert shown in table
        walk.check("buyer-methods")
        # The shop's card funds the prepaid balance and settles the tab: both are listed.
        walk.page.get_by_role("link", name="Remove… Visa •••• 1111, expires 12/2031").click()
        walk.heading("Remove Visa •••• 1111, expires 12/2031?")
        charging = walk.text_of("#charging-table")
        assert side.prepaid.second_token.id in charging
        assert side.postpaid.second_token.id in charging
        walk.check("buyer-remove")
        walk.page.get_by_role("button", name="Remove the payment method").click()
        walk.heading("Payment methods")
        assert "Visa •••• 1111" not in walk.text_of("#methods-table")
        walk.page.get_by_role("link", name="Penny balance").first.click()
        walk.heading("Penny balance")
        ledger = payments.account_balance(side.buyer.id)
        assert walk.text_of("#balance-total") == money(ledger.total.minor) == "$12.34"
        assert "+$12.34" in walk.text_of("#activity-table")
        walk.check("buyer-balance")
        walk.context.close()
    methods = {m.last4 for m in directory.payment_methods(side.buyer.id) if m.last4}
    assert methods == {"4444", "6789"}
    for token in (side.prepaid.second_token, side.postpaid.second_token):
        assert not payments.token_by_caller(side.merchant.id, token_id=token.id).active
        assert notifications_about(shop.world, token.id) == 1
