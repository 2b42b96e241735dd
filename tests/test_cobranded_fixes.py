"""The hosted pages' fixes of issue #16, in process, on both stores: each payment method shows
what it can pay; a Penny balance too small for the authorization is shown but cannot be
picked, is never pre-selected, and is refused when picked or confirmed anyway; the amount
stands at the top of every step (the register page too); a "Sandbox" badge on a sandbox
server only; the invalid-request page links back instead of refreshing; and page requests
(hosted pages and account site) are in the access log without secrets, card data or cookies.
"""

from __future__ import annotations

import logging
import re

import pytest

from builders import CARD, top_up_balance
from cobranded_support import (
    BUYER_PASSWORD,
    UiClient,
    World,
    csrf_of,
    prepaid_params,
    world,
)
from console_support import ConsoleClient
from penny.domain.parties import Party
from penny.storage import payments_sql
from penny.web.cobranded import Settings, security
from penny.web.cobranded.http import Page
from penny.web.cobranded.views import Views
from penny.web.logs import ACCESS_LOGGER

RETURN = "https://shop.example/cbui/return"
_CHECKED = re.compile(r'<input type="radio" id="m-([A-Z0-9]+)"[^>]* checked')


__all__ = ["world"]  # the fixture


def _bea(world: World) -> Party:
    return world.directory.create_personal("Bea", "bea@example.com", BUYER_PASSWORD)


def _signed_in(world: World, ref: str = "order-1") -> tuple[UiClient, str, str]:
    ui = UiClient(world)
    pid, csrf = ui.open(prepaid_params(world, RETURN, ref=ref))
    form = {"csrf": csrf, "email": "bea@example.com", "password": BUYER_PASSWORD}
    assert ui.post(pid, "signin", form).status_code == 303
    page = ui.get(pid, "method")
    assert page.status_code == 200
    return ui, pid, csrf_of(page.text)


def _option(html: str, method_id: str) -> str:
    """The method's line on the page: its input and what it can pay."""
    start = html.index(f'id="m-{method_id}"')
    return html[start : html.index("</div>", start)]


def _instruments(world: World) -> int:
    with world.db.read() as conn:
        return len(conn.execute(payments_sql.instruments.select()).all())


def test_each_method_shows_what_it_can_pay_and_an_empty_balance_cannot_be_picked(
    world: World,
) -> None:
    bea = _bea(world)
    balance = world.directory.payment_methods(bea.id)[0]
    card = world.directory.add_card(bea.id, CARD, 12, 2031)
    ui, pid, csrf = _signed_in(world)
    page = ui.get(pid, "method").text
    assert 'class="amount-value">$25.00 USD</strong>' in page
    line = _option(page, balance.id)
    assert " disabled" in line
    assert "Available: $0.00 USD. Cannot pay $25.00 USD." in line
    assert "Can pay $25.00 USD." in _option(page, card.id)
    assert _CHECKED.findall(page) == [card.id]  # the card, never the empty balance
    # Picked anyway (a forged form): refused, with the reason, and nothing is chosen.
    picked = ui.post(pid, "method", {"csrf": csrf, "method_id": balance.id})
    assert picked.status_code == 400
    assert (
        "Your Penny balance ($0.00 USD) is less than the $25.00 USD this authorization may "
        "charge, so it cannot pay. Choose another payment method."
    ) in picked.text
    assert ui.get(pid, "review").headers["location"].endswith("/method")


def test_nothing_is_preselected_when_no_method_can_pay(world: World) -> None:
    _bea(world)
    ui, pid, _csrf = _signed_in(world)
    page = ui.get(pid, "method").text
    assert _CHECKED.findall(page) == []
    assert "Cannot pay $25.00 USD." in page


def test_a_balance_that_covers_the_amount_is_offered_and_preselected(world: World) -> None:
    bea = _bea(world)
    balance = world.directory.payment_methods(bea.id)[0]
    top_up_balance(world.payments, bea, 2_500)
    ui, pid, _csrf = _signed_in(world)
    page = ui.get(pid, "method").text
    line = _option(page, balance.id)
    assert " disabled" not in line
    assert "Available: $25.00 USD. Can pay $25.00 USD." in line
    assert _CHECKED.findall(page) == [balance.id]


def test_a_balance_spent_after_it_was_picked_is_refused_at_confirm(world: World) -> None:
    bea = _bea(world)
    balance = world.directory.payment_methods(bea.id)[0]
    top_up_balance(world.payments, bea, 3_000)
    ui, pid, csrf = _signed_in(world)
    assert ui.post(pid, "method", {"csrf": csrf, "method_id": balance.id}).status_code == 303
    assert ui.get(pid, "review").status_code == 200
    top_up_balance(world.payments, bea, -2_000)  # $20 leave the balance elsewhere
    refused = ui.post(pid, "confirm", {"csrf": csrf})
    assert refused.status_code == 400
    assert "Your Penny balance ($10.00 USD) is less than the $25.00 USD" in refused.text
    assert "location" not in refused.headers  # the buyer stays; the merchant hears nothing
    assert _instruments(world) == 0


def test_the_amount_is_on_every_step_and_the_register_page_keeps_the_summary(
    world: World,
) -> None:
    ui = UiClient(world)
    pid, _csrf = ui.open(prepaid_params(world, RETURN))
    for step in ("signin", "register"):
        html = ui.get(pid, step).text
        assert 'class="amount-value">$25.00 USD</strong>' in html, step
        assert "<dt>Merchant</dt><dd>DigitalDownload</dd>" in html, step
        assert "Game credits" in html, step


def test_the_sandbox_badge_is_at_the_top_on_a_sandbox_server_only(world: World) -> None:
    ui = UiClient(world)
    pid, _csrf = ui.open(prepaid_params(world, RETURN))
    html = ui.get(pid, "signin").text
    assert html.index('id="sandbox-badge"') < html.index("<main")
    assert "Penny sandbox: no real money moves." not in html  # the old footer line
    assert Settings.from_env({}).sandbox
    assert not Settings.from_env({"PENNY_MODE": "production"}).sandbox
    page = Page(400, "problem.html", {"title": "T", "message": "M"})
    assert "sandbox-badge" in bytes(Views(sandbox=True).render(page).body).decode()
    assert "sandbox-badge" not in bytes(Views(sandbox=False).render(page).body).decode()


def test_the_invalid_request_page_links_back_and_never_refreshes(world: World) -> None:
    answer = UiClient(world).start(prepaid_params(world, RETURN, fundingAmount="0"))
    assert answer.status_code == 400
    assert "http-equiv" not in answer.text
    assert '<a class="button" href="https://shop.example/cbui/return?' in answer.text
    assert "Return to DigitalDownload now" in answer.text


def test_page_requests_are_logged_without_secrets(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    _bea(world)
    ui, pid, csrf = _signed_in(world)
    number = "5555555555554444"
    ui.post(pid, "card", {"csrf": csrf, "number": number, "expiry": "11/2031", "holder": "Bea"})
    console = ConsoleClient(world)
    answer = console.sign_in("buyer", {"email": "bea@example.com", "password": BUYER_PASSWORD})
    assert answer.status_code == 303
    merchant = ConsoleClient(world)
    answer = merchant.sign_in("merchant", {"access_key": world.access_key, "secret": world.secret})
    assert answer.status_code == 303
    assert console.get("/account/buyer").status_code == 200
    assert console.get("/", headers={"accept": "text/html"}).status_code == 200
    records = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    actions = [r.fps["action"] for r in records]  # type: ignore[attr-defined]
    for expected in (
        "GET /cobranded-ui/actions/start",
        "POST /cobranded-ui/pipelines/{pid}/signin",
        "POST /cobranded-ui/pipelines/{pid}/card",
        "GET /cobranded-ui/pipelines/{pid}/method",
        "POST /account/signin/buyer",
        "POST /account/signin/merchant",
        "GET /account/buyer",
        "GET /",
    ):
        assert expected in actions, (expected, actions)
    card_post = records[actions.index("POST /cobranded-ui/pipelines/{pid}/card")]
    assert card_post.fps["status"] == 303  # type: ignore[attr-defined]
    assert isinstance(card_post.fps["duration_us"], int)  # type: ignore[attr-defined]
    cookies = [
        *ui.client.cookies.values(),
        *console.client.cookies.values(),
        *merchant.client.cookies.values(),
    ]
    logged = "\n".join(f"{r.getMessage()} {r.fps}" for r in records)  # type: ignore[attr-defined]
    secrets = [number, BUYER_PASSWORD, world.secret, pid, csrf, *cookies]
    secrets.append(security.hash_id(cookies[0]))
    for secret in secrets:
        assert secret
        assert secret not in logged, secret
    assert "bea@example.com" not in logged


def test_a_token_pipeline_asks_the_balance_for_its_transaction_amount(world: World) -> None:
    bea = _bea(world)
    balance = world.directory.payment_methods(bea.id)[0]
    top_up_balance(world.payments, bea, 500)
    base = {
        "callerKey": world.access_key,
        "version": "2009-01-09",
        "returnURL": RETURN,
    }
    recurring = {
        **base,
        "pipelineName": "Recurring",
        "callerReference": "sub-1",
        "transactionAmount": "9.99",
        "recurringPeriod": "1 Month",
    }
    multi = {
        **base,
        "pipelineName": "MultiUse",
        "callerReference": "m-1",
        "globalAmountLimit": "100",
    }
    for params, shown, usable in (
        (recurring, "Each payment up to", "Available: $5.00 USD. Cannot pay $9.99 USD."),
        (multi, "Total payments up to", "Available: $5.00 USD. Can pay any amount."),
    ):
        ui = UiClient(world)
        pid, csrf = ui.open(params)
        form = {"csrf": csrf, "email": "bea@example.com", "password": BUYER_PASSWORD}
        assert ui.post(pid, "signin", form).status_code == 303
        page = ui.get(pid, "method").text
        assert f'<span class="amount-label">{shown}</span>' in page
        assert usable in _option(page, balance.id)
