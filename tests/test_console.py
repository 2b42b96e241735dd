"""The account site in process (Starlette's TestClient), on SQLite and PostgreSQL: the landing
page and FPS's unchanged answers at ``/``, merchant and buyer sign-in (and its rate limit), the
dashboard's numbers against the ledger, the transaction list (filters, search, keyset pages),
the detail page's legs, refund (confirmation, idempotence, the log), the CSV export, API keys,
the buyer's pages and Cancel (the merchant's IPN, later Pays refused), CSRF on every change.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from builders import usd
from console_support import ConsoleClient, Shop, notifications_about
from penny.domain.errors import PaymentsError
from penny.domain.model import TokenStatus
from penny.services.payments import PayRequest
from penny.web.console.views import PAGE_SIZE, money


def _ids(html: str) -> list[str]:
    return re.findall(r'href="/account/merchant/transactions/([A-Za-z0-9-]+)"', html)


# -- the landing page ---------------------------------------------------------------------


def test_browsers_get_the_landing_page_and_fps_clients_the_same_answers(shop: Shop) -> None:
    client = ConsoleClient(shop.world)
    page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for link in ("/account/signin/merchant", "/account/signin/buyer", "/healthz"):
        assert f'href="{link}"' in page.text
    assert "docs/console.md" in page.text
    plain = client.get("/")
    assert plain.status_code == 400
    assert plain.headers["content-type"].startswith("text/xml")
    assert b"<Code>MissingParameter</Code>" in plain.content
    # An FPS request is FPS whatever its Accept header says.
    with_action = client.get("/?Action=GetAccountBalance", headers={"Accept": "text/html"})
    assert with_action.headers["content-type"].startswith("text/xml")
    posted = client.client.post("/", headers={"Accept": "text/html"}, content=b"")
    assert posted.headers["content-type"].startswith("text/xml")


# -- signing in ---------------------------------------------------------------------------


def test_merchant_sign_in_needs_the_key_and_its_secret_and_is_rate_limited(shop: Shop) -> None:
    client = ConsoleClient(shop.world)
    right = {"access_key": shop.main.access_key, "secret": shop.main.secret}
    # Only from the sign-in form: its token is in the form and in the cookie.
    forged = client.post("/account/signin/merchant", {**right, "csrf": "forged"})
    assert forged.status_code == 403
    wrong = {**right, "secret": "not the secret"}
    for _ in range(5):
        answer = client.sign_in("merchant", wrong)
        assert answer.status_code == 400
        assert "The access key or the secret is wrong." in answer.text
        assert "/account/merchant" not in answer.headers.get("location", "")
    assert client.sign_in("merchant", right).status_code == 429
    # A buyer's password does not open the merchant console, nor a buyer the merchant's.
    buyer = ConsoleClient(shop.world)
    buyer.sign_in_buyer(shop.main)
    assert buyer.get("/account/merchant").headers["location"] == "/account/signin/merchant"


def test_sign_out_ends_the_session(shop: Shop) -> None:
    client = ConsoleClient(shop.world)
    client.sign_in_buyer(shop.main)
    csrf = client.csrf("/account/buyer")
    assert client.post("/account/signout", {"csrf": csrf}).headers["location"] == "/"
    assert client.get("/account/buyer").headers["location"] == "/account/signin/buyer"


# -- the merchant console ------------------------------------------------------------------


def test_dashboard_figures_are_the_ledger_s(shop: Shop) -> None:
    client = ConsoleClient(shop.world)
    client.sign_in_merchant(shop.main)
    page = client.get("/account/merchant?days=7")
    assert page.status_code == 200
    payments, merchant = shop.world.payments, shop.main.merchant.id

    def figure(name: str) -> str:
        match = re.search(rf'id="fig-{name}">([^<]+)<', page.text)
        assert match is not None, name
        return match.group(1)

    liability = payments.total_prepaid_liability(merchant).main.minor
    assert figure("liability") == money(liability)
    assert liability == 2000 - 125 - 250 - 75 + 25
    assert figure("debt") == money(payments.outstanding_debt(merchant).main.minor) == "$7.00"
    assert figure("available") == money(payments.account_balance(merchant).disburse.minor)
    pays = sum(t.amount for t in shop.main.pays)
    assert figure("sales") == money(pays) == "$11.50"
    fund = shop.main.transactions[0]
    assert figure("fees") == money(fund.fees)
    assert figure("net") == money(fund.amount - fund.fees)
    assert figure("refunds") == "$0.25"
    assert page.text.count("<svg") == 4  # sales, Pays per day, liability, debt
    assert 'role="img"' in page.text
    assert "most: 4" in page.text  # four Pays today
    assert page.text.count("<tr><td>") >= 7  # the table alternative: one row a day


def test_transaction_list_filters_search_and_keyset_pages(shop: Shop) -> None:
    payments, side = shop.world.payments, shop.main
    token = side.prepaid.sender_token.id
    more = [PayRequest(side.merchant.id, f"bulk-{n}", token, usd("0.01")) for n in range(60)]
    assert all(not isinstance(r, PaymentsError) for r in payments.submit(more))
    client = ConsoleClient(shop.world)
    client.sign_in_merchant(side)
    seen: list[str] = []
    path = "/account/merchant/transactions"
    while path:
        page = client.get(path)
        assert page.status_code == 200
        seen += _ids(page.text)
        found = re.search(r'href="(/account/merchant/transactions\?[^"]*after=[^"]+)"', page.text)
        path = found.group(1).replace("&amp;", "&") if found else ""
    assert len(seen) == len(set(seen)) == len(side.transactions) + 60
    other_ids = {t.id for t in shop.other.transactions}
    assert not other_ids & set(seen)
    first = client.get("/account/merchant/transactions")
    assert len(_ids(first.text)) == PAGE_SIZE
    refunds = client.get("/account/merchant/transactions?operation=Refund")
    assert _ids(refunds.text) == [side.transactions[-1].id]
    by_reference = client.get("/account/merchant/transactions?q=a-tab-0")
    assert _ids(by_reference.text) == [side.transactions[4].id]
    by_id = client.get(f"/account/merchant/transactions?q={side.transactions[0].id}")
    assert _ids(by_id.text) == [side.transactions[0].id]
    on_tab = client.get(f"/account/merchant/transactions?instrument={side.postpaid.instrument.id}")
    assert _ids(on_tab.text) == [side.transactions[4].id]
    buyer = side.buyer.id
    funded = client.get(f"/account/merchant/transactions?buyer={buyer}&operation=FundPrepaid")
    assert _ids(funded.text) == [side.transactions[0].id]
    theirs = client.get(f"/account/merchant/transactions?buyer={shop.other.buyer.id}")
    assert _ids(theirs.text) == []
    bad = client.get("/account/merchant/transactions?from=yesterday")
    assert "Enter a date as YYYY-MM-DD." in bad.text


def test_detail_refund_confirmation_is_idempotent_and_logged(shop: Shop) -> None:
    side = shop.main
    pay = side.pays[1]  # $2.50, not yet refunded
    client = ConsoleClient(shop.world)
    client.sign_in_merchant(side)
    detail = client.get(f"/account/merchant/transactions/{pay.id}")
    assert detail.status_code == 200
    assert "Ledger legs" in detail.text
    assert f'/account/merchant/transactions/{pay.id}/refund"' in detail.text
    confirm = client.get(f"/account/merchant/transactions/{pay.id}/refund")
    assert confirm.status_code == 200
    assert 'value="2.50"' in confirm.text
    reference = re.search(r'name="reference" value="([^"]+)"', confirm.text)
    assert reference is not None
    form = {"csrf": client.csrf(), "reference": reference.group(1), "amount": "1.00"}
    path = f"/account/merchant/transactions/{pay.id}/refund"
    assert client.post(path, form).status_code == 303
    assert client.post(path, form).status_code == 303  # the same form again: the same refund
    after = shop.world.payments.transaction(side.merchant.id, pay.id)
    assert after.refunded == 100
    assert len(shop.world.payments.refunds(side.merchant.id, pay.id)) == 1
    too_much = client.post(path, {**form, "reference": "console-" + "x" * 20, "amount": "9"})
    assert too_much.status_code == 400
    log = client.get("/account/merchant/log")
    assert log.text.count(">refund<") == 2  # one per attempt that went through the service
    assert side.access_key in log.text


def test_csv_export_of_a_filtered_list(shop: Shop) -> None:
    client = ConsoleClient(shop.world)
    client.sign_in_merchant(shop.main)
    answer = client.get("/account/merchant/transactions.csv?operation=Pay")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    pays = shop.main.pays
    assert [r["transaction_id"] for r in rows] == [t.id for t in reversed(pays)]
    assert {r["amount"] for r in rows} == {"1.25", "2.50", "0.75", "7.00"}
    assert rows[-1]["refunded"] == "0.25"


def test_api_keys_create_once_and_revoke(shop: Shop) -> None:
    client = ConsoleClient(shop.world)
    client.sign_in_merchant(shop.main)
    made = client.post("/account/merchant/keys", {"csrf": client.csrf()})
    assert made.status_code == 200
    key = re.search(r'id="new-key">([^<]+)<', made.text)
    secret = re.search(r'id="new-secret">([^<]+)<', made.text)
    assert key is not None
    assert secret is not None
    listed = client.get("/account/merchant/keys")
    assert key.group(1) in listed.text
    assert secret.group(1) not in listed.text
    assert shop.world.directory.secret_for(key.group(1)) == secret.group(1)
    revoke = f"/account/merchant/keys/{key.group(1)}/revoke"
    assert "Revoke the key" in client.get(revoke).text
    assert client.post(revoke, {"csrf": client.csrf()}).status_code == 303
    assert shop.world.directory.secret_for(key.group(1)) is None
    log = client.get("/account/merchant/log").text
    assert "key.create" in log
    assert "key.revoke" in log
    # Revoking the key one signed in with ends the session.
    own = f"/account/merchant/keys/{shop.main.access_key}/revoke"
    assert client.post(own, {"csrf": client.csrf()}).status_code == 303
    assert client.get("/account/merchant").headers["location"] == "/account/signin/merchant"


# -- the buyer account ---------------------------------------------------------------------


def test_buyer_pages_show_last_four_balances_and_history(shop: Shop) -> None:
    side = shop.main
    client = ConsoleClient(shop.world)
    client.sign_in_buyer(side)
    home = client.get("/account/buyer")
    assert home.status_code == 200
    assert "1111" in home.text
    assert "4111 1111" not in home.text
    assert "41111111" not in home.text
    prepaid = shop.world.payments.prepaid_balance(side.buyer.id, side.prepaid.instrument.id)
    assert money(prepaid.main.minor) in home.text
    assert "$7.00" in home.text  # the tab's debt
    assert "OtherShop" not in home.text
    history = client.get(f"/account/buyer/instruments/{side.prepaid.instrument.id}")
    on_it = [t for t in side.transactions if t.instrument_id == side.prepaid.instrument.id]
    for txn in on_it:
        assert txn.id in history.text
    assert "/account/merchant/transactions/" not in history.text


def test_buyer_cancels_a_token_the_merchant_is_told_and_pays_are_refused(shop: Shop) -> None:
    side = shop.main
    token = side.prepaid.sender_token
    client = ConsoleClient(shop.world)
    client.sign_in_buyer(side)
    page = client.get(f"/account/buyer/tokens/{token.id}")
    assert "Cancel the authorization" in page.text
    path = f"/account/buyer/tokens/{token.id}/cancel"
    assert client.post(path, {}).status_code == 403  # no CSRF token: nothing happens
    assert shop.world.payments.token_by_caller(side.merchant.id, token_id=token.id).active
    assert client.post(path, {"csrf": client.csrf()}).status_code == 303
    cancelled = shop.world.payments.token_by_caller(side.merchant.id, token_id=token.id)
    assert cancelled.status is TokenStatus.inactive
    sent = notifications_about(shop.world, token.id)
    assert sent == 1
    with pytest.raises(PaymentsError):
        shop.world.payments.execute(
            PayRequest(side.merchant.id, "after-cancel", token.id, usd("1"))
        )
    assert "Cancelled" in client.get(f"/account/buyer/tokens/{token.id}").text
    assert client.post(path, {"csrf": client.csrf()}).status_code == 303  # twice: harmless
    again = notifications_about(shop.world, token.id)
    assert again == 1


def test_every_change_needs_the_session_s_csrf_token(shop: Shop) -> None:
    side = shop.main
    client = ConsoleClient(shop.world)
    client.sign_in_merchant(side)
    pay = side.pays[0]
    confirm = client.get(f"/account/merchant/transactions/{pay.id}/refund").text
    reference = re.search(r'name="reference" value="([^"]+)"', confirm)
    assert reference is not None
    posts = {
        f"/account/merchant/transactions/{pay.id}/refund": {
            "reference": reference.group(1),
            "amount": "0.10",
        },
        "/account/merchant/keys": {},
        f"/account/merchant/keys/{side.access_key}/revoke": {},
    }
    for path, form in posts.items():
        for csrf in ("", "forged"):
            answer = client.post(path, {**form, "csrf": csrf})
            assert answer.status_code == 403, path
    assert shop.world.payments.transaction(side.merchant.id, pay.id).refunded == 25
    assert len(shop.world.directory.list_keys(side.merchant.id)) == 1
    assert shop.world.directory.secret_for(side.access_key) is not None
