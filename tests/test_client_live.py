"""penny-client (clients/python) against a live ``penny serve`` on 127.0.0.1, on both stores,
sync and async: money moves once per logical call, refusals come back as PennyError with their
field, pages are walked, sessions are created and read, and the idempotency key of a call
survives a retry."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from penny_client import AsyncPenny, Penny, PennyError, Retry

import test_ipn_processes
from penny.api.auth import bearer_secret
from test_ipn_processes import Serve, Shop, open_shop

RETURN = "https://shop.example/return"


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[tuple[Shop, Serve]]:
    shop = open_shop(database_url)
    with Serve(shop.url, tmp_path, "client", shop.env(PENNY_PUBLIC_URL="")) as server:
        server.wait_ready()
        yield shop, server
    shop.db.dispose()


def secret(shop: Shop) -> str:
    return bearer_secret(shop.access_key, shop.secret, live=False)


def sync_calls(shop: Shop, base: str) -> None:
    setup = shop.setup
    with Penny(secret(shop), base) as penny:
        start = penny.prepaid_balance(setup.instrument.id)["balance"]["amount"]
        paid = penny.pay(setup.sender_token.id, 150, description="a song")
        assert (paid["status"], paid["amount"]["amount"]) == ("success", 150)
        key = paid["caller_reference"]
        again = penny.pay(setup.sender_token.id, 150, description="a song", idempotency_key=key)
        assert again == paid  # the same key: the same payment, not a second one
        assert penny.prepaid_balance(setup.instrument.id)["balance"]["amount"] == start - 150
        refund = penny.refund(paid["id"])
        assert (refund["operation"], refund["parent_transaction"]) == ("refund", paid["id"])
        assert penny.get_transaction(paid["id"])["refunded"]["amount"] == 150
        with pytest.raises(PennyError) as refused:
            penny.pay(setup.sender_token.id, start + 1)
        assert (refused.value.status, refused.value.code) == (402, "insufficient_balance")
        assert refused.value.param == "amount"
        every = list(penny.iter_transactions(limit=1))
        assert len(every) == 3  # the funding, the Pay, its refund (the refusal stored nothing)
        assert every[0]["id"] == refund["id"]
        assert [found["id"] for found in penny.iter_instruments(limit=1)] == [setup.instrument.id]
        session = penny.create_authorization_session("prepaid", RETURN, funding_amount=2500)
        assert session["url"].startswith(f"{base}/cobranded-ui/actions/start?")
        assert penny.get_authorization_session(session["id"])["status"] == "open"
        assert penny.get_token(setup.sender_token.id)["status"] == "active"
        assert penny.prepaid_liability()["balance"]["amount"] == start
        # A reserve holds, a partial settle charges part and frees the rest; a cancel frees all.
        held = penny.reserve(setup.sender_token.id, 100, timeout_minutes=60)
        assert (held["status"], held["amount"]["amount"]) == ("reserved", 100)
        assert penny.prepaid_balance(setup.instrument.id)["balance"]["amount"] == start - 100
        settled = penny.settle_reserve(held["id"], 60)
        assert (settled["operation"], settled["parent_transaction"]) == ("settle", held["id"])
        assert penny.prepaid_balance(setup.instrument.id)["balance"]["amount"] == start - 60
        other = penny.reserve(setup.sender_token.id, 30)
        assert penny.cancel_reserve(other["id"], description="sold out")["status"] == "cancelled"
        assert penny.prepaid_balance(setup.instrument.id)["balance"]["amount"] == start - 60
        with pytest.raises(PennyError) as fee_alone:
            penny.reserve(setup.sender_token.id, 10, marketplace_fee=1)
        assert (fee_alone.value.status, fee_alone.value.code) == (422, "not_marketplace_app")


async def async_calls(shop: Shop, base: str) -> None:
    setup = shop.setup
    async with AsyncPenny(secret(shop), base) as penny:
        before = (await penny.prepaid_balance(setup.instrument.id))["balance"]["amount"]
        payments = await asyncio.gather(*(penny.pay(setup.sender_token.id, 10) for _ in range(5)))
        assert len({paid["id"] for paid in payments}) == 5
        after = (await penny.prepaid_balance(setup.instrument.id))["balance"]["amount"]
        assert after == before - 50
        ids = [txn["id"] async for txn in penny.iter_transactions(limit=2, operation="pay")]
        assert set(ids) >= {paid["id"] for paid in payments}
        cancelled = await penny.cancel_token(setup.sender_token.id)
        assert cancelled["status"] == "inactive"
        with pytest.raises(PennyError) as refused:
            await penny.pay(setup.sender_token.id, 10)
        assert refused.value.param == "sender_token"


def test_the_client_against_a_live_penny(live: tuple[Shop, Serve]) -> None:
    shop, server = live
    sync_calls(shop, server.base)
    asyncio.run(async_calls(shop, server.base))


def test_a_retried_call_moves_money_once(
    live: tuple[Shop, Serve], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies after a payment was committed (as if its answer was lost); the client
    retries the call with the same key on connection errors while the server restarts on the
    same port, and gets the first payment back: money moved once."""
    shop, server = live
    setup = shop.setup
    patient = Retry(max_retries=12, backoff=0.2, max_backoff=1.0)
    with Penny(secret(shop), server.base, retry=patient) as penny:
        paid = penny.pay(setup.sender_token.id, 25, idempotency_key="order-42")
        server.kill()
        monkeypatch.setattr(test_ipn_processes, "free_port", lambda: server.port)
        restart = threading.Timer(0.5, server._launch)
        restart.start()
        again = penny.pay(setup.sender_token.id, 25, idempotency_key="order-42")
        restart.join()
        assert again == paid
        pays = list(penny.iter_transactions(operation="pay"))
        assert [found["id"] for found in pays] == [paid["id"]]
