"""penny-client against a live Penny (conftest.py starts it), sync and async: fund, pay,
settle, write off, refund, balances, pages, sessions; each on whichever Python runs the tests."""

from __future__ import annotations

import asyncio

import pytest

from conftest import Live
from penny_client import AsyncPenny, Penny, PennyError


def test_the_sync_client_moves_money(live: Live) -> None:
    prepaid, credit = live.prepaid, live.credit
    with Penny(live.api_key, live.base) as penny:
        funded = penny.fund(prepaid["second_token_id"], prepaid["instrument_id"], 5000)
        assert funded["operation"] == "fund_prepaid"
        paid = penny.pay(prepaid["sender_token_id"], 150)
        assert penny.prepaid_balance(prepaid["instrument_id"])["balance"]["amount"] == 4850
        penny.refund(paid["id"], 50)
        assert penny.get_instrument(prepaid["instrument_id"])["balance"] == {
            "amount": 4900,
            "currency": "USD",
        }
        penny.pay(credit["sender_token_id"], 2000)
        penny.settle(credit["second_token_id"], credit["instrument_id"], 500)
        penny.write_off(credit["instrument_id"], 100)
        debt = penny.debt_balance(credit["instrument_id"])
        assert debt["balance"]["amount"] + debt["pending"]["amount"] == 1400
        with pytest.raises(PennyError) as refused:
            penny.pay(credit["sender_token_id"], 5000)
        assert refused.value.param == "amount"
        kinds = sorted(found["kind"] for found in penny.iter_instruments(limit=1))
        assert kinds == ["credit", "prepaid"]
        session = penny.create_authorization_session(
            "postpaid", "https://shop.example/back", credit_limit=1000, global_amount_limit=9000
        )
        assert penny.get_authorization_session(session["id"])["status"] == "open"


def test_the_async_client_pages_through_everything(live: Live) -> None:
    async def run() -> None:
        async with AsyncPenny(live.api_key, live.base) as penny:
            prepaid = live.prepaid
            await penny.fund(prepaid["second_token_id"], prepaid["instrument_id"], 100)
            made = await asyncio.gather(
                *(penny.pay(live.prepaid["sender_token_id"], 1) for _ in range(3))
            )
            ids = [txn["id"] async for txn in penny.iter_transactions(limit=2, operation="pay")]
            assert {paid["id"] for paid in made} <= set(ids)
            assert len(ids) == len(set(ids))

    asyncio.run(run())
