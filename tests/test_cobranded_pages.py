"""Co-Branded UI statuses and configuration, in process (Starlette's TestClient), on both
stores: NP for a reused caller reference, NM for a marketplace caller, PE when the buyer has
none of the allowed methods, the error redirect's signature, unknown callers, and unsigned
requests when configuration allows them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from sqlalchemy import text
from starlette.applications import Starlette

from cobranded_support import (
    BUYER_PASSWORD,
    START_PATH,
    UiClient,
    World,
    make_world,
    postpaid_params,
    prepaid_params,
)
from penny.clock import ManualClock
from penny.sandbox.instruments import prepaid_setup
from penny.signing import load_signer
from penny.web.cobranded import CobrandedUi, security
from penny.web.cobranded.pages import ALLOW_UNSIGNED_ENV

RETURN = "https://shop.example/cbui/return"


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    made = make_world(database_url)
    made.directory.create_personal("Bea", "bea@example.com", BUYER_PASSWORD)
    yield made
    made.db.dispose()


def back_link(world: World, html: str) -> dict[str, str]:
    """The parameters of the error page's return link, after checking its signature."""
    start = html.index('<a class="button" href="') + len('<a class="button" href="')
    url = html[start : html.index('"', start)].replace("&amp;", "&")
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    signer = load_signer(world.db, world.server_key)
    assert signer.verify(f"{parts.scheme}://{parts.netloc}{parts.path}", pairs)
    return dict(pairs)


def test_a_reused_caller_reference_is_np(world: World) -> None:
    bea = world.directory.party_by_email("bea@example.com")
    assert bea is not None
    balance = world.directory.payment_methods(bea.id)[0]
    world.payments.setup_prepaid(prepaid_setup(world.merchant.id, bea.id, balance.id, "used"))
    answer = UiClient(world).start(prepaid_params(world, RETURN, ref="used"))
    assert answer.status_code == 400
    got = back_link(world, answer.text)
    assert got["status"] == "NP"
    assert (
        got["errorMessage"]
        == "The caller reference callerReferenceSender was already used for a token."
    )


def test_a_marketplace_caller_is_nm(world: World) -> None:
    answer = UiClient(world).start(postpaid_params(world, RETURN, recipientToken="R-OTHER"))
    assert answer.status_code == 400
    got = back_link(world, answer.text)
    assert got["status"] == "NM"
    assert got["callerReferenceSender"] == "tab-1-sender"
    assert "only be issued by their recipient" in got["errorMessage"]


def test_a_buyer_without_an_allowed_method_answers_pe(world: World) -> None:
    ui = UiClient(world)
    pid, csrf = ui.open(prepaid_params(world, RETURN, ref="pe", paymentMethod="CC"))
    assert (
        ui.post(
            pid, "signin", {"csrf": csrf, "email": "bea@example.com", "password": BUYER_PASSWORD}
        ).status_code
        == 303
    )
    page = ui.get(pid, "method")
    assert "Penny balance" not in page.text  # ABT is not allowed here
    assert "Add a bank account" not in page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    done = ui.post(pid, "none", {"csrf": csrf})
    assert done.status_code == 303
    got = dict(parse_qsl(urlsplit(done.headers["location"]).query))
    assert got["status"] == "PE"
    assert got["errorMessage"] == "The buyer has none of the payment methods allowed (CC)."


def test_unknown_callers_and_unsigned_requests_are_refused(world: World) -> None:
    ui = UiClient(world)
    params = prepaid_params(world, RETURN)
    unknown = ui.client.get(f"{START_PATH}?{urlencode({**params, 'callerKey': 'PNYNOBODY'})}")
    assert unknown.status_code == 400
    assert "valid Penny merchant key" in unknown.text
    unsigned = ui.client.get(f"{START_PATH}?{urlencode(params)}")
    assert unsigned.status_code == 403
    assert "This payment request is not signed" in unsigned.text
    repeated = ui.client.get(f"{START_PATH}?{urlencode(params)}&callerKey=x")
    assert repeated.status_code == 400


def test_unsigned_requests_when_configuration_allows_them(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_UNSIGNED_ENV, "1")
    world = make_world(database_url)
    try:
        ui = UiClient(world)
        ok = ui.client.get(f"{START_PATH}?{urlencode(prepaid_params(world, RETURN))}")
        assert ok.status_code == 303
        bad = prepaid_params(world, RETURN, ref="bad", fundingAmount="0")
        refused = ui.client.get(f"{START_PATH}?{urlencode(bad)}")
        assert refused.status_code == 400
        assert "fundingAmount" in refused.text
        assert "Return to" not in refused.text  # an unsigned returnURL is never trusted
        # A signature that is present is still checked.
        forged = ui.client.get(f"{START_PATH}?{urlencode({**bad, 'signature': 'AAAA'})}")
        assert forged.status_code == 403
    finally:
        world.db.dispose()


def test_sessions_pipelines_and_sign_in_failures_expire(world: World) -> None:
    clock = ManualClock(time.time_ns() // 1000)
    signer = load_signer(world.db, world.server_key)
    pages = CobrandedUi(world.directory, world.payments, signer, web_clock=clock)
    ui = UiClient(world, app=Starlette(routes=pages.routes()))
    pid, csrf = ui.open(prepaid_params(world, RETURN, ref="late"))
    failures = [{"s": "email:bea@example.com", "at": clock.now_us()}] * 5  # as five misses make
    with world.db.write() as conn:
        conn.execute(
            text("INSERT INTO cbui_signin_failures (subject, at) VALUES (:s, :at)"), failures
        )
    wrong = {"csrf": csrf, "email": "bea@example.com", "password": "not-it-at-all"}
    right = {**wrong, "password": BUYER_PASSWORD}
    assert ui.post(pid, "signin", right).status_code == 429
    clock.advance(security.SIGNIN_WINDOW_US + 1)  # the window has passed
    assert ui.post(pid, "signin", right).status_code == 303
    assert ui.get(pid, "method").status_code == 200
    clock.advance(security.PIPELINE_TTL_US)  # an hour later: session and pipeline are gone
    late = ui.get(pid, "method")
    assert late.status_code == 403
    assert "This page has expired" in late.text


def test_account_creation_is_rate_limited_per_client(world: World) -> None:
    ui = UiClient(world)
    pid, csrf = ui.open(prepaid_params(world, RETURN, ref="many"))
    form = {"csrf": csrf, "name": "N", "email": "bea@example.com", "password": "x" * 9}
    form["password2"] = form["password"]
    answer = ui.post(pid, "register", form)  # a taken email: refused, but it counts
    assert answer.status_code == 400
    assert "already exists" in answer.text
    others = [{"s": "register:testclient", "at": world.clock.now_us()}]
    with world.db.write() as conn:  # as many more attempts would make
        conn.execute(
            text("INSERT INTO cbui_signin_failures (subject, at) VALUES (:s, :at)"),
            others * (security.REGISTER_MAX_PER_CLIENT - 1),
        )
    fresh = {"csrf": csrf, "name": "New", "email": "new@example.com", "password": "y" * 9}
    fresh["password2"] = fresh["password"]
    refused = ui.post(pid, "register", fresh)
    assert refused.status_code == 400
    assert "Too many accounts were created from here" in refused.text
    assert world.directory.party_by_email("new@example.com") is None
    probe = ui.post(pid, "register", form)  # past the limit a taken email tells nothing either
    assert probe.status_code == 400
    assert "Too many accounts were created from here" in probe.text
    assert "already exists" not in probe.text
