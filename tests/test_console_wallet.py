"""The buyer's payment methods and Penny balance on the account site, and what the buyer's
history and authorization pages show, in process, on SQLite and PostgreSQL; and the merchant
CSV export's guard against formula injection.

Adding and removing methods (with the CSRF token, and a confirmation page first); removing a
method cancels the authorizations that charge it exactly as CancelToken does (the merchant's
IPN is in the outbox, later charges are refused) while what the instruments hold stays
spendable; the Penny balance and its activity against the ledger; every FundPrepaid, Pay,
Refund, SettleDebt and WriteOffDebt in the instruments' histories; the token's rules in words.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from builders import BANK_ACCOUNT, ROUTING, prepaid, top_up_balance, usd
from console_support import ConsoleClient, Shop, notifications_about
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import Status
from penny.services.payments import (
    FundPrepaidRequest,
    PayRequest,
    SettleDebtRequest,
    WriteOffDebtRequest,
)
from penny.storage import console_sql
from penny.web.console.views import money

METHODS = "/account/buyer/methods"


def _buyer(shop: Shop) -> ConsoleClient:
    client = ConsoleClient(shop.world)
    client.sign_in_buyer(shop.main)
    return client


def _cards(shop: Shop) -> dict[str, str]:
    """The main buyer's cards and bank accounts: last four → id."""
    methods = shop.world.directory.payment_methods(shop.main.buyer.id)
    return {m.last4: m.id for m in methods if m.last4 is not None}


def test_a_buyer_adds_and_removes_cards_and_bank_accounts(shop: Shop) -> None:
    client = _buyer(shop)
    csrf = client.csrf(METHODS)
    card = {"csrf": csrf, "number": "5555 5555 5555 4444", "expiry": "11/2031"}
    assert client.post(f"{METHODS}/card", card).headers["location"] == METHODS
    bad = client.post(f"{METHODS}/card", {**card, "number": "4111", "expiry": "13/2031"})
    assert bad.status_code == 400
    assert 'id="expiry-error"' in bad.text
    bank = {"csrf": csrf, "routing": ROUTING, "account": BANK_ACCOUNT}
    assert client.post(f"{METHODS}/bank", bank).status_code == 303
    assert set(_cards(shop)) == {"1111", "4444", "6789"}
    page = client.get(METHODS).text
    for shown in ("Mastercard •••• 4444", "bank account •••• 6789", "Visa •••• 1111"):
        assert shown in page
    assert "5555555555554444" not in page
    assert BANK_ACCOUNT not in page
    # Without the form's token nothing is removed; the confirmation page changes nothing.
    new = _cards(shop)["4444"]
    assert client.post(f"{METHODS}/{new}/remove", {}).status_code == 403
    confirm = client.get(f"{METHODS}/{new}/remove")
    assert "Remove Mastercard •••• 4444, expires 11/2031?" in confirm.text
    assert "No authorization charges it." in confirm.text
    assert "4444" in _cards(shop)
    removed = client.post(f"{METHODS}/{new}/remove", {"csrf": csrf})
    assert removed.headers["location"] == METHODS
    assert set(_cards(shop)) == {"1111", "6789"}
    assert client.post(f"{METHODS}/{new}/remove", {"csrf": csrf}).status_code == 404
    # The Penny balance is no card: it cannot be removed.
    balance = shop.world.directory.payment_methods(shop.main.buyer.id)[0]
    assert client.get(f"{METHODS}/{balance.id}/remove").status_code == 404
    with shop.world.db.read() as conn:
        logged = [a.action for a in console_sql.actions_of(conn, shop.main.buyer.id)]
    assert logged == ["method.remove", "method.add", "method.add"]


def test_removing_a_method_cancels_the_authorizations_that_charge_it(shop: Shop) -> None:
    side, payments = shop.main, shop.world.payments
    merchant = side.merchant.id
    funding, settlement = side.prepaid.second_token, side.postpaid.second_token
    before = payments.prepaid_balance(merchant, side.prepaid.instrument.id).main
    client = _buyer(shop)
    card = _cards(shop)["1111"]
    confirm = client.get(f"{METHODS}/{card}/remove").text
    assert funding.id in confirm
    assert settlement.id in confirm
    assert "prepaid balance (funding)" in confirm
    assert (
        client.post(f"{METHODS}/{card}/remove", {"csrf": client.csrf(METHODS)}).status_code == 303
    )
    assert _cards(shop) == {}
    for token in (funding, settlement):
        assert not payments.token_by_caller(merchant, token_id=token.id).active
        assert notifications_about(shop.world, token.id) == 1  # the merchant is told
    # The tokens that spend what the instruments hold stay; later charges are refused.
    assert payments.token_by_caller(merchant, token_id=side.prepaid.sender_token.id).active
    pay = payments.execute(PayRequest(merchant, "after-1", side.prepaid.sender_token.id, usd("1")))
    assert pay.status is Status.success
    after = payments.prepaid_balance(merchant, side.prepaid.instrument.id).main
    assert after.minor == before.minor - 100
    fund = FundPrepaidRequest(merchant, "after-2", funding.id, side.prepaid.instrument.id, usd("5"))
    with pytest.raises(PaymentsError) as refused:
        payments.execute(fund)
    assert refused.value.refusal is Refusal.token_not_active
    # The other buyer's card and authorizations are untouched.
    other = shop.other
    assert payments.token_by_caller(
        other.merchant.id, token_id=other.prepaid.second_token.id
    ).active


def test_the_penny_balance_and_its_activity_match_the_ledger(shop: Shop) -> None:
    side, payments = shop.main, shop.world.payments
    top_up_balance(payments, side.buyer, 5_000)
    balance_method = shop.world.directory.payment_methods(side.buyer.id)[0]
    bought = prepaid(
        payments, side.merchant.id, side.buyer.id, balance_method.id, "abt", limit="100"
    )
    fund = FundPrepaidRequest(
        side.merchant.id, "abt-fund", bought.second_token.id, bought.instrument.id, usd("20")
    )
    funded = payments.execute(fund)
    assert funded.status is Status.success
    client = _buyer(shop)
    page = client.get("/account/buyer/balance").text
    ledger = payments.account_balance(side.buyer.id)
    assert ledger.total.minor == 3_000
    assert f'id="balance-total">{money(ledger.total.minor)}<' in page
    assert f'id="balance-available">{money(ledger.disburse.minor)}<' in page
    rows = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td><td class=\"num\">([^<]*)</td>", page)
    assert rows == [
        (f"FundPrepaid for {side.merchant.name}", "-$20.00"),
        ("Money in (deposit)", "+$50.00"),
    ]
    assert funded.id in page
    home = client.get("/account/buyer").text
    assert f'id="penny-balance">{money(3_000)}<' in home


def test_the_histories_hold_every_operation_and_the_token_its_rules_in_words(
    shop: Shop,
) -> None:
    side, payments = shop.main, shop.world.payments
    merchant, tab = side.merchant.id, side.postpaid
    settle = SettleDebtRequest(
        merchant, "a-settle", tab.second_token.id, tab.instrument.id, usd("3")
    )
    assert payments.execute(settle).status is not Status.failure
    write_off = WriteOffDebtRequest(merchant, "a-write-off", tab.instrument.id, usd("1"))
    assert payments.execute(write_off).status is Status.success
    client = _buyer(shop)
    prepaid_page = client.get(f"/account/buyer/instruments/{side.prepaid.instrument.id}").text
    for operation in ("FundPrepaid", "Pay", "Refund"):
        assert f"<td>{operation}</td>" in prepaid_page, operation
    tab_page = client.get(f"/account/buyer/instruments/{tab.instrument.id}").text
    for operation in ("Pay", "SettleDebt", "WriteOffDebt"):
        assert f"<td>{operation}</td>" in tab_page, operation
    token = client.get(f"/account/buyer/tokens/{side.prepaid.sender_token.id}").text
    assert "Only for payments for your purchases (Pay).</li>" in token
    assert f"Only {side.merchant.name} may use it" in token
    assert "Payments come out of your prepaid balance" in token
    assert " until " in token
    settlement = client.get(f"/account/buyer/tokens/{tab.second_token.id}").text
    assert "settling what you owe" in settlement
    assert "even after the tab&#39;s end date" in settlement


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_export_neutralises_references_that_start_like_a_formula(
    shop: Shop, start: str
) -> None:
    side, payments = shop.main, shop.world.payments
    reference = f'{start}HYPERLINK("http://evil.example")'
    pay = payments.execute(
        PayRequest(side.merchant.id, reference, side.prepaid.sender_token.id, usd("0.10"))
    )
    client = ConsoleClient(shop.world)
    client.sign_in_merchant(side)
    answer = client.get("/account/merchant/transactions.csv?operation=Pay")
    rows = {r["transaction_id"]: r for r in csv.DictReader(io.StringIO(answer.text, newline=""))}
    assert rows[pay.id]["caller_reference"] == f"'{reference}"
    ordinary = side.pays[0]
    assert rows[ordinary.id]["caller_reference"] == ordinary.caller_reference
