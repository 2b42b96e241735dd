"""Events and webhooks (issue #17) on both stores: worked examples of the events each
operation writes (one per change, none for a retry), ``/v1/events`` and its pagination, webhook
endpoints through the API and ``penny webhooks``, and deliveries to a real HTTP receiver on
127.0.0.1 that verifies them with the ``standardwebhooks`` package from PyPI — a tampered body
or a timestamp older than five minutes fails, a receiver's 500 is retried.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook, WebhookVerificationError
from typer.testing import CliRunner

from builders import new_merchant, open_store, prepaid
from ipn_receiver import Receiver, Reply
from penny.cli.main import app as cli_app
from penny.clock import MICROS_PER_SECOND
from penny.devtools.processes import free_port
from penny.ipn.delivery import Deliverer, DrainReport, drain
from penny.ipn.settings import IpnSettings
from penny.security import ServerKey
from penny.services.payments import InstrumentSetup
from penny.signing import load_signer
from penny.storage import schema
from penny.webhooks.endpoints import rotate_secret
from penny.webhooks.signature import new_secret, sign
from test_api import auth, fund, funded, get, ok, pay, post, refused, usd
from test_fps_endpoint import World, world

__all__ = ["world"]


def events(w: World, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(get(w, "/v1/events", limit="100", **params))["data"]
    return found


def types(w: World) -> list[str]:
    """The event types, oldest first."""
    return [e["type"] for e in reversed(events(w))]


def count_rows(w: World, table: Any) -> int:
    with w.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def subscribe(w: World, url: str = "https://shop.example/hooks", **more: Any) -> dict[str, Any]:
    """An endpoint for the merchant (its events are recorded from now on)."""
    made: dict[str, Any] = ok(post(w, "/v1/webhook_endpoints", {"url": url, **more}))
    return made


# -- events -------------------------------------------------------------------------------------


def test_a_merchant_without_an_endpoint_has_no_events_written(world: World) -> None:
    setup = funded(world, 5000)
    ok(pay(world, setup, 1500))
    assert events(world) == []
    assert count_rows(world, schema.events) == 0
    subscribe(world, enabled=False)  # even a disabled endpoint: events are recorded
    ok(pay(world, setup, 100))
    assert types(world) == ["payment.succeeded"]
    assert count_rows(world, schema.ipn_notifications) == 0  # but it is sent nothing


def test_a_pay_writes_exactly_one_payment_succeeded_event_and_a_retry_none(world: World) -> None:
    subscribe(world)
    setup = world.prepaid()
    funding = ok(fund(world, setup, 5000))
    paid = ok(pay(world, setup, 1500, key="order-1"))
    assert types(world) == ["funding.succeeded", "payment.succeeded"]
    event = events(world, type="payment.succeeded")[0]
    assert event["id"].startswith("evt_")
    assert event["object"] == "event"
    assert event["data"] == paid  # the /v1 transaction, amounts in minor units
    assert event["data"]["amount"] == usd(1500)
    assert ok(get(world, f"/v1/events/{event['id']}")) == event
    assert events(world, type="funding.succeeded")[0]["data"] == funding
    # The same request again (the same Idempotency-Key, so the same CallerReference): no event.
    again = pay(world, setup, 1500, key="order-1")
    assert again.headers["idempotent-replayed"] == "true"
    assert types(world) == ["funding.succeeded", "payment.succeeded"]
    # Through the FPS door, a Pay retried with its CallerReference: one event, not two.
    assert world.pay(setup, "2.50", "fps-ref").status == 200
    assert world.pay(setup, "2.50", "fps-ref").status == 200
    assert types(world)[-1] == "payment.succeeded"
    assert len(types(world)) == 3
    assert count_rows(world, schema.events) == 3


def test_refund_settle_write_off_decline_and_cancel_write_theirs(world: World) -> None:
    subscribe(world)
    prepaid, credit = world.prepaid(), world.postpaid(limit="100")
    ok(fund(world, prepaid, 5000))
    paid = ok(pay(world, prepaid, 2000))
    refund = ok(post(world, "/v1/refunds", {"transaction": paid["id"], "amount": usd(500)}))
    ok(pay(world, credit, 4000))
    body = {
        "settlement_token": credit.second_token.id,
        "credit_instrument": credit.instrument.id,
        "amount": usd(1500),
    }
    ok(post(world, "/v1/settlements", body))
    ok(post(world, "/v1/write_offs", {"credit_instrument": credit.instrument.id, "amount": usd(1)}))
    refused(pay(world, credit, 9000), 402, "exceeds_instrument_limits", "payment_error")
    token = ok(post(world, f"/v1/tokens/{prepaid.sender_token.id}/cancel", None))
    assert types(world) == [
        "funding.succeeded",
        "payment.succeeded",
        "refund.succeeded",
        "payment.succeeded",
        "settlement.succeeded",
        "write_off.succeeded",
        "token.cancelled",
    ]  # a refused request moved nothing: it has no transaction and no event
    newest = events(world)
    assert newest[0]["data"] == token
    assert newest[0]["data"]["object"] == "token"
    assert events(world, type="refund.succeeded")[0]["data"] == refund
    # Cancelling again changes nothing, so writes nothing.
    ok(post(world, f"/v1/tokens/{prepaid.sender_token.id}/cancel", None))
    assert len(events(world)) == 7
    # Each transaction has exactly one event.
    with world.db.read() as conn:
        subjects = conn.execute(select(schema.events.c.subject_id)).scalars().all()
        transactions = conn.execute(select(schema.transactions.c.id)).scalars().all()
    assert sorted(subjects) == sorted([*transactions, token["id"]])


def test_a_pending_bank_funding_writes_pending_then_succeeded(world: World) -> None:
    subscribe(world)
    setup = prepaid(world.payments, world.merchant.id, world.buyer.id, world.bank.id, "bank")
    ok(fund(world, setup, 2000))
    assert types(world) == ["funding.pending"]
    world.clock.advance(8 * 24 * 3600 * MICROS_PER_SECOND)
    world.payments.complete_due()
    assert types(world) == ["funding.pending", "funding.succeeded"]
    first, second = reversed(events(world))
    assert first["data"]["id"] == second["data"]["id"]
    assert (first["data"]["status"], second["data"]["status"]) == ("pending", "success")


def test_events_page_by_cursor_filter_by_type_and_belong_to_their_merchant(world: World) -> None:
    subscribe(world)
    setup = funded(world, 5000)
    for _ in range(4):
        ok(pay(world, setup, 100))
        world.clock.advance(1000)
    page = ok(get(world, "/v1/events", limit="2"))
    assert page["has_more"]
    assert len(page["data"]) == 2
    seen = [e["id"] for e in page["data"]]
    while page["has_more"]:
        page = ok(get(world, "/v1/events", limit="2", starting_after=page["next_cursor"]))
        seen += [e["id"] for e in page["data"]]
    assert seen == [e["id"] for e in events(world)]
    assert len(seen) == 5
    assert [e["type"] for e in events(world, type="payment.succeeded")] == ["payment.succeeded"] * 4
    refused(
        get(world, "/v1/events", type="payment.won"),
        400,
        "parameter_invalid",
        "invalid_request_error",
    )
    refused(
        get(world, "/v1/events", starting_after="x"),
        400,
        "parameter_invalid",
        "invalid_request_error",
    )
    refused(
        get(world, "/v1/events", color="red"), 400, "parameter_invalid", "invalid_request_error"
    )
    other = {"Authorization": auth(world, other=True)["Authorization"]}
    assert world.client.get("/v1/events", headers=other).json()["data"] == []
    response = world.client.get(f"/v1/events/{seen[0]}", headers=other)
    refused(response, 404, "no_such_event", "not_found_error")


# -- endpoints ----------------------------------------------------------------------------------


def test_webhook_endpoints_through_the_api(world: World) -> None:
    body = {"url": "https://shop.example/hooks", "enabled_events": ["payment.succeeded"]}
    made = ok(post(world, "/v1/webhook_endpoints", body, key="hook-1"))
    assert made["object"] == "webhook_endpoint"
    assert made["id"].startswith("we_")
    assert made["secret"].startswith("whsec_")
    assert made["enabled"] is True
    assert made["enabled_events"] == ["payment.succeeded"]
    Webhook(made["secret"])  # a secret the reference library takes
    replay = post(world, "/v1/webhook_endpoints", body, key="hook-1")
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == made
    other_body = post(world, "/v1/webhook_endpoints", {"url": "https://x.example/"}, key="hook-1")
    refused(other_body, 422, "idempotency_key_reused", "idempotency_error")
    shown = ok(get(world, f"/v1/webhook_endpoints/{made['id']}"))
    assert shown == made | {"secret": None}  # the secret is never shown again
    assert ok(get(world, "/v1/webhook_endpoints"))["data"] == [shown]
    for bad in (
        {"url": "ftp://x.example/"},
        {"url": "https://x.example/\u0000"},  # PostgreSQL stores no NUL: refused first
        {"url": "https://x.example/", "enabled_events": ["x"]},
    ):
        refused(
            post(world, "/v1/webhook_endpoints", bad),
            400,
            "parameter_invalid",
            "invalid_request_error",
        )
    other = auth(world, other=True)
    assert world.client.get("/v1/webhook_endpoints", headers=other).json()["data"] == []
    gone = world.client.delete(f"/v1/webhook_endpoints/{made['id']}", headers=other)
    refused(gone, 404, "no_such_webhook_endpoint", "not_found_error")
    deleted = ok(world.client.delete(f"/v1/webhook_endpoints/{made['id']}", headers=auth(world)))
    assert deleted == shown | {"deleted": True}
    refused(
        get(world, f"/v1/webhook_endpoints/{made['id']}"),
        404,
        "no_such_webhook_endpoint",
        "not_found_error",
    )
    assert ok(get(world, "/v1/webhook_endpoints"))["data"] == []


def test_the_cli_adds_lists_rotates_and_removes_endpoints(database_url: str) -> None:
    key_hex = secrets.token_hex(32)
    services = open_store(database_url, server_key=ServerKey.from_hex(key_hex, source="test"))
    try:
        merchant = new_merchant(services)
    finally:
        services.database.dispose()

    env = {"PENNY_SECRET_KEY": key_hex}

    def cli(*args: str) -> Any:
        result = CliRunner().invoke(cli_app, [*args, "--database", database_url, "--json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    added = cli("webhooks", "add", "https://shop.example/h", "--account", merchant.party.id,
                "--event", "refund.succeeded")  # fmt: skip
    assert added["secret"].startswith("whsec_")
    assert added["enabled_events"] == ["refund.succeeded"]
    listed = cli("webhooks", "list", "--account", merchant.party.id)["webhook_endpoints"]
    assert listed == [{k: v for k, v in added.items() if k != "secret"}]
    rotated = cli("webhooks", "rotate-secret", added["id"])
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != added["secret"]
    assert cli("webhooks", "disable", added["id"])["enabled"] is False
    assert cli("webhooks", "enable", added["id"])["enabled"] is True
    assert cli("webhooks", "remove", added["id"])["deleted"] is True
    assert cli("webhooks", "list")["webhook_endpoints"] == []
    refused_add = CliRunner().invoke(
        cli_app,
        ["webhooks", "add", "ftp://x", "--account", merchant.party.id, "--database", database_url],
        env=env,
    )
    assert refused_add.exit_code != 0
    assert "cannot use" in refused_add.output


# -- deliveries ---------------------------------------------------------------------------------


def deliver(w: World, wall: Any = time.time_ns) -> DrainReport:
    """Send what is due now (as ``penny serve``'s delivery lanes do), signing at ``wall``."""
    server_key = w.directory.server_key
    settings = IpnSettings(timeout_us=2 * MICROS_PER_SECOND, lease_us=10 * MICROS_PER_SECOND)
    signer = load_signer(w.db, server_key, w.clock)
    deliverer = Deliverer(w.db, signer, w.clock, settings, server_key=server_key, wall=wall)
    return drain(deliverer)


@dataclass
class Hooks:
    world: World
    receiver: Receiver
    secret: str
    endpoint_id: str
    verified: list[Any]

    def drain(self, wall: Any = time.time_ns) -> DrainReport:
        return deliver(self.world, wall)

    def deliveries(self, event_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = ok(get(self.world, f"/v1/events/{event_id}/deliveries"))[
            "data"
        ]
        return found


@pytest.fixture
def hooks(world: World) -> Iterator[Hooks]:
    """An endpoint for payments and refunds at a receiver that verifies every delivery with
    ``standardwebhooks`` (2xx when it verifies, 400 when not)."""
    verified: list[Any] = []
    holder: dict[str, str] = {}

    def judge(headers: dict[str, str], body: bytes) -> int:
        try:
            verified.append(Webhook(holder["secret"]).verify(body, headers))
        except WebhookVerificationError:
            return 400
        return 204

    with Receiver(judge=judge) as receiver:
        body = {
            "url": receiver.url("/hooks"),
            "enabled_events": ["payment.succeeded", "refund.succeeded"],
        }
        made = ok(post(world, "/v1/webhook_endpoints", body))
        holder["secret"] = made["secret"]
        yield Hooks(world, receiver, made["secret"], made["id"], verified)


def paid(hooks: Hooks) -> tuple[InstrumentSetup, dict[str, Any]]:
    setup = hooks.world.prepaid()
    ok(fund(hooks.world, setup, 5000))  # funding.succeeded: this endpoint does not take it
    payment = ok(pay(hooks.world, setup, 1500))
    return setup, events(hooks.world, type="payment.succeeded")[0] | {"payment": payment}


def test_a_delivery_verifies_with_standardwebhooks(hooks: Hooks) -> None:
    _setup, event = paid(hooks)
    report = hooks.drain()
    assert (report.attempts, report.delivered) == (1, 1)
    [received] = hooks.receiver.received
    assert received.status == 204
    assert received.path == "/hooks"
    assert received.headers["webhook-id"] == event["id"]
    assert received.headers["content-type"] == "application/json"
    assert received.headers["webhook-signature"].startswith("v1,")
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 60
    assert hooks.verified == [{k: v for k, v in event.items() if k != "payment"}]
    assert hooks.verified[0]["data"] == event["payment"]
    [delivery] = hooks.deliveries(event["id"])
    assert delivery["endpoint"] == hooks.endpoint_id
    assert delivery["state"] == "delivered"
    assert (delivery["attempts"], delivery["last_http_status"]) == (1, 204)
    assert hooks.drain().attempts == 0  # delivered once
    # The same bytes changed by one character, or signed with another secret, do not verify.
    tampered = received.body.replace(b'"amount":1500', b'"amount":1600')
    assert tampered != received.body
    with pytest.raises(WebhookVerificationError):
        Webhook(hooks.secret).verify(tampered, received.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(received.body, received.headers)


def test_an_old_timestamp_is_refused_and_the_delivery_retried(hooks: Hooks) -> None:
    _setup, event = paid(hooks)
    report = hooks.drain(wall=lambda: time.time_ns() - 301 * 10**9)  # signed 5 min 1 s ago
    assert (report.attempts, report.delivered, report.retrying) == (1, 0, 1)
    assert hooks.receiver.received[0].status == 400
    assert hooks.verified == []
    [delivery] = hooks.deliveries(event["id"])
    assert (delivery["state"], delivery["last_http_status"]) == ("pending", 400)
    hooks.world.clock.advance(3600 * MICROS_PER_SECOND)
    assert hooks.drain().delivered == 1
    assert len(hooks.verified) == 1


def test_a_receivers_500_is_retried_until_it_accepts(hooks: Hooks) -> None:
    setup, event = paid(hooks)
    hooks.receiver.script(Reply(500))
    assert hooks.drain().retrying == 1
    [delivery] = hooks.deliveries(event["id"])
    assert (delivery["state"], delivery["attempts"], delivery["last_http_status"]) == (
        "pending",
        1,
        500,
    )
    assert hooks.drain().attempts == 0  # not due yet
    hooks.world.clock.advance(3600 * MICROS_PER_SECOND)
    ok(post(hooks.world, "/v1/refunds", {"transaction": event["payment"]["id"]}))
    report = hooks.drain()
    assert (report.attempts, report.delivered) == (2, 2)  # the retry, and the refund's event
    [delivery] = hooks.deliveries(event["id"])
    assert (delivery["state"], delivery["attempts"], delivery["last_http_status"]) == (
        "delivered",
        2,
        204,
    )
    ids = [r.headers["webhook-id"] for r in hooks.receiver.received]
    assert ids.count(event["id"]) == 2  # a retry keeps its webhook-id
    assert sorted(v["type"] for v in hooks.verified) == ["payment.succeeded", "refund.succeeded"]
    del setup


def test_a_removed_endpoint_gets_nothing_more_and_a_rotated_secret_signs(hooks: Hooks) -> None:
    w = hooks.world
    _setup, event = paid(hooks)
    with w.db.write() as conn:
        rotated = rotate_secret(conn, w.directory.server_key, hooks.endpoint_id)
    assert rotated is not None
    old = hooks.secret
    assert hooks.drain().delivered == 0  # the receiver still checks with the old secret
    [received] = hooks.receiver.received
    Webhook(rotated.secret).verify(received.body, received.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(received.body, received.headers)
    ok(w.client.delete(f"/v1/webhook_endpoints/{hooks.endpoint_id}", headers=auth(w)))
    w.clock.advance(3600 * MICROS_PER_SECOND)
    assert hooks.drain().failed == 1  # the pending retry fails: its endpoint is gone
    [delivery] = hooks.deliveries(event["id"])
    assert delivery["state"] == "failed"
    assert "removed" in (delivery["last_error"] or "")
    before = count_rows(w, schema.events)
    ok(pay(w, _setup, 100))
    assert count_rows(w, schema.ipn_notifications) == 1  # no delivery for the new event
    assert count_rows(w, schema.events) == before  # nor an event: it has no endpoint now


def test_our_signature_is_the_reference_librarys() -> None:
    secret, body = new_secret(), b'{"id":"evt_1","type":"payment.succeeded"}'
    at = 1_765_000_000
    ours = sign(secret, "evt_1", at, body)
    assert ours == Webhook(secret).sign("evt_1", datetime.fromtimestamp(at, UTC), body)


def test_the_receiver_in_docs_api_md_verifies_a_delivery(world: World, tmp_path: Path) -> None:
    """docs/api.md's receiver, run as written, against a real delivery."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    [code] = [
        block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "Webhook(" in block
    ]
    (tmp_path / "receiver.py").write_text(code)
    port = free_port()
    made = subscribe(world, f"http://127.0.0.1:{port}/hooks", enabled_events=["payment.succeeded"])
    env = {**os.environ, "WEBHOOK_SECRET": made["secret"], "PORT": str(port)}
    process = subprocess.Popen(  # the docs' script, with this interpreter
        [sys.executable, str(tmp_path / "receiver.py")], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        setup = world.prepaid()
        ok(fund(world, setup, 5000))
        payment = ok(pay(world, setup, 150))
        deadline = time.monotonic() + 20
        while (report := deliver(world)).delivered == 0 and time.monotonic() < deadline:
            world.clock.advance(3600 * MICROS_PER_SECOND)  # not listening yet: try again
            time.sleep(0.2)
        assert report.delivered == 1
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert (
        out.splitlines()[-1]
        == f"payment.succeeded {payment['id']} {{'amount': 150, 'currency': 'USD'}}"
    )
