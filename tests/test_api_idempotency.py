"""Idempotency-Key on the JSON API (issue #17), on both stores: replays (errors included),
a reused key with another body, many concurrent requests with one key, keys shared with FPS's
CallerReference through either door, per-account keys, and keys forgotten after a day."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from penny.clock import MICROS_PER_DAY
from penny.services import idempotency
from penny.web.app import purge_idempotency_keys
from test_api import auth, fund, funded, ok, pay, post, refused, usd
from test_fps_endpoint import World, success, world

__all__ = ["world"]


def transactions_with(world: World, reference: str) -> int:
    with world.db.read() as conn:
        count = conn.execute(
            text("SELECT COUNT(*) FROM transactions WHERE caller_reference = :r"), {"r": reference}
        ).scalar_one()
    return int(count)


def prepaid_balance(world: World, instrument_id: str) -> int:
    return world.payments.prepaid_balance(world.merchant.id, instrument_id).main.minor


def test_same_key_and_body_replay_the_first_response(world: World) -> None:
    setup = funded(world, 5000)
    first = pay(world, setup, 1200, key="order-1")
    assert "idempotent-replayed" not in first.headers
    again = pay(world, setup, 1200, key="order-1")
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert transactions_with(world, "order-1") == 1
    assert prepaid_balance(world, setup.instrument.id) == 3800


def test_errors_are_replayed_too(world: World) -> None:
    setup = funded(world, 1000)
    first = pay(world, setup, 1500, key="too-much")
    refused(first, 402, "insufficient_balance", "payment_error")
    ok(fund(world, setup, 1000))  # the money is there now, but the key answered already
    again = pay(world, setup, 1500, key="too-much")
    assert (again.status_code, again.content) == (402, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert prepaid_balance(world, setup.instrument.id) == 2000
    assert transactions_with(world, "too-much") == 0
    ok(pay(world, setup, 1500, key="too-much-2"))  # a new key is a new request
    assert prepaid_balance(world, setup.instrument.id) == 500


def test_same_key_with_another_body_is_refused(world: World) -> None:
    setup = funded(world, 5000)
    ok(pay(world, setup, 100, key="k"))
    other = pay(world, setup, 200, key="k")
    error = refused(other, 422, "idempotency_key_reused", "idempotency_error")
    assert error["param"] == "Idempotency-Key"
    elsewhere = fund(world, setup, 100, key="k")  # another endpoint is another request too
    refused(elsewhere, 422, "idempotency_key_reused", "idempotency_error")
    assert prepaid_balance(world, setup.instrument.id) == 4900


def test_concurrent_requests_with_one_key_have_one_effect(world: World) -> None:
    setup = funded(world, 5000)
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda _: pay(world, setup, 700, key="once"), range(32)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len({r.content for r in responses}) == 1
    assert transactions_with(world, "once") == 1
    assert prepaid_balance(world, setup.instrument.id) == 4300


def test_fps_caller_reference_then_json_key(world: World) -> None:
    setup = funded(world, 5000)
    fps = world.pay(setup, "2.50", "shared-1")
    success(fps, "Pay")
    fps_id = fps.text(".//TransactionId")
    different = pay(world, setup, 300, key="shared-1")  # the key is the FPS request's
    refused(different, 409, "duplicate_request", "conflict_error")
    json = ok(pay(world, setup, 250, key="shared-1"))
    assert json["id"] == fps_id
    assert json["caller_reference"] == "shared-1"
    assert pay(world, setup, 250, key="shared-1").headers["idempotent-replayed"] == "true"
    refused(
        pay(world, setup, 300, key="shared-1"), 422, "idempotency_key_reused", "idempotency_error"
    )
    assert transactions_with(world, "shared-1") == 1
    assert prepaid_balance(world, setup.instrument.id) == 4750


def test_json_key_then_fps_caller_reference(world: World) -> None:
    setup = funded(world, 5000)
    json = ok(pay(world, setup, 250, key="shared-2"))
    fps = world.pay(setup, "2.50", "shared-2")
    success(fps, "Pay")
    assert fps.text(".//TransactionId") == json["id"]
    assert world.pay(setup, "3.00", "shared-2").code == "DuplicateRequest"
    assert transactions_with(world, "shared-2") == 1
    assert prepaid_balance(world, setup.instrument.id) == 4750


def test_keys_belong_to_an_account(world: World) -> None:
    mine, theirs = world.prepaid("mine"), world.prepaid("theirs")
    ok(fund(world, mine, 1000, key="same"))
    body = {
        "funding_token": theirs.second_token.id,
        "prepaid_instrument": theirs.instrument.id,
        "amount": usd(1000),
    }
    headers = auth(world, other=True) | {"Idempotency-Key": "same"}
    response = world.client.post("/v1/fundings", json=body, headers=headers)
    # the other merchant's key is its own: decided afresh (and refused: not its instrument)
    refused(response, 404, "unknown_token", "not_found_error")
    assert "idempotent-replayed" not in response.headers


def test_cancel_with_a_key_replays(world: World) -> None:
    setup = world.prepaid()
    path = f"/v1/tokens/{setup.sender_token.id}/cancel"
    first = post(world, path, None, key="cancel-1")
    assert first.status_code == 200
    again = post(world, path, {}, key="cancel-1")
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    other_token = f"/v1/tokens/{setup.second_token.id}/cancel"
    refused(
        post(world, other_token, None, key="cancel-1"),
        422,
        "idempotency_key_reused",
        "idempotency_error",
    )


def test_invalid_keys_are_refused(world: World) -> None:
    setup = world.prepaid()
    for key in (b"x" * 129, b"with space", "é".encode()):
        response = world.client.post(
            "/v1/payments",
            json={"sender_token": setup.sender_token.id, "amount": usd(1)},
            headers=auth(world) | {"Idempotency-Key": key},
        )
        refused(response, 400, "idempotency_key_invalid", "invalid_request_error")


def test_transient_answers_are_not_kept() -> None:
    for status in (200, 400, 402, 404, 409, 422):
        assert idempotency.remembered(idempotency.Response(status, b"{}"))
    for status in (429, 503):
        assert not idempotency.remembered(idempotency.Response(status, b"{}"))
    assert not idempotency.remembered(idempotency.Response(409, b"{}", keep=False))


def test_keys_are_kept_a_day_then_purged(world: World) -> None:
    setup = funded(world, 1000, key="old")
    world.clock.advance(MICROS_PER_DAY - 1)
    ok(fund(world, setup, 1000, key="young"))
    assert world.payments.ledger.run(idempotency.purge) == 0  # "old" is a day old, not more
    world.clock.advance(2)
    assert world.payments.ledger.run(idempotency.purge) == 1
    assert fund(world, setup, 1000, key="young").headers["idempotent-replayed"] == "true"


def _stored_keys(world: World) -> int:
    with world.db.read() as conn:
        count = conn.execute(text("SELECT COUNT(*) FROM api_idempotency_keys")).scalar_one()
    return int(count)


def test_the_server_purges_old_keys_on_its_own(world: World) -> None:
    funded(world, 1000, key="old")
    world.clock.advance(MICROS_PER_DAY + 1)
    assert _stored_keys(world) == 1

    async def purge_once() -> None:
        task = asyncio.create_task(
            purge_idempotency_keys(world.payments.ledger, every_s=3600, first_s=0)
        )
        for _ in range(200):
            await asyncio.sleep(0.05)
            if await asyncio.to_thread(_stored_keys, world) == 0:
                break
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(purge_once())
    assert _stored_keys(world) == 0
