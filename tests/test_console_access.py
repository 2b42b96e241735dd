"""Who may see what on the account site, route by route, on SQLite and PostgreSQL; and the
transaction list's query plans.

Every route under ``/account`` but sign-in, sign-out, the index and the style sheet is taken
from the application's own route table (a new route cannot escape these tests) and tried:
without a session (a redirect to sign-in, nothing changed), with a session of the other kind
of account (the same), and with another party's ids (exactly the answer of an unknown id: 404
with the same body). The list's statement is checked to be one index range scan, without a
sort, on both stores: that is what keeps a page as fast at 10⁶ rows as at ten.
"""

from __future__ import annotations

import pytest
from starlette.routing import Route

from builders import sender_token, usd
from console_support import ConsoleClient, Shop
from penny.api.resources import encode_position
from penny.domain.model import Operation, TokenKind
from penny.storage import console_sql, ipn_sql, payments_sql
from penny.storage.database import open_database

PUBLIC = {
    "/account",
    "/account/",
    "/account/static/console.css",
    "/account/signin/merchant",
    "/account/signin/buyer",
    "/account/signout",
}
UNKNOWN = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"


def _private_routes(shop: Shop) -> list[tuple[str, str]]:
    found = []
    for route in shop.world.app.routes:
        if not isinstance(route, Route) or not route.path.startswith("/account"):
            continue
        if route.path not in PUBLIC:
            found += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
    assert len(found) > 10
    return found


def _fill(path: str, shop: Shop, unknown: bool, token: str | None = None) -> str:
    """The path with the other side's ids (or unknown ones) for its parameters (``token``:
    another of its tokens than its prepaid sender token)."""
    other = shop.other
    ids = {
        "/account/merchant/transactions/{tid}": other.pays[1].id,
        "/account/merchant/keys/{kid}": other.access_key,
        "/account/buyer/instruments/{iid}": other.prepaid.instrument.id,
        "/account/buyer/tokens/{tid}": other.prepaid.sender_token.id,
        "/account/merchant/instruments/{iid}": other.prepaid.instrument.id,
        "/account/merchant/tokens/{tkid}": other.prepaid.sender_token.id,
        "/account/merchant/ipn/{nid}": _a_notification_of(shop, other.merchant.id),
        "/account/buyer/methods/{mid}": _card_of(shop, other.buyer.id),
    }
    if token is not None:
        ids["/account/buyer/tokens/{tid}"] = ids["/account/merchant/tokens/{tkid}"] = token
    for prefix, value in ids.items():
        name = prefix.rsplit("/", 1)[1]
        if path.startswith(prefix):
            path = path.replace(name, UNKNOWN if unknown else value)
    assert "{" not in path, path
    return path


def _a_notification_of(shop: Shop, account_id: str) -> str:
    with shop.world.db.read() as conn:
        found = ipn_sql.listing(conn, account_id=account_id, limit=1)
    return found[0].id


def _card_of(shop: Shop, buyer_id: str) -> str:
    (card,) = [m for m in shop.world.directory.payment_methods(buyer_id) if m.last4]
    return card.id


def _untouched(shop: Shop) -> None:
    """The other side's card is still there and its authorizations still active."""
    other = shop.other
    assert _card_of(shop, other.buyer.id)
    for token in (other.prepaid.sender_token, other.prepaid.second_token):
        assert shop.world.payments.token_by_caller(other.merchant.id, token_id=token.id).active


def _home_kind(path: str) -> str:
    return "merchant" if path.startswith("/account/merchant") else "buyer"


def test_no_session_and_the_wrong_kind_of_account_are_sent_to_sign_in(shop: Shop) -> None:
    anonymous = ConsoleClient(shop.world)
    merchant = ConsoleClient(shop.world)
    merchant.sign_in_merchant(shop.main)
    buyer = ConsoleClient(shop.world)
    buyer.sign_in_buyer(shop.main)
    for method, pattern in _private_routes(shop):
        path = _fill(pattern, shop, unknown=False)
        wrong = buyer if _home_kind(pattern) == "merchant" else merchant
        for client in (anonymous, wrong):
            form = {"csrf": client.csrf()} if client is wrong else {}
            answer = (
                client.get(path) if method == "GET" else client.post(path, {**form, "amount": "1"})
            )
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"] == f"/account/signin/{_home_kind(pattern)}"
    # Nothing changed: no refund, no key, no cancelled token.
    other = shop.other
    assert shop.world.payments.transaction(other.merchant.id, other.pays[1].id).refunded == 0
    assert len(shop.world.directory.list_keys(other.merchant.id)) == 1
    assert shop.world.directory.secret_for(other.access_key) is not None
    token = other.prepaid.sender_token.id
    assert shop.world.payments.token_by_caller(other.merchant.id, token_id=token).active
    _untouched(shop)
    assert len(shop.world.directory.payment_methods(shop.main.buyer.id)) == 2  # nothing added


def test_another_party_s_ids_answer_exactly_like_unknown_ones(shop: Shop) -> None:
    merchant = ConsoleClient(shop.world)
    merchant.sign_in_merchant(shop.main)
    buyer = ConsoleClient(shop.world)
    buyer.sign_in_buyer(shop.main)
    checked = 0
    for method, pattern in _private_routes(shop):
        if "{" not in pattern:
            continue
        client = merchant if _home_kind(pattern) == "merchant" else buyer
        answers = []
        for unknown in (False, True):
            path = _fill(pattern, shop, unknown)
            if method == "GET":
                answers.append(client.get(path))
            else:
                answers.append(client.post(path, {"csrf": client.csrf(), "amount": "1"}))
        theirs, nobody_s = answers
        assert theirs.status_code == nobody_s.status_code == 404, (method, pattern)
        assert theirs.content == nobody_s.content
        checked += 1
    assert checked >= 10
    other = shop.other
    assert shop.world.payments.transaction(other.merchant.id, other.pays[1].id).refunded == 0
    assert shop.world.directory.secret_for(other.access_key) is not None
    token = other.prepaid.sender_token.id
    assert shop.world.payments.token_by_caller(other.merchant.id, token_id=token).active
    _untouched(shop)
    # Filters cannot reach another merchant's transactions either.
    listed = merchant.get(
        f"/account/merchant/transactions?q={other.pays[1].id}"
        f"&instrument={other.prepaid.instrument.id}"
    )
    assert f"/transactions/{other.pays[1].id}" not in listed.text
    assert "No transactions." in listed.text


def test_another_party_s_authorizations_and_list_cursors_reach_nothing(shop: Shop) -> None:
    """A SingleUse, MultiUse or Recurring token of the other side, on every token route: like
    an unknown id signed in, a redirect without a session; and a page cursor made from the
    other side's rows lists only one's own."""
    other = shop.other
    card = _card_of(shop, other.buyer.id)
    given = sender_token(
        shop.world.payments,
        other.merchant.id,
        other.buyer.id,
        card,
        "acc-multi",
        TokenKind.multi_use,
        transaction_amount=usd("5"),
        global_amount_limit=usd("20"),
    ).token
    merchant = ConsoleClient(shop.world)
    merchant.sign_in_merchant(shop.main)
    buyer = ConsoleClient(shop.world)
    buyer.sign_in_buyer(shop.main)
    anonymous = ConsoleClient(shop.world)
    routes = [(m, p) for m, p in _private_routes(shop) if "{tid}" in p or "{tkid}" in p]
    assert len(routes) >= 3
    for method, pattern in routes:
        client = merchant if _home_kind(pattern) == "merchant" else buyer
        answers = []
        for who, unknown in ((client, False), (client, True), (anonymous, False)):
            path = _fill(pattern, shop, unknown, token=given.id)
            form = {"csrf": who.csrf()} if who is client else {}
            answers.append(who.get(path) if method == "GET" else who.post(path, form))
        theirs, nobody_s, no_session = answers
        assert theirs.status_code == nobody_s.status_code == 404, (method, pattern)
        assert theirs.content == nobody_s.content
        assert no_session.status_code == 303
    assert shop.world.payments.token_by_caller(other.merchant.id, token_id=given.id).active
    with shop.world.db.read() as conn:
        instrument = payments_sql.load_instruments(conn, [other.prepaid.instrument.id])
        notification = ipn_sql.load(conn, _a_notification_of(shop, other.merchant.id))
    assert notification is not None
    at = instrument[other.prepaid.instrument.id]
    cursors = {
        "/account/merchant/instruments?instruments=": encode_position(at.created_at, at.id + "~"),
        "/account/merchant/instruments?tokens=": encode_position(given.created_at, given.id + "~"),
        "/account/merchant/ipn?after=": encode_position(
            notification.created_at, notification.id + "~"
        ),
    }
    for path, cursor in cursors.items():
        page = merchant.get(path + cursor)
        assert page.status_code == 200
        for theirs_id in (at.id, given.id, notification.id, other.prepaid.sender_token.id):
            assert theirs_id not in page.text, (path, theirs_id)


@pytest.mark.parametrize(
    ("where", "index"),
    [
        (console_sql.TransactionFilter(caller_id="m"), "ix_transactions_caller_received_id"),
        (
            console_sql.TransactionFilter(caller_id="m", operation=Operation.pay, since=1),
            "ix_transactions_caller_received_id",
        ),
        (console_sql.TransactionFilter(instrument_id="i"), "ix_transactions_instrument_received"),
    ],
)
def test_a_page_is_an_index_range_scan_without_a_sort(
    database_url: str, where: console_sql.TransactionFilter, index: str
) -> None:
    database = open_database(database_url)
    try:
        for after in (None, (1_000, "T")):
            statement = console_sql.page_query(where, after, 51)
            with database.read() as conn:
                sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
                if database.is_postgresql:
                    # An empty table is cheaper to scan than to search: ask for the plan the
                    # planner takes once the table is large.
                    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                    plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
                    assert "Sort" not in plan, plan
                else:
                    rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                    plan = "\n".join(str(r[-1]) for r in rows)
                    assert "TEMP B-TREE" not in plan, plan
                    assert "SCAN" not in plan.replace("SEARCH", ""), plan
            assert index in plan, plan
    finally:
        database.dispose()
