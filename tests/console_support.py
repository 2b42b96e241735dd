"""Shared set-up of the account-site tests (tests/test_console*.py).

A :class:`Shop` is a :class:`cobranded_support.World` (a store, a merchant and its key, the
application) with business done through the real services: a buyer with a card, a prepaid
instrument funded and spent, a postpaid tab with a Pay, a partial refund; and a second
merchant with its own buyer, instrument, token and transaction, whose ids another party must
never see. :class:`ConsoleClient` is one browser in process (cookies kept, no redirects
followed) that signs in as a merchant or a buyer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from builders import BUYER_PASSWORD, CARD, postpaid, prepaid, usd
from cobranded_support import UiClient, World, make_world
from penny.domain.model import Status, Transaction
from penny.domain.parties import Party
from penny.services.payments import (
    FundPrepaidRequest,
    InstrumentSetup,
    PayRequest,
    RefundRequest,
)
from penny.storage import ipn_sql

IPN_URL = "http://127.0.0.1:9/ipn"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Side:
    """One merchant's business: its buyer, instruments and transactions."""

    merchant: Party
    access_key: str
    secret: str
    buyer: Party
    buyer_email: str
    prepaid: InstrumentSetup
    postpaid: InstrumentSetup
    transactions: list[Transaction] = field(default_factory=list)

    @property
    def pays(self) -> list[Transaction]:
        return [t for t in self.transactions if t.operation.value == "Pay"]


@dataclass
class Shop:
    world: World
    main: Side
    other: Side


def _side(world: World, merchant: Party, access_key: str, secret: str, tag: str) -> Side:
    directory, payments = world.directory, world.payments
    directory.set_ipn_url(merchant.id, IPN_URL)
    email = f"buyer-{tag}@example.com"
    buyer = directory.create_personal(f"Buyer {tag.upper()}", email, BUYER_PASSWORD)
    card = directory.add_card(buyer.id, CARD, 12, 2031)
    bought = prepaid(payments, merchant.id, buyer.id, card.id, f"{tag}-p", limit="100")
    tab = postpaid(payments, merchant.id, buyer.id, card.id, f"{tag}-c", limit="50")
    side = Side(merchant, access_key, secret, buyer, email, bought, tab)
    fund = FundPrepaidRequest(
        merchant.id, f"{tag}-fund", bought.second_token.id, bought.instrument.id, usd("20")
    )
    side.transactions.append(payments.execute(fund))
    for n, amount in enumerate(("1.25", "2.50", "0.75")):
        pay = PayRequest(merchant.id, f"{tag}-pay-{n}", bought.sender_token.id, usd(amount))
        side.transactions.append(payments.execute(pay))
    on_tab = PayRequest(merchant.id, f"{tag}-tab-0", tab.sender_token.id, usd("7"))
    side.transactions.append(payments.execute(on_tab))
    refund = RefundRequest(merchant.id, f"{tag}-refund-0", side.transactions[1].id, usd("0.25"))
    side.transactions.append(payments.execute(refund))
    assert all(t.status is Status.success for t in side.transactions)
    return side


def make_shop(database_url: str) -> Shop:
    world = make_world(database_url)
    main = _side(world, world.merchant, world.access_key, world.secret, "a")
    party, key = world.directory.create_business("OtherShop", "other@example.com")
    other = _side(world, party, key.key.access_key_id, key.secret, "b")
    return Shop(world, main, other)


def notifications_about(world: World, subject_id: str) -> int:
    """How many IPNs the outbox holds about ``subject_id`` (a token, a transaction)."""
    with world.db.read() as conn:
        count: int = conn.execute(
            select(func.count())
            .select_from(ipn_sql.notifications)
            .where(ipn_sql.notifications.c.subject_id == subject_id)
        ).scalar_one()
    return count


class ConsoleClient:
    """One browser in process, on the account site."""

    def __init__(self, world: World) -> None:
        self.client: Any = UiClient(world).client

    def get(self, path: str, **kw: Any) -> httpx.Response:
        answer: httpx.Response = self.client.get(path, **kw)
        return answer

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        answer: httpx.Response = self.client.post(path, data=data or {})
        return answer

    def sign_in(self, kind: str, form: dict[str, str]) -> httpx.Response:
        """Open the sign-in page of ``kind`` (merchant, buyer) and send it ``form``."""
        path = f"/account/signin/{kind}"
        page = self.get(path)
        assert page.status_code == 200, page.text
        match = _CSRF.search(page.text)
        assert match is not None
        return self.post(path, {**form, "csrf": match.group(1)})

    def sign_in_merchant(self, side: Side) -> None:
        answer = self.sign_in("merchant", {"access_key": side.access_key, "secret": side.secret})
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/account/merchant"

    def sign_in_buyer(self, side: Side) -> None:
        answer = self.sign_in("buyer", {"email": side.buyer_email, "password": BUYER_PASSWORD})
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/account/buyer"

    def csrf(self, path: str = "/account/") -> str:
        page = self.get(path)
        if page.status_code == 303:
            page = self.get(page.headers["location"])
        match = _CSRF.search(page.text)
        assert match is not None, page.text
        return match.group(1)
