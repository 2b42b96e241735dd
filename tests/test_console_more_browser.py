"""The merchant console's other pages end to end in headless Chromium, on SQLite and
PostgreSQL: the dashboard's liability and debt (against the ledger), the instruments and
tokens of its buyers, IPN (the URL, a delivery's attempts, retry), a withdrawal and its
completion after the sandbox clock is moved forward, and the test cards. Every page: axe-core
finds nothing, it fits a 360 px screen, the skip link is the first keyboard stop; screenshots
at 360 and 1280 px in ``test-artifacts/screenshots/`` (the SQLite run).
"""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from cobranded_support import live_server
from console_support import Shop
from penny.domain.model import Operation, Status
from penny.storage import console_sql, ipn_sql
from penny.web.console.views import money
from test_console_browser import Walk, _store


def test_a_merchant_walks_instruments_ipn_withdrawals_and_the_sandbox(
    browser: Browser, axe: str, shop: Shop, database_url: str
) -> None:
    with live_server(shop.world) as server:
        walk = Walk(browser, server, _store(database_url), axe)
        walk.go("/account/signin/merchant")
        walk.page.get_by_label("Access key ID").fill(shop.main.access_key)
        walk.page.get_by_label("Secret key").fill(shop.main.secret)
        walk.page.get_by_role("button", name="Sign in").click()
        walk.heading("Dashboard")
        _dashboard(walk, shop)
        _instruments(walk, shop)
        _ipn(walk, shop)
        _withdrawals_and_sandbox(walk, shop)
        walk.context.close()


def _dashboard(walk: Walk, shop: Shop) -> None:
    payments, merchant = shop.world.payments, shop.main.merchant.id
    last = walk.page.locator("#balance-table tbody tr").last.locator("td")
    liability = payments.total_prepaid_liability(merchant).main.minor
    debt = payments.outstanding_debt(merchant).main.minor
    assert (last.nth(1).text_content() or "").strip() == money(liability)
    assert (last.nth(2).text_content() or "").strip() == money(debt)
    expect(walk.page.locator("svg.chart")).to_have_count(4)
    walk.check("dashboard-balances")


def _instruments(walk: Walk, shop: Shop) -> None:
    payments, side = shop.world.payments, shop.main
    walk.page.get_by_role("link", name="Instruments", exact=True).click()
    walk.heading("Instruments and tokens")
    assert shop.other.prepaid.instrument.id not in walk.text_of("#instruments")
    walk.check("instruments")
    instrument = side.postpaid.instrument.id
    walk.page.get_by_role("link", name=instrument).click()
    walk.heading(f"Credit line of {side.buyer.name}")
    debt = payments.debt_balance(side.merchant.id, instrument).main.minor
    assert walk.text_of("#inst-balance") == money(debt)
    walk.check("instrument")
    token = side.postpaid.sender_token.id
    walk.page.locator("#inst-tokens").get_by_role("link", name=f"token {token}").click()
    walk.heading(f"Token of {side.buyer.name}")
    expect(walk.page.locator("#token-state")).to_have_text("Active")
    assert walk.text_of("#token-usage") == "$7.00 in 1 payments"
    walk.check("token")


def _ipn(walk: Walk, shop: Shop) -> None:
    world, side = shop.world, shop.main
    walk.page.get_by_role("link", name="IPN", exact=True).click()
    walk.heading("Instant payment notifications")
    walk.page.get_by_label("IPN URL (http:// or https://; empty: none)").fill(
        "https://shop.example/ipn"
    )
    walk.page.get_by_role("button", name="Save the URL").click()
    expect(walk.page.locator("#ipn-url")).to_have_text("https://shop.example/ipn")
    walk.check("ipn")
    with world.db.read() as conn:
        newest = ipn_sql.listing(conn, account_id=side.merchant.id, limit=1)[0]
    walk.page.get_by_role("link", name=newest.id).click()
    walk.heading(f"Notification {newest.id}")
    walk.check("ipn-notification")
    walk.page.get_by_role("button", name="Retry now").click()
    walk.heading(f"Notification {newest.id}")
    with world.db.read() as conn:
        actions = [a.action for a in console_sql.actions_of(conn, side.merchant.id)]
    assert actions[:2] == ["ipn.retry", "ipn.url"]
    # The transaction it is about lists it, and links back to it.
    assert newest.kind == "TransactionStatus"
    walk.go(f"/account/merchant/transactions/{newest.subject_id}")
    sent = walk.page.locator("#ipn-sent tbody tr")
    expect(sent).to_have_count(1)
    expect(sent.locator("td").nth(1)).to_have_text("pending")
    walk.check("transaction-ipn")
    sent.get_by_role("link", name=newest.id).click()
    walk.heading(f"Notification {newest.id}")


def _withdrawals_and_sandbox(walk: Walk, shop: Shop) -> None:
    payments, merchant = shop.world.payments, shop.main.merchant.id
    walk.page.get_by_role("link", name="Withdrawals").click()
    walk.heading("Withdrawals")
    available = payments.account_balance(merchant).disburse.minor
    assert walk.text_of("#fig-available") == money(available)
    walk.page.get_by_label("Amount (USD)").fill("2.00")
    walk.page.get_by_role("button", name="Withdraw").click()
    walk.heading("Withdrawals")
    assert walk.text_of("#fig-available") == money(available - 200)
    assert walk.text_of("#fig-pending-out") == "$2.00"
    expect(walk.page.locator("#withdrawals tbody tr")).to_have_count(1)
    assert "Pending" in walk.text_of("#withdrawals")
    walk.check("withdrawals")
    walk.page.get_by_role("link", name="Sandbox").click()
    walk.heading("Sandbox")
    assert "4000000000000341" in walk.text_of("#test-cards")
    walk.check("sandbox")
    walk.page.get_by_label("Days to move forward").fill("5")
    walk.page.get_by_role("button", name="Advance the clock").click()
    expect(walk.page.get_by_role("status")).to_contain_text("Moved forward 5 day(s)")
    walk.page.get_by_role("link", name="Withdrawals").click()
    assert "Success" in walk.text_of("#withdrawals")
    where = console_sql.TransactionFilter(caller_id=merchant, operation=Operation.withdraw)
    with shop.world.db.read() as conn:
        (made,) = console_sql.transactions_page(conn, where, None, 5)
    assert made.status is Status.success
    assert walk.text_of("#fig-pending-out") == "$0.00"
