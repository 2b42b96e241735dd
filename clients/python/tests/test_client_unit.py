"""penny-client without a server (httpx's MockTransport plays Penny): the retry policy and its
Idempotency-Key, errors, pagination, integer money, and Standard Webhooks verification. The
live tests against ``penny serve`` are in Penny's own suite (tests/test_client_live.py)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from penny_client import (
    AsyncPenny,
    Penny,
    PennyConnectionError,
    PennyError,
    Retry,
    WebhookVerificationError,
    sign_webhook,
    verify_webhook,
)

FAST = Retry(max_retries=3, backoff=0.001, max_backoff=0.002)
TXN = {"id": "T1", "object": "transaction", "amount": {"amount": 150, "currency": "USD"}}


def error(status: int, code: str, param: str | None = None) -> httpx.Response:
    body = {"error": {"type": "x", "code": code, "message": "m", "param": param, "request_id": "r"}}
    return httpx.Response(status, json=body)


class Script:
    """Answers requests in turn; records each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def keys(self) -> list[str | None]:
        return [request.headers.get("idempotency-key") for request in self.seen]


def sync_client(script: Script) -> Penny:
    return Penny(
        "sk_test_X.y", "http://penny.test", retry=FAST, transport=httpx.MockTransport(script)
    )


def async_client(script: Script) -> AsyncPenny:
    transport = httpx.MockTransport(script)
    return AsyncPenny("sk_test_X.y", "http://penny.test", retry=FAST, transport=transport)


def both(script: Script, act: Callable[[Any], Any]) -> Any:
    """Run ``act`` with the sync client (and returns its result)."""
    with sync_client(script) as penny:
        return act(penny)


def test_a_post_carries_one_key_across_its_retries() -> None:
    refused = httpx.ConnectError("refused")
    script = Script(
        refused, error(503, "internal_error"), error(429, "busy"), httpx.Response(200, json=TXN)
    )
    found = both(script, lambda penny: penny.pay("S1", 150))
    assert found["id"] == "T1"
    keys = script.keys()
    assert len(keys) == 4
    assert keys[0] is not None
    assert keys[0].startswith("pc_")
    assert set(keys) == {keys[0]}
    body = json.loads(script.seen[0].content)
    assert body == {"sender_token": "S1", "amount": {"amount": 150, "currency": "USD"}}
    assert script.seen[0].headers["authorization"] == "Bearer sk_test_X.y"


def test_each_logical_call_has_its_own_key_and_a_chosen_key_is_kept() -> None:
    script = Script(*(httpx.Response(200, json=TXN) for _ in range(3)))
    with sync_client(script) as penny:
        penny.pay("S1", 1)
        penny.pay("S1", 1)
        penny.refund("T1", idempotency_key="order-7-refund")
    first, second, chosen = script.keys()
    assert first != second
    assert chosen == "order-7-refund"
    assert json.loads(script.seen[2].content) == {"transaction": "T1"}


def test_retries_are_bounded_and_refusals_are_not_retried() -> None:
    script = Script(*(error(503, "internal_error") for _ in range(4)))
    with pytest.raises(PennyError) as raised:
        both(script, lambda penny: penny.pay("S1", 1))
    assert (raised.value.status, raised.value.code) == (503, "internal_error")
    assert len(script.seen) == 4  # the try and three retries
    for status, code in ((402, "insufficient_balance"), (409, "duplicate_request"), (400, "x")):
        once = Script(error(status, code, "amount"))
        with pytest.raises(PennyError) as refused:
            both(once, lambda penny: penny.pay("S1", 1))
        assert (refused.value.status, refused.value.param) == (status, "amount")
        assert len(once.seen) == 1


def test_a_409_in_progress_is_retried() -> None:
    script = Script(error(409, "idempotency_key_in_use"), httpx.Response(200, json=TXN))
    assert both(script, lambda penny: penny.pay("S1", 1))["id"] == "T1"
    assert len(set(script.keys())) == 1


def test_connection_errors_past_the_bound_raise() -> None:
    script = Script(*(httpx.ConnectError("refused") for _ in range(4)))
    with pytest.raises(PennyConnectionError):
        both(script, lambda penny: penny.get_transaction("T1"))
    assert script.keys() == [None] * 4  # a GET carries no key


def test_amounts_are_integers() -> None:
    with sync_client(Script()) as penny, pytest.raises(TypeError):
        penny.pay("S1", 1.5)  # type: ignore[arg-type]


def page(ids: list[str], cursor: str | None) -> httpx.Response:
    data = [{**TXN, "id": found} for found in ids]
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": data,
            "has_more": cursor is not None,
            "next_cursor": cursor,
        },
    )


def test_reserves_and_marketplace_fees_are_sent_as_the_api_reads_them() -> None:
    script = Script(*(httpx.Response(200, json=TXN) for _ in range(6)))
    usd = {"amount": 1000, "currency": "USD"}
    with sync_client(script) as penny:
        penny.pay("S", 1000, recipient_token="R", marketplace_fee=25, marketplace_fee_bps=500)
        penny.reserve("S", 1000, recipient_token="R", marketplace_fee_bps=100, timeout_minutes=60)
        penny.settle_reserve("T1", 600)
        penny.cancel_reserve("T2")

    async def calls() -> None:
        async with async_client(script) as penny:
            await penny.reserve("S", 1000, recipient_token="R", charge_fee_to="caller")
            await penny.settle_reserve("T3")

    asyncio.run(calls())
    sent = [(r.url.path, json.loads(r.content)) for r in script.seen]
    fee = {"fixed": {"amount": 25, "currency": "USD"}, "variable_bps": 500}
    assert sent == [
        (
            "/v1/payments",
            {"sender_token": "S", "amount": usd, "recipient_token": "R"} | {"marketplace_fee": fee},
        ),
        (
            "/v1/reserves",
            {"sender_token": "S", "amount": usd, "recipient_token": "R"}
            | {"timeout_minutes": 60, "marketplace_fee": {"variable_bps": 100}},
        ),
        ("/v1/reserves/T1/settle", {"amount": {"amount": 600, "currency": "USD"}}),
        ("/v1/reserves/T2/cancel", {}),
        (
            "/v1/reserves",
            {"sender_token": "S", "amount": usd, "recipient_token": "R"}
            | {"charge_fee_to": "caller"},
        ),
        ("/v1/reserves/T3/settle", {}),
    ]
    assert all(r.method == "POST" and r.headers["idempotency-key"] for r in script.seen)


def test_iterating_walks_every_page() -> None:
    script = Script(page(["A", "B"], "c1"), page(["C"], None))
    with sync_client(script) as penny:
        found = [txn["id"] for txn in penny.iter_transactions(limit=2, operation="pay")]
    assert found == ["A", "B", "C"]
    assert script.seen[1].url.params["starting_after"] == "c1"
    assert script.seen[1].url.params["operation"] == "pay"


def test_the_async_client_retries_and_pages_alike() -> None:
    async def run() -> tuple[str, list[str], list[str | None]]:
        script = Script(error(503, "internal_error"), httpx.Response(200, json=TXN))
        async with async_client(script) as penny:
            paid = await penny.pay("S1", 150)
        pages = Script(page(["A"], "c1"), page(["B"], None))
        async with async_client(pages) as penny:
            ids = [found["id"] async for found in penny.iter_instruments(kind="prepaid")]
        return paid["id"], ids, script.keys()

    paid, ids, keys = asyncio.run(run())
    assert (paid, ids) == ("T1", ["A", "B"])
    assert len(keys) == 2
    assert keys[0] == keys[1]


# -- webhooks -----------------------------------------------------------------------------------

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
BODY = b'{"type":"payment.succeeded","data":{"id":"T1"}}'


def headers(signature: str, stamp: int = 1_700_000_000, msg: str = "msg_1") -> dict[str, str]:
    return {"Webhook-Id": msg, "Webhook-Timestamp": str(stamp), "Webhook-Signature": signature}


def test_the_standard_webhooks_test_vector() -> None:
    # The example of the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign_webhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    got = verify_webhook(
        secret, headers(expected, 1614265330, "msg_p5jXN8AQM9LWM0D4loKWxJek"), body, now=1614265331
    )
    assert got == body


def test_a_genuine_delivery_verifies_with_any_of_its_signatures() -> None:
    good = sign_webhook(SECRET, "msg_1", 1_700_000_000, BODY)
    assert verify_webhook(SECRET, headers(good), BODY, now=1_700_000_100) == BODY
    other = sign_webhook(
        "whsec_" + base64.b64encode(b"x" * 32).decode(), "msg_1", 1_700_000_000, BODY
    )
    rotated = headers(f"{other} {good}")
    assert verify_webhook(SECRET, rotated, BODY.decode(), now=1_700_000_000) == BODY


@pytest.mark.parametrize(
    ("changed", "now"),
    [
        ({"Webhook-Id": "msg_2"}, 1_700_000_000),  # another message
        ({}, 1_700_000_000 + 301),  # too old
        ({}, 1_700_000_000 - 301),  # from the future
        ({"Webhook-Timestamp": "1700000001"}, 1_700_000_000),  # another time
        ({"Webhook-Signature": "v2,abc"}, 1_700_000_000),
        ({"Webhook-Timestamp": "soon"}, 1_700_000_000),
    ],
)
def test_a_forged_or_stale_delivery_is_refused(changed: dict[str, str], now: int) -> None:
    sent = headers(sign_webhook(SECRET, "msg_1", 1_700_000_000, BODY)) | changed
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, sent, BODY, now=now)


def test_a_changed_body_or_missing_header_is_refused() -> None:
    sent = headers(sign_webhook(SECRET, "msg_1", 1_700_000_000, BODY))
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, sent, BODY + b" ", now=1_700_000_000)
    del sent["Webhook-Signature"]
    with pytest.raises(WebhookVerificationError, match="webhook-signature"):
        verify_webhook(SECRET, sent, BODY, now=1_700_000_000)
    with pytest.raises(WebhookVerificationError, match="base64"):
        verify_webhook("whsec_***", headers("v1,x"), BODY, now=1_700_000_000)


def test_the_key_and_url_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(httpx.Response(200, json=TXN))
    monkeypatch.setenv("PENNY_API_KEY", "sk_test_ENV.secret")
    monkeypatch.setenv("PENNY_URL", "http://penny.env:9000/")
    with Penny(transport=httpx.MockTransport(script)) as penny:
        penny.get_transaction("T1")
    assert str(script.seen[0].url) == "http://penny.env:9000/v1/transactions/T1"
    assert script.seen[0].headers["authorization"] == "Bearer sk_test_ENV.secret"
    monkeypatch.delenv("PENNY_API_KEY")
    with pytest.raises(ValueError, match="PENNY_API_KEY"):
        Penny()
