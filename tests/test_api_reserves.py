"""Reserves and marketplace Pays through the JSON API (``/v1``; issues #17 and #19), on both
stores, with hand-computed balances.

Fees (the endpoint world's FeeSchedule): FundPrepaid by card pays 2.9% + 30¢ out of the
funding; a Pay, Reserve or Settle from a prepaid balance is free. So funding 50.00 leaves the
buyer 50.00 to spend and the merchant 50.00 − 1.75 = 48.25 payable.
"""

from __future__ import annotations

from typing import Any

from builders import amount_params
from penny.clock import MICROS_PER_SECOND
from penny.domain.model import RecipientToken
from penny.money import Money
from penny.services.marketplace import SetupRecipient, issue_recipient_token
from penny.services.payments import InstrumentSetup
from test_api import balance, funded, get, ok, post, refused, usd
from test_fps_endpoint import World, world

__all__ = ["world"]


def reserve(world: World, setup: InstrumentSetup, minor: int, key: str | None = None) -> Any:
    body = {"sender_token": setup.sender_token.id, "amount": usd(minor)}
    return post(world, "/v1/reserves", body, key)


def payable(world: World, party_id: str) -> int:
    return world.payments.account_balance(party_id).total.minor


def _recipient_token(world: World) -> RecipientToken:
    """The other merchant lets the caller take up to 1.00 + 10% of each payment to it; the
    recipient bears Penny's fee."""
    return issue_recipient_token(
        world.payments,
        SetupRecipient(
            caller_id=world.merchant.id,
            recipient_id=world.other.id,
            caller_reference="r",
            max_fixed_fee=Money(100, "USD"),
            max_variable_fee=1000,
            recipient_pays_fee=True,
        ),
    )


def _marketplace(world: World) -> tuple[InstrumentSetup, dict[str, Any]]:
    """A buyer with 50.00 to spend, and a 10.00 body for the other merchant (its recipient
    token) with the caller's fee 0.25 + 5%, Penny's borne by the recipient."""
    token = _recipient_token(world)
    setup = funded(world, 5000)
    return setup, {
        "sender_token": setup.sender_token.id,
        "amount": usd(1000),
        "recipient_token": token.id,
        "marketplace_fee": {"fixed": usd(25), "variable_bps": 500},
        "charge_fee_to": "recipient",
    }


def _fees_need_a_recipient_token(world: World, path: str, setup: InstrumentSetup) -> None:
    """A marketplace fee without a recipient token is refused, and so is charging Penny's fee
    to the caller (who is then the recipient); nothing moves."""
    before = balance(world, setup)
    alone = {"sender_token": setup.sender_token.id, "amount": usd(100)}
    fee_only = post(world, path, alone | {"marketplace_fee": {"variable_bps": 100}})
    refused(fee_only, 422, "not_marketplace_app", "unprocessable_error")
    caller_pays = post(world, path, alone | {"charge_fee_to": "caller"})
    error = refused(caller_pays, 400, "parameter_invalid", "invalid_request_error")
    assert error["param"] == "charge_fee_to"
    assert balance(world, setup) == before


def test_reserve_then_partial_settle_then_refund(world: World) -> None:
    setup = funded(world, 5000)
    held = ok(reserve(world, setup, 2000, key="r-1"))
    assert (held["operation"], held["status"], held["amount"], held["fees"]) == (
        "reserve",
        "reserved",
        usd(2000),
        usd(0),
    )
    assert balance(world, setup) == (3000, 0)  # 20.00 held, 30.00 left to spend
    assert payable(world, world.merchant.id) == 4825  # nothing reached the merchant yet

    settled = ok(post(world, f"/v1/reserves/{held['id']}/settle", {"amount": usd(1500)}, "s-1"))
    assert settled["id"] != held["id"]
    assert (settled["operation"], settled["status"], settled["parent_transaction"]) == (
        "settle",
        "success",
        held["id"],
    )
    assert settled["amount"] == usd(1500)
    # 15.00 charged, 5.00 released.
    assert balance(world, setup) == (3500, 0)
    assert ok(get(world, f"/v1/transactions/{held['id']}"))["status"] == "success"
    listed = ok(get(world, "/v1/transactions", operation="settle"))
    assert [txn["id"] for txn in listed["data"]] == [settled["id"]]

    part = ok(post(world, "/v1/refunds", {"transaction": settled["id"], "amount": usd(500)}))
    assert (part["operation"], part["parent_transaction"]) == ("refund", settled["id"])
    assert balance(world, setup) == (4000, 0)
    # A reserve is refunded through its Settle; settled already, it settles no more.
    by_reserve = post(world, "/v1/refunds", {"transaction": held["id"]})
    refused(by_reserve, 422, "not_refundable", "unprocessable_error")
    again = post(world, f"/v1/reserves/{held['id']}/settle", None, "s-2")
    refused(again, 409, "invalid_transaction_state", "conflict_error")
    assert balance(world, setup) == (4000, 0)


def test_reserve_then_cancel(world: World) -> None:
    setup = funded(world, 5000)
    held = ok(reserve(world, setup, 2000))
    listed = ok(get(world, "/v1/transactions", status="reserved"))
    assert [txn["id"] for txn in listed["data"]] == [held["id"]]
    assert balance(world, setup) == (3000, 0)
    # No body at all is an empty one: cancel takes only an optional description.
    cancelled = ok(post(world, f"/v1/reserves/{held['id']}/cancel", None))
    assert (cancelled["id"], cancelled["operation"], cancelled["status"]) == (
        held["id"],
        "reserve",
        "cancelled",
    )
    assert cancelled["status_code"] == "Canceled"
    assert balance(world, setup) == (5000, 0)
    settle = post(world, f"/v1/reserves/{held['id']}/settle", {})
    refused(settle, 409, "invalid_transaction_state", "conflict_error")
    assert balance(world, setup) == (5000, 0)
    unknown = post(world, "/v1/reserves/NOSUCHTXN/cancel", {})
    error = refused(unknown, 404, "unknown_transaction", "not_found_error")
    assert error["param"] is None


def test_settle_more_than_reserved_is_refused(world: World) -> None:
    setup = funded(world, 5000)
    held = ok(reserve(world, setup, 1000))
    over = post(world, f"/v1/reserves/{held['id']}/settle", {"amount": usd(1001)})
    error = refused(over, 422, "settle_exceeds_reserve", "unprocessable_error")
    assert error["param"] == "amount"
    assert balance(world, setup) == (4000, 0)  # still held
    whole = ok(post(world, f"/v1/reserves/{held['id']}/settle", {}))
    assert whole["amount"] == usd(1000)
    assert balance(world, setup) == (4000, 0)


def test_a_reserve_replays_by_idempotency_key(world: World) -> None:
    setup = funded(world, 5000)
    first = reserve(world, setup, 2000, key="hold-1")
    again = reserve(world, setup, 2000, key="hold-1")
    assert ok(again) == ok(first)
    assert again.headers["idempotent-replayed"] == "true"
    assert balance(world, setup) == (3000, 0)  # held once
    other = reserve(world, setup, 2500, key="hold-1")
    refused(other, 422, "idempotency_key_reused", "idempotency_error")
    # A settle replays too, and its key is its own: reused on the reserves it is refused.
    path = f"/v1/reserves/{ok(first)['id']}/settle"
    settled = ok(post(world, path, {"amount": usd(500)}, "settle-1"))
    replay = post(world, path, {"amount": usd(500)}, "settle-1")
    assert (ok(replay), replay.headers["idempotent-replayed"]) == (settled, "true")
    reused = post(world, "/v1/reserves", {"sender_token": "T", "amount": usd(1)}, "settle-1")
    refused(reused, 422, "idempotency_key_reused", "idempotency_error")
    assert balance(world, setup) == (4500, 0)


def test_a_marketplace_pay_books_the_callers_fee_then_a_refund_gives_it_back(
    world: World,
) -> None:
    setup, body = _marketplace(world)
    assert (payable(world, world.merchant.id), payable(world, world.other.id)) == (4825, 0)
    paid = ok(post(world, "/v1/payments", body, "mp-1"))
    assert (paid["operation"], paid["status"], paid["amount"]) == ("pay", "success", usd(1000))
    # 10.00: the caller's fee 0.25 + 5% = 0.75; Penny's 0.5% + 0.01 = 0.06 (money between
    # two Penny balances), borne by the recipient: it gets 10.00 − 0.75 − 0.06.
    assert paid["fees"] == usd(6)
    assert balance(world, setup) == (4000, 0)
    assert payable(world, world.other.id) == 919
    assert payable(world, world.merchant.id) == 4825 - 925  # the caller kept its 0.75
    # Refunded in full with the fee: the caller gives back its 0.75 too.
    back = {"transaction": paid["id"], "refund_marketplace_fee": True}
    ok(post(world, "/v1/refunds", back, "mp-rf"))
    assert balance(world, setup) == (5000, 0)
    assert (payable(world, world.merchant.id), payable(world, world.other.id)) == (4825, 0)
    _fees_need_a_recipient_token(world, "/v1/payments", setup)
    alone = {"sender_token": setup.sender_token.id, "amount": usd(100)}
    too_many = alone | {"marketplace_fee": {"variable_bps": 10001}}
    error = refused(
        post(world, "/v1/payments", too_many), 400, "parameter_invalid", "invalid_request_error"
    )
    assert error["param"] == "marketplace_fee.variable_bps"
    assert balance(world, setup) == (5000, 0)


def test_a_marketplace_reserve_holds_the_fees_and_a_partial_settle_takes_them_pro_rata(
    world: World,
) -> None:
    """Reserve 10.00 for another merchant with the caller's 0.25 + 5% (0.75); Penny's fee
    (0.5% + 0.01 between two Penny balances) is borne by the recipient. Settle 6.00: the
    caller's fee pro rata, 75 × 600 // 1000 = 0.45; Penny's 0.03 + 0.01 = 0.04; the
    recipient gets 6.00 − 0.45 − 0.04 = 5.51; the 4.00 not settled is free again."""
    setup, body = _marketplace(world)
    held = ok(post(world, "/v1/reserves", body, "mr-1"))
    assert (held["status"], held["amount"], held["fees"]) == ("reserved", usd(1000), usd(6))
    assert balance(world, setup) == (4000, 0)
    assert (payable(world, world.merchant.id), payable(world, world.other.id)) == (4825, 0)
    settled = ok(post(world, f"/v1/reserves/{held['id']}/settle", {"amount": usd(600)}))
    assert (settled["status"], settled["amount"], settled["fees"]) == ("success", usd(600), usd(4))
    assert balance(world, setup) == (4400, 0)
    assert payable(world, world.other.id) == 551
    assert payable(world, world.merchant.id) == 4825 - (600 - 45)  # the caller kept its 0.45
    _fees_need_a_recipient_token(world, "/v1/reserves", setup)
    assert balance(world, setup) == (4400, 0)


def test_reserves_write_their_events(world: World) -> None:
    made = post(world, "/v1/webhook_endpoints", {"url": "https://shop.example/hooks"})
    ok(made)
    setup = funded(world, 5000)
    held = ok(reserve(world, setup, 2000))
    settled = ok(post(world, f"/v1/reserves/{held['id']}/settle", {"amount": usd(500)}))
    other = ok(reserve(world, setup, 1000))
    ok(post(world, f"/v1/reserves/{other['id']}/cancel", {"description": "out of stock"}))
    found = ok(get(world, "/v1/events", limit="100"))["data"]
    assert [event["type"] for event in reversed(found)] == [
        "funding.succeeded",
        "reserve.reserved",
        "reserve_settlement.succeeded",  # the Settle, then the reserve it settled
        "reserve.succeeded",
        "reserve.reserved",
        "reserve.cancelled",
    ]
    by_type = {event["type"]: event["data"] for event in found}
    assert by_type["reserve_settlement.succeeded"] == settled
    assert by_type["reserve.cancelled"]["id"] == other["id"]
    assert balance(world, setup) == (4500, 0)


def test_a_reserve_times_out_and_one_made_over_fps_settles_over_json(world: World) -> None:
    setup = funded(world, 5000)
    body = {"sender_token": setup.sender_token.id, "amount": usd(1000), "timeout_minutes": 1}
    short = ok(post(world, "/v1/reserves", body))
    world.clock.advance(61 * MICROS_PER_SECOND)
    late = post(world, f"/v1/reserves/{short['id']}/settle", {})
    refused(late, 409, "invalid_transaction_state", "conflict_error")
    # Through the FPS door, settled through the JSON one: one core, one reserve.
    made = world.get(
        "Reserve",
        SenderTokenId=setup.sender_token.id,
        CallerReference="fps-hold",
        **amount_params("TransactionAmount", "5.00"),
    )
    assert made.status == 200, made.raw
    reserve_id = made.text(".//TransactionId")
    assert ok(get(world, f"/v1/transactions/{reserve_id}"))["status"] == "reserved"
    settled = ok(post(world, f"/v1/reserves/{reserve_id}/settle", {"amount": usd(200)}))
    assert (settled["parent_transaction"], settled["amount"]) == (reserve_id, usd(200))
    # The timed-out hold is still there until the sweep releases it; 2.00 of 5.00 charged.
    assert world.payments.complete_due()[0].id == short["id"]
    # 50.00 − 10.00 held − 5.00 held + 3.00 released + 10.00 released by the sweep.
    assert balance(world, setup) == (4800, 0)
