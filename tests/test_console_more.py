"""The merchant console's other pages in process (Starlette's TestClient), on SQLite and
PostgreSQL: the dashboard's liability and debt over time against the ledger (today's and that
of two sandbox days ago), its daily sums against sums computed here from every transaction
(after each kind of write, after a rebuild and after migration 0020), the buyers' instruments
and tokens and the IPN deliveries walked page by page (keyset pages: every row once, in
order), IPN (the URL, deliveries, attempts, retry with CSRF and the log), withdrawals (state,
refusals, completion after the sandbox clock moves) and the sandbox page (clock, test cards;
absent in production).
"""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import Table, delete, insert, select, text

from builders import application, prepaid, usd
from console_support import ConsoleClient, Shop
from penny.api.resources import encode_position
from penny.clock import MICROS_PER_DAY
from penny.domain.model import Operation, Status
from penny.sandbox.advance import finish_due
from penny.services.factory import build_services
from penny.services.payments import FundPrepaidRequest, PayRequest, RefundRequest
from penny.storage import console_days_sql, console_sql, ipn_sql, payments_sql, schema
from penny.storage.database import current_revision, upgrade
from penny.web.console import merchant_more
from penny.web.console.views import money


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


def test_the_instruments_list_reads_every_balance_in_one_call(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list shows each instrument's balance (prepaid) or debt (tab), read all at once: one
    ``balances`` call for the page, never one balance read per instrument."""
    side, payments = shop.main, shop.world.payments
    expected = {
        side.prepaid.instrument.id: payments.prepaid_balance(
            side.merchant.id, side.prepaid.instrument.id
        ).main.minor,
        side.postpaid.instrument.id: payments.debt_balance(
            side.merchant.id, side.postpaid.instrument.id
        ).main.minor,
    }
    asked: list[int] = []
    queries = type(payments)
    every = queries.balances

    def counted(self: object, wanted: list[object]) -> object:
        asked.append(len(wanted))
        return every(self, wanted)  # type: ignore[arg-type]

    def one_by_one(*_: object) -> object:
        raise AssertionError("a balance read for one instrument")

    monkeypatch.setattr(queries, "balances", counted)
    monkeypatch.setattr(queries, "balance", one_by_one)
    page = _merchant(shop).get("/account/merchant/instruments")
    assert page.status_code == 200
    assert asked == [len(expected)]
    for instrument, minor in expected.items():
        row = page.text[page.text.index(f'instruments/{instrument}"') :]
        assert f'<td class="num">{money(minor)}</td>' in row[: row.index("</tr>")]


def _walk(client: ConsoleClient, path: str, link: str, what: str) -> list[list[str]]:
    """Follow a list's "Older" links from ``path`` to its last page: the ids each page links
    to with ``link``, page by page."""
    pages: list[list[str]] = []
    url: str | None = path
    while url is not None:
        page = client.get(url)
        assert page.status_code == 200, url
        pages.append(re.findall(rf'href="{re.escape(link)}([A-Za-z0-9_-]+)"', page.text))
        older = re.search(rf'href="([^"]+)" rel="next">Older {what}<', page.text)
        url = html.unescape(older.group(1)) if older else None
        if len(pages) > 1:
            assert f">Newest {what}<" in page.text
        assert len(pages) < 100
    return pages


def _newest_first(shop: Shop, table: Table, owner: str) -> list[str]:
    """The main merchant's rows of ``table`` (``owner``: the column naming it) as the lists
    order them, ``created_at`` then id, newest first: read here, not through the console."""
    with shop.world.db.read() as conn:
        rows = conn.execute(
            select(table.c.id, table.c.created_at).where(table.c[owner] == shop.main.merchant.id)
        ).all()
    return [str(i) for _at, i in sorted(((r.created_at, r.id) for r in rows), reverse=True)]


def test_instruments_tokens_and_ipn_lists_are_paged_by_keyset(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    side = shop.main
    # A third instrument (on the test clock, perhaps at the instant of another: ids break ties).
    card = shop.world.directory.add_card(side.buyer.id, "5555555555554444", 12, 2031)
    prepaid(shop.world.payments, side.merchant.id, side.buyer.id, card.id, "a-p3", limit="10")
    monkeypatch.setattr(merchant_more, "LIST_SIZE", 2)
    client = _merchant(shop)
    lists = (
        (
            "/account/merchant/instruments",
            "/account/merchant/instruments/",
            "instruments",
            schema.instruments,
            "recipient_id",
        ),
        (
            "/account/merchant/instruments",
            "/account/merchant/tokens/",
            "tokens",
            schema.tokens,
            "caller_id",
        ),
        (
            "/account/merchant/ipn",
            "/account/merchant/ipn/",
            "deliveries",
            schema.ipn_notifications,
            "account_id",
        ),
    )
    for path, link, what, table, owner in lists:
        pages = _walk(client, path, link, what)
        expected = _newest_first(shop, table, owner)
        assert len(expected) > 2, what
        # Page 2 exists; every page but the last is full; no row twice or lost, in order.
        assert len(pages) == -(-len(expected) // 2), what
        assert all(len(page) == 2 for page in pages[:-1]), what
        assert [i for page in pages for i in page] == expected, what
    # A list's cursor leaves the other list of the page where it was.
    second = client.get("/account/merchant/instruments?instruments=" + _cursor_after(shop))
    assert second.status_code == 200
    assert ">Newest instruments<" in second.text
    assert ">Newest tokens<" not in second.text
    # A cursor that is not one of ours starts at the newest.
    junk = client.get("/account/merchant/ipn?after=%25%25not-a-cursor")
    assert junk.status_code == 200
    assert ">Newest deliveries<" in junk.text


def _cursor_after(shop: Shop) -> str:
    first = _newest_first(shop, schema.instruments, "recipient_id")[0]
    with shop.world.db.read() as conn:
        instrument = payments_sql.load_instruments(conn, [first])[first]
    return encode_position(instrument.created_at, instrument.id)


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


def _sums_from_transactions(shop: Shop) -> dict[tuple[str, int, str], tuple[int, int, int]]:
    """The daily sums computed here, from every row of ``transactions`` (not through
    console_days_sql): per caller, day and operation the successful ones received that day;
    per caller and day the liability and debt moved by the successful ones completed that day."""
    moves = {
        ("FundPrepaid", None): (1, 0),
        ("Pay", "Prepaid"): (-1, 0),
        ("Refund", "Prepaid"): (1, 0),
        ("Pay", "Debt"): (0, 1),
        ("Refund", "Debt"): (0, -1),
        ("SettleDebt", None): (0, -1),
        ("WriteOffDebt", None): (0, -1),
    }
    found: dict[tuple[str, int, str], tuple[int, int, int]] = {}
    with shop.world.db.read() as conn:
        rows = list(conn.execute(select(schema.transactions)))
    for t in rows:
        if t.status != "Success":
            continue
        key = (t.caller_id, t.received_at // MICROS_PER_DAY * MICROS_PER_DAY, t.operation)
        a, f, n = found.get(key, (0, 0, 0))
        found[key] = (a + t.amount, f + t.fees, n + 1)
        move = moves.get((t.operation, t.method), moves.get((t.operation, None), (0, 0)))
        day = t.completed_at // MICROS_PER_DAY * MICROS_PER_DAY
        for item, sign in zip(("Δliability", "Δdebt"), move, strict=True):
            if sign:
                a = found.get((t.caller_id, day, item), (0, 0, 0))[0]
                found[(t.caller_id, day, item)] = (a + sign * t.amount, 0, 0)
    return {key: sums for key, sums in found.items() if sums != (0, 0, 0)}


def _sums_stored(shop: Shop) -> dict[tuple[str, int, str], tuple[int, int, int]]:
    days = schema.console_days
    with shop.world.db.read() as conn:
        rows = conn.execute(select(days))
        return {
            (party, day, item): (amount, fees, count)
            for party, day, item, amount, fees, count in rows
            if amount or fees or count
        }


def test_the_daily_sums_are_the_transactions_sums_after_every_kind_of_write(shop: Shop) -> None:
    world, side = shop.world, shop.main
    merchant = side.merchant.id
    assert _sums_stored(shop) == _sums_from_transactions(shop) != {}
    client = _merchant(shop)
    fresh = client.get("/account/merchant?days=30").text
    # Pending bank-funded FundPrepaids complete days later; Pays, Refunds and a settlement move
    # other days: every write keeps the sums.
    world.clock.advance(3 * MICROS_PER_DAY)
    payments = world.payments
    tab = payments.execute(PayRequest(merchant, "s-tab", side.postpaid.sender_token.id, usd("4")))
    payments.execute(RefundRequest(merchant, "s-tab-back", tab.id, usd("1")))
    paid = payments.execute(PayRequest(merchant, "s-pay", side.prepaid.sender_token.id, usd("2")))
    payments.execute(RefundRequest(merchant, "s-pay-back", paid.id, usd("2")))
    world.clock.advance(6 * MICROS_PER_DAY)
    finish_due(world.payments)
    stored = _sums_stored(shop)
    assert stored == _sums_from_transactions(shop)
    # Computing them again from the table gives the same rows.
    with world.db.write() as conn:
        console_days_sql.rebuild(conn)
    assert _sums_stored(shop) == stored
    # The dashboard shows them: 30 days of sales, and the liability walked back to the ledger.
    page = client.get("/account/merchant?days=30").text
    now = world.clock.now_us()
    first = now - now % MICROS_PER_DAY - 29 * MICROS_PER_DAY
    sales = sum(
        amount
        for (party, day, item), (amount, _f, _n) in stored.items()
        if party == merchant and item == "Pay" and day >= first
    )
    assert _figure(page, "fig-sales") == money(sales)
    assert _balance_rows(page)[-10][1:] == _balance_rows(fresh)[-1][1:]
    assert _balance_rows(page)[-1][1:] == tuple(money(v) for v in _ledger(shop))
    # The table is what is read: a changed row shows.
    with world.db.write() as conn:
        conn.execute(
            schema.console_days.update()
            .where(schema.console_days.c.party_id == merchant)
            .where(schema.console_days.c.item == "Pay")
            .values(amount=schema.console_days.c.amount + 100)
        )
    bumped = client.get("/account/merchant?days=30").text
    assert _figure(bumped, "fig-sales") != _figure(page, "fig-sales")


def test_the_migration_computes_the_daily_sums_of_existing_transactions(shop: Shop) -> None:
    """A store at 0017 had only the finished days a dashboard had read, with ``""`` markers:
    revision 0020 replaces them with every day's sums."""
    db = shop.world.db
    expected = _sums_from_transactions(shop)
    with db.write() as conn:
        conn.execute(delete(schema.console_days))
        conn.execute(
            insert(schema.console_days),
            [
                {
                    "party_id": shop.main.merchant.id,
                    "day": 0,
                    "item": "",
                    "amount": 0,
                    "fees": 0,
                    "count": 0,
                }
            ],
        )
        conn.execute(text("UPDATE alembic_version SET version_num = '0017'"))
    upgrade(db)
    assert current_revision(db) == "0020"
    assert _sums_stored(shop) == expected != {}


def _figure(html: str, name: str) -> str:
    found = re.search(rf'id="{name}">([^<]+)<', html)
    assert found is not None, name
    return found.group(1)
