"""The JSON API (``/v1``, issue #17) on both stores: every resource with hand-computed balances,
the error object and its statuses, bearer authentication, cursor pagination.

Fees (FeeSchedule): FundPrepaid by card pays 2.9% + 30¢ (half up) out of the funding, Pay from
a prepaid or postpaid balance is free; so funding 50.00 leaves the buyer 50.00 to spend and the
merchant 50.00 − 1.75 payable.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from penny.api.auth import bearer_secret
from penny.services.payments import InstrumentSetup
from test_fps_endpoint import World, world

__all__ = ["world"]


def auth(world: World, *, other: bool = False, live: bool = False) -> dict[str, str]:
    key, secret = (world.other_key, world.other_secret) if other else (world.key, world.secret)
    return {"Authorization": "Bearer " + bearer_secret(key, secret, live=live)}


def usd(minor: int) -> dict[str, Any]:
    return {"amount": minor, "currency": "USD"}


def post(world: World, path: str, body: dict[str, Any] | None, key: str | None = None) -> Any:
    headers = auth(world) | ({} if key is None else {"Idempotency-Key": key})
    if body is None:
        return world.client.post(path, headers=headers)
    return world.client.post(path, json=body, headers=headers)


def get(world: World, path: str, **params: str) -> Any:
    return world.client.get(path, params=params, headers=auth(world))


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def refused(response: Any, status: int, code: str, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"type", "code", "message", "param", "request_id"}
    assert (error["code"], error["type"]) == (code, kind)
    assert error["request_id"] == response.headers["request-id"]
    return error


def fund(world: World, setup: InstrumentSetup, minor: int, key: str | None = None) -> Any:
    body = {
        "funding_token": setup.second_token.id,
        "prepaid_instrument": setup.instrument.id,
        "amount": usd(minor),
    }
    return post(world, "/v1/fundings", body, key)


def funded(world: World, minor: int, key: str | None = None) -> InstrumentSetup:
    """A new prepaid instrument (:meth:`World.prepaid`), funded with ``minor`` cents over the
    API."""
    setup = world.prepaid()
    ok(fund(world, setup, minor, key))
    return setup


def pay(world: World, setup: InstrumentSetup, minor: int, key: str | None = None) -> Any:
    body = {"sender_token": setup.sender_token.id, "amount": usd(minor)}
    return post(world, "/v1/payments", body, key)


def balance(world: World, setup: InstrumentSetup) -> tuple[int, int]:
    kind = "prepaid" if setup.instrument.kind.value == "prepaid" else "credit"
    found = ok(get(world, f"/v1/{kind}_instruments/{setup.instrument.id}/balance"))
    assert found["instrument"] == setup.instrument.id
    return found["balance"]["amount"], found["pending"]["amount"]


def test_fund_pay_and_prepaid_balances(world: World) -> None:
    setup = world.prepaid()
    funding = ok(fund(world, setup, 5000))
    assert (funding["operation"], funding["status"]) == ("fund_prepaid", "success")
    assert funding["amount"] == usd(5000)
    assert funding["fees"] == usd(175)  # 2.9% of 50.00 = 1.45, + 0.30
    paid = ok(pay(world, setup, 1500))
    assert (paid["operation"], paid["status"], paid["amount"]) == ("pay", "success", usd(1500))
    assert paid["sender_token"] == setup.sender_token.id
    assert paid["instrument"] == setup.instrument.id
    assert balance(world, setup) == (3500, 0)
    liability = ok(get(world, "/v1/balances/prepaid_liability"))
    assert (liability["object"], liability["balance"], liability["pending"]) == (
        "prepaid_liability",
        usd(3500),
        usd(0),
    )
    assert world.payments.prepaid_balance(world.merchant.id, setup.instrument.id).main.minor == 3500
    again = ok(get(world, f"/v1/transactions/{paid['id']}"))
    assert again == paid


def test_postpaid_pay_settle_write_off_and_debts(world: World) -> None:
    setup = world.postpaid(limit="100")
    ok(pay(world, setup, 4000))
    assert balance(world, setup) == (4000, 0)
    settled = ok(
        post(
            world,
            "/v1/settlements",
            {
                "settlement_token": setup.second_token.id,
                "credit_instrument": setup.instrument.id,
                "amount": usd(1500),
            },
        )
    )
    assert settled["operation"] == "settle_debt"
    assert balance(world, setup) == (2500, 0)
    written = ok(
        post(
            world,
            "/v1/write_offs",
            {"credit_instrument": setup.instrument.id, "amount": usd(500), "description": "x"},
        )
    )
    assert (written["operation"], written["description"]) == ("write_off_debt", "x")
    assert balance(world, setup) == (2000, 0)
    debt = ok(get(world, "/v1/balances/outstanding_debt"))
    assert (debt["object"], debt["balance"]) == ("outstanding_debt", usd(2000))
    over = pay(world, setup, 8001)  # 20.00 owed + 80.01 > the 100.00 credit limit
    refused(over, 402, "exceeds_instrument_limits", "payment_error")
    assert balance(world, setup) == (2000, 0)


def test_refunds(world: World) -> None:
    setup = funded(world, 5000)
    paid = ok(pay(world, setup, 2000))
    part = ok(post(world, "/v1/refunds", {"transaction": paid["id"], "amount": usd(500)}))
    assert (part["operation"], part["parent_transaction"], part["amount"]) == (
        "refund",
        paid["id"],
        usd(500),
    )
    assert balance(world, setup) == (3500, 0)
    assert ok(get(world, f"/v1/transactions/{paid['id']}"))["refunded"] == usd(500)
    too_much = post(world, "/v1/refunds", {"transaction": paid["id"], "amount": usd(1501)})
    refused(too_much, 422, "refund_exceeds_original", "unprocessable_error")
    rest = ok(post(world, "/v1/refunds", {"transaction": paid["id"]}))
    assert rest["amount"] == usd(1500)
    assert balance(world, setup) == (5000, 0)
    again = post(world, "/v1/refunds", {"transaction": paid["id"]})
    refused(again, 409, "fully_refunded", "conflict_error")


def test_tokens_get_and_cancel(world: World) -> None:
    setup = world.prepaid()
    token = ok(get(world, f"/v1/tokens/{setup.sender_token.id}"))
    assert (token["status"], token["kind"], token["cancelled_at"]) == (
        "active",
        "prepaid_sender",
        None,
    )
    cancelled = ok(post(world, f"/v1/tokens/{setup.sender_token.id}/cancel", None))
    assert cancelled["status"] == "inactive"
    assert cancelled["cancelled_at"] is not None
    assert ok(post(world, f"/v1/tokens/{setup.sender_token.id}/cancel", {}))["status"] == "inactive"
    ok(fund(world, setup, 1000))
    refused(pay(world, setup, 100), 402, "token_not_active", "payment_error")
    refused(get(world, "/v1/tokens/NOSUCHTOKEN"), 404, "unknown_token", "not_found_error")


def test_transactions_pages_with_cursor_and_filters(world: World) -> None:
    setup = funded(world, 5000)
    paid = []
    for minor in range(100, 600, 100):
        world.clock.advance(1_000_000)
        paid.append(ok(pay(world, setup, minor))["id"])
    seen: list[str] = []
    page = ok(get(world, "/v1/transactions", limit="2", operation="pay"))
    while True:
        seen.extend(txn["id"] for txn in page["data"])
        assert len(page["data"]) <= 2
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        page = ok(
            get(
                world,
                "/v1/transactions",
                limit="2",
                operation="pay",
                starting_after=page["next_cursor"],
            )
        )
    assert seen == list(reversed(paid))  # newest first, each once
    everything = ok(get(world, "/v1/transactions", limit="100"))
    assert len(everything["data"]) == 6
    assert not everything["has_more"]
    funding = ok(get(world, "/v1/transactions", operation="fund_prepaid"))["data"]
    assert [t["operation"] for t in funding] == ["fund_prepaid"]
    assert ok(get(world, "/v1/transactions", status="pending"))["data"] == []
    first = world.payments.transaction(world.merchant.id, paid[0])
    since = str(first.received_at // 1_000_000)
    later = ok(get(world, "/v1/transactions", created_gte=since, limit="100"))["data"]
    assert [t["id"] for t in later] == list(reversed(paid))
    before = ok(get(world, "/v1/transactions", created_lt=since))["data"]
    assert [t["operation"] for t in before] == ["fund_prepaid"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"operation": "Pay"}, "operation"),
        ({"status": "done"}, "status"),
        ({"created_gte": "-1"}, "created_gte"),
        ({"starting_after": "bm9wZQ"}, "starting_after"),
        ({"starting_after": "!!"}, "starting_after"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_list_parameters_are_checked(world: World, params: dict[str, str], param: str) -> None:
    error = refused(
        get(world, "/v1/transactions", **params), 400, "parameter_invalid", "invalid_request_error"
    )
    assert error["param"] == param


def test_another_merchants_things_are_not_found(world: World) -> None:
    setup = world.prepaid()
    paid = ok(fund(world, setup, 1000))
    other = auth(world, other=True)
    for path in (
        f"/v1/transactions/{paid['id']}",
        f"/v1/tokens/{setup.sender_token.id}",
        f"/v1/prepaid_instruments/{setup.instrument.id}/balance",
    ):
        response = world.client.get(path, headers=other)
        assert response.status_code == 404, path
    listed = world.client.get("/v1/transactions", headers=other)
    assert listed.json()["data"] == []
    body = {"sender_token": setup.sender_token.id, "amount": usd(100)}
    response = world.client.post("/v1/payments", json=body, headers=other)
    refused(response, 404, "unknown_token", "not_found_error")


def test_bearer_secrets(world: World) -> None:
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": f"Bearer {world.key}"},
        auth(world, live=True),  # a live key on a sandbox server
        {"Authorization": "Bearer " + bearer_secret(world.key, world.other_secret, live=False)},
    ):
        response = world.client.get("/v1/transactions", headers=headers)
        refused(response, 401, "invalid_api_key", "authentication_error")
    assert bearer_secret(world.key, world.secret, live=True).startswith("sk_live_PNY")
    assert bearer_secret(world.key, world.secret, live=False).startswith("sk_test_PNY")
    ok(get(world, "/v1/transactions"))
    world.directory.revoke_key(world.key)
    time.sleep(1.1)  # the key cache trusts a key for a second (KEY_TTL_MS)
    refused(get(world, "/v1/transactions"), 401, "invalid_api_key", "authentication_error")


def _pay_body(amount: str, token: str = '"T"', extra: str = "") -> bytes:
    return f'{{"sender_token": {token}, "amount": {amount}{extra}}}'.encode()


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b"", "body_invalid", None),
        (b"{", "body_invalid", None),
        (_pay_body('{"amount": 1.5, "currency": "USD"}'), "parameter_invalid", "amount.amount"),
        (_pay_body('{"amount": "150", "currency": "USD"}'), "parameter_invalid", "amount.amount"),
        (_pay_body('{"amount": 150, "currency": "EUR"}'), "parameter_invalid", "amount.currency"),
        (_pay_body('{"amount": -1, "currency": "USD"}'), "parameter_invalid", "amount.amount"),
        (b'{"amount": {"amount": 150, "currency": "USD"}}', "parameter_invalid", None),
        (
            _pay_body('{"amount": 1, "currency": "USD"}', extra=', "x": 1'),
            "parameter_invalid",
            None,
        ),
        (
            _pay_body('{"amount": 1, "currency": "USD"}', token='"T\\u0000"'),
            "parameter_invalid",
            "sender_token",
        ),
    ],
)
def test_bodies_are_validated(world: World, body: bytes, code: str, param: str | None) -> None:
    response = world.client.post("/v1/payments", content=body, headers=auth(world))
    error = refused(response, 400, code, "invalid_request_error")
    if param is not None:
        assert error["param"] == param


def test_domain_refusals_keep_their_codes(world: World) -> None:
    setup = funded(world, 1000)
    refused(pay(world, setup, 1001), 402, "insufficient_balance", "payment_error")
    refused(pay(world, setup, 0), 400, "invalid_amount", "invalid_request_error")
    body = {"sender_token": "NOSUCHTOKEN", "amount": usd(1)}
    refused(post(world, "/v1/payments", body), 404, "unknown_token", "not_found_error")
    body = {"transaction": "NOSUCHTXN"}
    refused(post(world, "/v1/refunds", body), 404, "unknown_transaction", "not_found_error")
    assert balance(world, setup) == (1000, 0)


def test_routes_and_methods(world: World) -> None:
    refused(get(world, "/v1/nothing"), 404, "no_such_route", "not_found_error")
    refused(get(world, "/v1/payments"), 405, "method_not_allowed", "invalid_request_error")
    refused(post(world, "/v1/transactions", {}), 405, "method_not_allowed", "invalid_request_error")
    refused(get(world, "/v1/transactions/bad%00id"), 404, "no_such_route", "not_found_error")


def test_cursors_are_opaque_but_checked() -> None:
    from penny.api.resources import decode_cursor

    raw = base64.urlsafe_b64encode(b"1700000000000000:ABC").decode().rstrip("=")
    assert decode_cursor(raw) == (1_700_000_000_000_000, "ABC")


def test_keys_create_prints_the_bearer_secret(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import penny.cli.main  # noqa: F401  (the command's modules import each other through it)
    from penny.cli.accounts import _bearer
    from penny.domain.parties import ApiKeyWithSecret

    key = world.directory.create_key(world.merchant.id)
    assert isinstance(key, ApiKeyWithSecret)
    assert _bearer(key) == f"sk_test_{key.access_key_id}.{key.secret}"
    monkeypatch.setenv("PENNY_MODE", "production")
    assert _bearer(key) == f"sk_live_{key.access_key_id}.{key.secret}"
    live = world.client.get("/v1/transactions", headers={"Authorization": "Bearer " + _bearer(key)})
    refused(live, 401, "invalid_api_key", "authentication_error")  # this server is a sandbox


def test_domain_refusals_name_the_field_they_are_about(world: World) -> None:
    setup = funded(world, 1000)
    cases: list[tuple[str, dict[str, Any], str, str | None]] = [
        ("/v1/payments", {"sender_token": setup.sender_token.id, "amount": usd(1001)},
         "insufficient_balance", "amount"),
        ("/v1/payments", {"sender_token": "NOSUCHTOKEN", "amount": usd(1)},
         "unknown_token", "sender_token"),
        ("/v1/fundings", {"funding_token": setup.second_token.id, "prepaid_instrument": "NOSUCH",
                          "amount": usd(1)}, "unknown_instrument", "prepaid_instrument"),
        ("/v1/refunds", {"transaction": "NOSUCHTXN"}, "unknown_transaction", "transaction"),
        ("/v1/write_offs", {"credit_instrument": "NOSUCH", "amount": usd(1)},
         "unknown_instrument", "credit_instrument"),
    ]  # fmt: skip
    for path, body, code, param in cases:
        response = post(world, path, body)
        assert response.status_code >= 400, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"]) == (code, param), path
