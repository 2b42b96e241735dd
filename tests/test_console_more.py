"""The merchant console's other pages in process (Starlette's TestClient), on SQLite and
PostgreSQL: the dashboard's liability and debt over time against the ledger (today's and that
of two sandbox days ago), the buyers' instruments and tokens, IPN (the URL, deliveries,
attempts, retry with CSRF and the log), withdrawals (state, refusals, completion after the
sandbox clock moves) and the sandbox page (clock, test cards; absent in production).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from builders import application, usd
from console_support import ConsoleClient, Shop, make_shop
from penny.clock import MICROS_PER_DAY
from penny.domain.model import Operation, Status
from penny.services.factory import build_services
from penny.services.payments import FundPrepaidRequest, PayRequest, RefundRequest
from penny.storage import console_sql, ipn_sql, merchant_sql
from penny.web.console import merchant_more
from penny.web.console.views import money


@pytest.fixture
def shop(database_url: str) -> Iterator[Shop]:
    made = make_shop(database_url)
    yield made
    made.world.db.dispose()


def _merchant(shop: Shop) -> ConsoleClient:
    client = ConsoleClient(shop.world)
    client.sign_in_merchant(shop.main)
    return client


def _ledger(shop: Shop) -> tuple[int, int]:
    payments, merchant = shop.world.payments, shop.main.merchant.id
    return (
        payments.total_prepaid_liability(merchant).main.minor,
        payments.outstanding_debt(merchant).main.minor,
    )


def _balance_rows(html: str) -> list[tuple[str, str, str]]:
    table = html[html.index('id="balance-table"') :]
    table = table[: table.index("</table>")]
    cells = re.findall(
        r'<tr><td>([0-9-]+)</td><td class="num">([^<]+)</td><td class="num">([^<]+)</td></tr>',
        table,
    )
    return [(d, a, b) for d, a, b in cells]


def _ipn_url(shop: Shop) -> str | None:
    party = shop.world.directory.party(shop.main.merchant.id)
    assert party is not None
    return party.ipn_url


def _actions(shop: Shop) -> list[str]:
    with shop.world.db.read() as conn:
        return [a.action for a in console_sql.actions_of(conn, shop.main.merchant.id)]


def test_the_dashboard_draws_liability_and_debt_as_the_ledger_had_them(shop: Shop) -> None:
    world, side = shop.world, shop.main
    client = _merchant(shop)
    before = _ledger(shop)
    assert before[0] > 0
    assert before[1] > 0
    world.clock.advance(2 * MICROS_PER_DAY)
    payments, merchant = world.payments, side.merchant.id
    instrument, token = side.prepaid.instrument.id, side.prepaid.second_token.id
    payments.execute(FundPrepaidRequest(merchant, "a-fund-2", token, instrument, usd("5")))
    tab = payments.execute(PayRequest(merchant, "a-tab-1", side.postpaid.sender_token.id, usd("3")))
    payments.execute(RefundRequest(merchant, "a-tab-refund", tab.id, usd("1")))
    payments.execute(PayRequest(merchant, "a-pay-9", side.prepaid.sender_token.id, usd("0.50")))
    now = _ledger(shop)
    assert now != before
    page = client.get("/account/merchant?days=7")
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') == 4
    assert 'aria-label="Prepaid liability at the end of each day"' in page.text
    rows = _balance_rows(page.text)
    assert len(rows) == 7
    assert rows[-1][1:] == (money(now[0]), money(now[1]))
    assert rows[-3][1:] == (money(before[0]), money(before[1]))
    assert rows[-2][1:] == rows[-3][1:]
    # Before the shop opened (all its business is within the week) both were zero.
    assert rows[0][1:] == ("$0.00", "$0.00")


def test_instruments_and_tokens_of_the_merchant_s_buyers_only(shop: Shop) -> None:
    side, other, payments = shop.main, shop.other, shop.world.payments
    client = _merchant(shop)
    page = client.get("/account/merchant/instruments")
    assert page.status_code == 200
    for mine in (side.prepaid.instrument.id, side.postpaid.instrument.id):
        assert f'/account/merchant/instruments/{mine}"' in page.text
    for token in (side.prepaid.sender_token.id, side.postpaid.sender_token.id):
        assert f'/account/merchant/tokens/{token}"' in page.text
    assert other.prepaid.instrument.id not in page.text
    assert other.prepaid.sender_token.id not in page.text
    instrument = side.prepaid.instrument.id
    detail = client.get(f"/account/merchant/instruments/{instrument}")
    assert detail.status_code == 200
    balance = payments.prepaid_balance(side.merchant.id, instrument).main.minor
    assert f'id="inst-balance">{money(balance)}<' in detail.text
    for txn in side.transactions:
        if txn.instrument_id == instrument:
            assert f"/account/merchant/transactions/{txn.id}" in detail.text
    debt = payments.debt_balance(side.merchant.id, side.postpaid.instrument.id).main.minor
    tab = client.get(f"/account/merchant/instruments/{side.postpaid.instrument.id}")
    assert f'id="inst-balance">{money(debt)}<' in tab.text
    token_page = client.get(f"/account/merchant/tokens/{side.prepaid.sender_token.id}")
    now = [payments.transaction(side.merchant.id, t.id) for t in side.pays]
    spent = sum(t.amount - t.refunded for t in now if t.instrument_id == instrument)
    assert spent == 425
    assert f"{money(spent)} in 3 payments" in token_page.text
    for wrong in (other.prepaid.instrument.id, other.prepaid.sender_token.id):
        assert client.get(f"/account/merchant/instruments/{wrong}").status_code == 404
        assert client.get(f"/account/merchant/tokens/{wrong}").status_code == 404


def test_ipn_url_deliveries_attempts_and_retry(shop: Shop) -> None:
    world, side, other = shop.world, shop.main, shop.other
    client = _merchant(shop)
    with world.db.read() as conn:
        mine = ipn_sql.listing(conn, account_id=side.merchant.id)
        theirs = ipn_sql.listing(conn, account_id=other.merchant.id)
    assert mine
    assert theirs
    page = client.get("/account/merchant/ipn")
    assert page.status_code == 200
    for n in mine:
        assert f'/account/merchant/ipn/{n.id}"' in page.text
    assert all(n.id not in page.text for n in theirs)
    csrf = client.csrf("/account/merchant/ipn")
    bad = client.post("/account/merchant/ipn", {"csrf": csrf, "url": "ftp://x"})
    assert bad.status_code == 400
    assert "is not an http:// or https:// URL" in bad.text
    good = client.post("/account/merchant/ipn", {"csrf": csrf, "url": "https://shop.example/ipn"})
    assert good.status_code == 303
    assert _ipn_url(shop) == "https://shop.example/ipn"
    cleared = client.post("/account/merchant/ipn", {"csrf": csrf, "url": ""})
    assert cleared.status_code == 303
    assert _ipn_url(shop) is None
    target = mine[0]
    detail = client.get(f"/account/merchant/ipn/{target.id}")
    assert detail.status_code == 200
    assert 'id="ipn-state">pending<' in detail.text
    with world.db.write() as conn:  # as if every attempt had failed
        conn.execute(
            ipn_sql.notifications.update()
            .where(ipn_sql.notifications.c.id == target.id)
            .values(state=ipn_sql.FAILED, next_attempt_at=None)
        )
    retry = f"/account/merchant/ipn/{target.id}/retry"
    assert client.post(retry, {"csrf": "forged"}).status_code == 403
    with world.db.read() as conn:
        assert ipn_sql.load(conn, target.id).state == ipn_sql.FAILED  # type: ignore[union-attr]
    assert client.post(retry, {"csrf": csrf}).status_code == 303
    with world.db.read() as conn:
        again = ipn_sql.load(conn, target.id)
    assert again is not None
    assert again.state == ipn_sql.PENDING
    assert again.next_attempt_at is not None
    assert abs(again.next_attempt_at - world.clock.now_us()) < 60 * 1_000_000
    assert _actions(shop)[:3] == ["ipn.retry", "ipn.url", "ipn.url"]
    assert client.post(
        f"/account/merchant/ipn/{theirs[0].id}/retry", {"csrf": csrf}
    ).status_code == (404)


def _sent_rows(html: str) -> list[tuple[str, str, str, str]]:
    """(state, attempts, last HTTP status, notification id) of each row of the IPN-sent table."""
    table = html[html.index('id="ipn-sent"') :]
    table = table[: table.index("</table>")]
    return re.findall(
        r'<span class="status status-[a-z]+">([a-z]+)</span></td>\s*'
        r'<td class="num">(\d+)</td>\s*<td class="num">([^<]+)</td>\s*'
        r'<td class="id"><a href="/account/merchant/ipn/([^"]+)">',
        table,
    )


def _deliver(shop: Shop, notification_id: str, http_status: int) -> None:
    """Claim every due notification as a worker would, and record ``notification_id`` sent."""
    now = shop.world.clock.now_us()
    with shop.world.db.write() as conn:
        claimed = ipn_sql.claim_due(
            conn,
            now=now,
            limit=1000,
            lease_until=now + 60_000_000,
            worker="test",
            claim="test-claim",
            skip_locked=False,
        )
        mine = [c for c in claimed if c.id == notification_id]
        assert len(mine) == 1
        result = ipn_sql.AttemptResult(
            mine[0], now + 1000, 1000, http_status, ipn_sql.DELIVERED, None, ipn_sql.DELIVERED
        )
        ipn_sql.record_results(conn, [result])


def test_the_transaction_page_shows_the_ipn_sent_for_it(shop: Shop) -> None:
    world, side, other = shop.world, shop.main, shop.other
    client = _merchant(shop)
    pay = side.pays[0]
    with world.db.read() as conn:
        sent = ipn_sql.listing(conn, account_id=side.merchant.id, subject_id=pay.id)
    assert len(sent) == 1
    nid = sent[0].id
    path = f"/account/merchant/transactions/{pay.id}"
    page = client.get(path)
    assert page.status_code == 200
    assert _sent_rows(page.text) == [("pending", "0", "none", nid)]
    _deliver(shop, nid, 200)
    assert _sent_rows(client.get(path).text) == [("delivered", "1", "200", nid)]
    assert client.get(f"/account/merchant/ipn/{nid}").status_code == 200
    # Without an IPN URL nothing is sent, and the page says so.
    world.directory.set_ipn_url(side.merchant.id, None)
    quiet = world.payments.execute(
        PayRequest(side.merchant.id, "a-quiet", side.prepaid.sender_token.id, usd("0.10"))
    )
    assert quiet.status is Status.success
    page = client.get(f"/account/merchant/transactions/{quiet.id}")
    assert page.status_code == 200
    assert _sent_rows(page.text) == []
    assert "No IPN was sent." in page.text
    # Another merchant sees neither the transaction nor its notification.
    theirs = ConsoleClient(world)
    theirs.sign_in_merchant(other)
    assert theirs.get(path).status_code == 404
    assert theirs.get(f"/account/merchant/ipn/{nid}").status_code == 404
    own = theirs.get(f"/account/merchant/transactions/{other.pays[0].id}")
    assert own.status_code == 200
    rows = _sent_rows(own.text)
    assert len(rows) == 1
    assert nid not in own.text


def test_withdrawals_are_listed_with_their_state_and_complete_in_the_sandbox(shop: Shop) -> None:
    world, side = shop.world, shop.main
    payments, merchant = world.payments, side.merchant.id
    client = _merchant(shop)
    available = payments.account_balance(merchant).disburse.minor
    assert available > 100
    page = client.get("/account/merchant/withdrawals")
    assert f'id="fig-available">{money(available)}<' in page.text
    reference = re.search(r'name="reference" value="([^"]+)"', page.text)
    assert reference is not None
    csrf = client.csrf("/account/merchant/withdrawals")
    form = {"csrf": csrf, "reference": reference.group(1)}
    too_much = client.post("/account/merchant/withdrawals", {**form, "amount": "100000"})
    assert too_much.status_code == 400
    assert 'id="amount-error"' in too_much.text
    made = client.post("/account/merchant/withdrawals", {**form, "amount": "1.00"})
    assert made.status_code == 303
    # The same form sent twice makes one withdrawal (the reference is its CallerReference).
    assert client.post("/account/merchant/withdrawals", {**form, "amount": "1.00"}).status_code == (
        303
    )
    where = console_sql.TransactionFilter(caller_id=merchant, operation=Operation.withdraw)
    with world.db.read() as conn:
        listed = console_sql.transactions_page(conn, where, None, 10)
    assert [(t.amount, t.status) for t in listed] == [(100, Status.pending)]
    assert payments.account_balance(merchant).disburse.minor == available - 100
    page = client.get("/account/merchant/withdrawals")
    assert f"/account/merchant/transactions/{listed[0].id}" in page.text
    assert "status-pending" in page.text
    assert "withdraw" in _actions(shop)
    sandbox = client.post("/account/merchant/sandbox", {"csrf": csrf, "days": "5"})
    assert sandbox.status_code == 303
    assert payments.transaction(merchant, listed[0].id).status is Status.success
    assert "status-success" in client.get("/account/merchant/withdrawals").text


def test_the_sandbox_page_moves_the_clock_and_lists_the_test_cards(shop: Shop) -> None:
    world = shop.world
    client = _merchant(shop)
    page = client.get("/account/merchant/sandbox")
    assert page.status_code == 200
    assert "4000000000000002" in page.text
    assert "is declined at once" in page.text
    assert 'href="/account/merchant/sandbox"' in page.text  # in the menu
    csrf = client.csrf("/account/merchant/sandbox")
    before = world.clock.now_us()
    for wrong in ("0", "-1", "x", "366"):
        refused = client.post("/account/merchant/sandbox", {"csrf": csrf, "days": wrong})
        assert refused.status_code == 400
    assert client.post("/account/merchant/sandbox", {"days": "3"}).status_code == 403
    assert world.clock.now_us() - before < MICROS_PER_DAY
    moved = client.post("/account/merchant/sandbox", {"csrf": csrf, "days": "3"})
    assert moved.status_code == 303
    assert 3 * MICROS_PER_DAY <= world.clock.now_us() - before < 4 * MICROS_PER_DAY
    assert "sandbox.advance" in _actions(shop)


def test_no_sandbox_page_in_production(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    assert merchant_more.sandbox_mode({"PENNY_MODE": "production"}) is False
    assert merchant_more.sandbox_mode({}) is True
    monkeypatch.setenv("PENNY_MODE", "production")
    services = build_services(
        shop.world.db, clock=shop.world.clock, server_key=shop.world.server_key
    )
    shop.world.app = application(services)
    client = _merchant(shop)
    page = client.get("/account/merchant/sandbox")
    assert page.status_code == 404
    dashboard = client.get("/account/merchant").text
    assert 'href="/account/merchant/sandbox"' not in dashboard
    # No "Sandbox" badge or sandbox footer line on a production server's pages.
    assert '<span class="badge">Sandbox</span>' not in dashboard
    assert "no real money moves" not in dashboard


def test_sandbox_pages_wear_the_badge(shop: Shop) -> None:
    dashboard = _merchant(shop).get("/account/merchant").text
    assert '<span class="badge">Sandbox</span>' in dashboard
    assert "no real money moves" in dashboard


def test_finished_days_are_cached_and_read_back_the_same(shop: Shop) -> None:
    world, merchant = shop.world, shop.main.merchant.id
    client = _merchant(shop)
    fresh = client.get("/account/merchant?days=30").text
    opened = world.clock.now_us()
    first_day = opened - opened % MICROS_PER_DAY
    with world.db.read() as conn:
        before = merchant_sql.cached_days(conn, merchant, 0, 2**62)
    # Days that ended more than five days ago are cached (empty ones too); recent ones are not.
    assert len(before) == 30 - 6
    assert max(before) == first_day - 6 * MICROS_PER_DAY
    world.clock.advance(10 * MICROS_PER_DAY)
    page = client.get("/account/merchant?days=30")
    with world.db.read() as conn:
        cached = merchant_sql.cached_days(conn, merchant, 0, 2**62)
        computed = merchant_sql.day_facts(conn, merchant, first_day, first_day + MICROS_PER_DAY)
    assert cached[first_day] == computed[first_day]
    assert cached[first_day].totals["Pay"][2] == 4
    assert max(cached) == first_day + 4 * MICROS_PER_DAY
    again = client.get("/account/merchant?days=30")
    assert _balance_rows(again.text) == _balance_rows(page.text)
    assert _balance_rows(page.text)[-11][1:] == _balance_rows(fresh)[-1][1:]
    for figure in ("fig-sales", "fig-fees", "fig-net", "fig-refunds"):
        assert _figure(again.text, figure) == _figure(fresh, figure)
    # The cache is what is read: a changed row shows (and nothing recomputes it).
    with world.db.write() as conn:
        conn.execute(
            merchant_sql.days.update()
            .where(merchant_sql.days.c.party_id == merchant, merchant_sql.days.c.item == "Pay")
            .values(amount=merchant_sql.days.c.amount + 100)
        )
    bumped = client.get("/account/merchant?days=30").text
    assert _figure(bumped, "fig-sales") == money(sum(t.amount for t in shop.main.pays) + 100)


def _figure(html: str, name: str) -> str:
    found = re.search(rf'id="{name}">([^<]+)<', html)
    assert found is not None, name
    return found.group(1)
