"""The Recipient pipeline (issue #19) end to end in headless Chromium (Playwright), against a
real server on 127.0.0.1 and the marketplace's return-URL receiver, on SQLite and PostgreSQL:
the recipient merchant signs in with its API key, accepts the terms, is sent back with
``status=SR`` (verified with VerifySignature), and the marketplace then pays it with a fee;
every page passes axe-core, fits a phone and starts the keyboard at the skip link."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from playwright.sync_api import Browser, Page, expect

from browser_support import PHONE, axe_violations, screenshot
from builders import amount_params
from cobranded_browser_support import BrowserFlow, running_flow
from cobranded_support import (
    BUYER_PASSWORD,
    LiveServer,
    World,
    fps_text,
    make_world,
    start_params,
)
from penny.money import parse_amount
from penny.sandbox.instruments import prepaid_setup
from penny.services.payments import FundPrepaidRequest


def check(page: Page, axe: str, name: str, store: str) -> None:
    """axe-core finds nothing, the page fits a phone, the skip link comes first."""
    assert axe_violations(page, axe) == [], name
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
    if store == "sqlite":
        screenshot(page, f"recipient-{name}")
    page.locator("body").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.evaluate("document.activeElement.blur()")


def test_a_recipient_accepts_and_is_paid(browser: Browser, axe: str, database_url: str) -> None:
    world = make_world(database_url)
    seller, seller_key = world.directory.create_business("Elsewhere", "else@example.com")
    with running_flow(BrowserFlow, browser, axe, world, database_url) as flow:
        server, shop = flow.server, flow.shop
        _walk(
            flow.page,
            axe,
            flow.store,
            server,
            shop.url,
            seller_key.access_key_id,
            seller_key.secret,
        )
        url, got = shop.last()
        assert server.verify(url) == "Success"
        assert (got["status"], got["callerReference"]) == ("SR", "seller-1")
        _pay(server, world, got["tokenID"])
        assert world.payments.account_balance(seller.id).total.minor == 1000 - 50 - 6


def _walk(
    page: Page, axe: str, store: str, server: LiveServer, back: str, key: str, secret: str
) -> None:
    page.goto(
        server.start_url(
            start_params(
                server.world,
                "Recipient",
                back,
                callerReference="seller-1",
                maxFixedFee="0.50",
                maxVariableFee="0",
                recipientPaysFee="True",
                websiteDescription="the Music Market",
            )
        )
    )
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Sign in to accept DigitalDownload's terms"
    )
    expect(page.locator("#max-fixed")).to_have_text("$0.50 USD")
    check(page, axe, "signin", store)
    page.get_by_label("Access key ID").fill(key)
    page.get_by_label("Secret access key").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The access key or the secret is wrong.")
    check(page, axe, "signin-wrong", store)
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Accept DigitalDownload's terms")
    expect(page.locator("#recipient")).to_have_text("Elsewhere")
    check(page, axe, "review", store)
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Thanks, back at the shop")


def _pay(server: LiveServer, world: World, token_id: str) -> None:
    """The marketplace funds a buyer's prepaid instrument and pays the recipient $10 with a
    $0.50 fee (Penny's: 0.5 % + $0.01 = $0.06, borne by the recipient)."""
    buyer = world.directory.create_personal("Bea", "bea@example.com", BUYER_PASSWORD)
    card = world.directory.add_card(buyer.id, "4111 1111 1111 1111", 12, 2030)
    made = world.payments.setup_prepaid(prepaid_setup(world.merchant.id, buyer.id, card.id, "bea"))
    world.payments.execute(
        FundPrepaidRequest(
            world.merchant.id,
            "fund-1",
            made.second_token.id,
            made.instrument.id,
            parse_amount("20", "USD"),
        )
    )
    pay = server.fps(
        "Pay",
        SenderTokenId=made.sender_token.id,
        RecipientTokenId=token_id,
        CallerReference="pay-1",
        **amount_params("TransactionAmount", "10"),
        **amount_params("MarketplaceFixedFee", "0.50"),
    )
    assert fps_text(pay, "TransactionStatus") == "Success", ET.tostring(pay)
    status = server.fps("GetRecipientVerificationStatus", RecipientTokenId=token_id)
    assert fps_text(status, "RecipientVerificationStatus") == "VerificationComplete"
