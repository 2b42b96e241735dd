"""The buyer's SingleUse, MultiUse and Recurring authorizations on the account site (issue #16
with #19's tokens), in process, on SQLite and PostgreSQL: the home page lists them beside the
prepaid balances and tabs (merchant, what each payment may be, how often, validity, usage so
far), the token page says what each allows and its GateKeeper rules in words, and Cancel is
CancelToken (the merchant's IPN is in the outbox, later Pays are refused). Another buyer's
authorization is answered like an unknown one.
"""

from __future__ import annotations

import html

import pytest

from builders import sender_token, usd
from console_support import ConsoleClient, Shop, Side, notifications_about
from penny.clock import MICROS_PER_DAY
from penny.domain.errors import PaymentsError
from penny.domain.model import (
    AmountType,
    Status,
    TokenKind,
    TokenStatus,
    UsageLimitTerm,
    UsageLimitType,
)
from penny.sandbox.advance import finish_due
from penny.services.payments import PayRequest
from penny.services.payments.requests import SenderTokenSetup


def give(shop: Shop, side: Side, ref: str, kind: TokenKind, **terms: object) -> SenderTokenSetup:
    """An authorization of ``side``'s buyer to ``side``'s merchant, on the buyer's card."""
    (card,) = [m for m in shop.world.directory.payment_methods(side.buyer.id) if m.last4 == "1111"]
    payments = shop.world.payments
    return sender_token(payments, side.merchant.id, side.buyer.id, card.id, ref, kind, **terms)


def authorizations(shop: Shop) -> dict[str, SenderTokenSetup]:
    every_month = UsageLimitTerm(UsageLimitType.count, 3, "1 Month")
    return {
        "single": give(shop, shop.main, "au-single", TokenKind.single_use, transaction_amount="5"),
        "multi": give(
            shop,
            shop.main,
            "au-multi",
            TokenKind.multi_use,
            transaction_amount="10",
            amount_type=AmountType.maximum,
            global_amount_limit="50",
            usage_limits=(every_month,),
        ),
        "recurring": give(
            shop,
            shop.main,
            "au-recurring",
            TokenKind.recurring,
            transaction_amount="9.99",
            recurring_period="1 Month",
        ),
    }


def _buyer(shop: Shop, side: Side) -> ConsoleClient:
    client = ConsoleClient(shop.world)
    client.sign_in_buyer(side)
    return client


def test_the_home_page_lists_the_buyer_s_authorizations_with_what_they_allow(shop: Shop) -> None:
    given = authorizations(shop)
    theirs = give(shop, shop.other, "au-theirs", TokenKind.single_use, transaction_amount="1")
    merchant = shop.main.merchant.id
    paid = shop.world.payments.execute(
        PayRequest(merchant, "au-pay", given["multi"].token.id, usd("4"))
    )
    assert paid.status is Status.pending  # a card charge answers later
    shop.world.clock.advance(MICROS_PER_DAY)
    finish_due(shop.world.payments)
    done = shop.world.payments.transaction(merchant, paid.id)
    assert done.status is Status.success
    home = html.unescape(_buyer(shop, shop.main).get("/account/buyer").text)
    table = home[home.index('id="authorization-table"') :]
    table = table[: table.index("</table>")]
    for setup in given.values():
        assert f"/account/buyer/tokens/{setup.token.id}" in table
    assert theirs.token.id not in home
    assert shop.main.merchant.name in table
    for words in (
        "Single use",
        "Multi use",
        "Recurring",
        "at most $5.00",
        "one payment",
        "at most $10.00",
        "at most 3 payments every 1 Month; at most $50.00 in all",
        "one payment every 1 Month",
        "$4.00 in 1",
        "$0.00 in 0",
    ):
        assert words in table, words
    # The prepaid and tab authorizations stay in their own table.
    rest = home[home.index('id="token-table"') :]
    assert f"/account/buyer/tokens/{shop.main.prepaid.sender_token.id}" in rest
    assert given["single"].token.id not in rest


def test_the_token_page_says_what_it_allows_and_its_rules_in_words(shop: Shop) -> None:
    given = authorizations(shop)
    client = _buyer(shop, shop.main)
    name = shop.main.merchant.name
    multi = html.unescape(client.get(f"/account/buyer/tokens/{given['multi'].token.id}").text)
    for words in (
        "<dt>Kind</dt><dd>Multi use</dd>",
        "<dt>Each payment</dt><dd>at most $10.00</dd>",
        "<dt>How often</dt><dd>at most 3 payments every 1 Month; at most $50.00 in all</dd>",
        "<dt>Charged to</dt><dd>Visa •••• 1111",
        "<dt>Used so far</dt><dd>$0.00 in 0 payments</dd>",
        "<li>Only for payments for your purchases (Pay).</li>",
        f"<li>Only {name} may use it, only to pay {name}, and only from your account.</li>",
        "<li>Payments are charged to your Visa •••• 1111",
        "<li>Each payment: at most $10.00.</li>",
        "<li>At most 3 payments every 1 Month; at most $50.00 in all.</li>",
        "Cancel the authorization",
    ):
        assert words in multi, words
    recurring = html.unescape(
        client.get(f"/account/buyer/tokens/{given['recurring'].token.id}").text
    )
    assert "<li>One payment every 1 Month, counted from " in recurring
    assert "<li>Each payment: at most $9.99.</li>" in recurring
    single = html.unescape(client.get(f"/account/buyer/tokens/{given['single'].token.id}").text)
    assert "<dt>How often</dt><dd>one payment</dd>" in single
    assert " until " in single  # three hours unless the merchant said otherwise


def test_the_buyer_cancels_an_authorization_as_cancel_token_does(shop: Shop) -> None:
    given = authorizations(shop)
    token = given["recurring"].token
    merchant = shop.main.merchant.id
    client = _buyer(shop, shop.main)
    path = f"/account/buyer/tokens/{token.id}/cancel"
    assert client.post(path, {}).status_code == 403  # no CSRF token: nothing happens
    assert client.post(path, {"csrf": client.csrf()}).status_code == 303
    cancelled = shop.world.payments.token_by_caller(merchant, token_id=token.id)
    assert cancelled.status is TokenStatus.inactive
    assert notifications_about(shop.world, token.id) == 1
    with pytest.raises(PaymentsError):
        shop.world.payments.execute(PayRequest(merchant, "au-late", token.id, usd("1")))
    page = client.get(f"/account/buyer/tokens/{token.id}").text
    assert "Cancelled" in page
    assert "Cancel the authorization" not in page
    # The others stay active; another buyer cannot see or cancel any of them.
    assert shop.world.payments.token_by_caller(merchant, token_id=given["multi"].token.id).active
    other = _buyer(shop, shop.other)
    for setup in given.values():
        tid = setup.token.id
        assert other.get(f"/account/buyer/tokens/{tid}").status_code == 404
        refused = other.post(f"/account/buyer/tokens/{tid}/cancel", {"csrf": other.csrf()})
        assert refused.status_code == 404
    assert shop.world.payments.token_by_caller(merchant, token_id=given["multi"].token.id).active
