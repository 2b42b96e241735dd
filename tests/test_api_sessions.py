"""Authorization sessions and instruments through ``/v1`` (#17), on both stores: a session's
start URL is driven through the hosted pages as a buyer's browser would (in process), and the
session then names the instrument and tokens the return URL named; refusals name their field."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from builders import CARD
from cobranded_support import BUYER_PASSWORD, PIPELINE_PATH, UiClient, World, csrf_of
from penny.api.auth import bearer_secret
from test_cobranded_pages import world

__all__ = ["world"]  # the fixture: a merchant and Bea, a buyer

RETURN = "https://shop.example/return?order=7"


def headers(world: World, key: str | None = None) -> dict[str, str]:
    found = {"Authorization": "Bearer " + bearer_secret(world.access_key, world.secret, live=False)}
    return found | ({} if key is None else {"Idempotency-Key": key})


def usd(minor: int) -> dict[str, Any]:
    return {"amount": minor, "currency": "USD"}


def create(ui: UiClient, body: dict[str, Any], key: str | None = None) -> Any:
    return ui.client.post("/v1/authorization_sessions", json=body, headers=headers(ui.world, key))


def fetch(ui: UiClient, path: str) -> dict[str, Any]:
    answer = ui.client.get(path, headers=headers(ui.world))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def completed(
    ui: UiClient, session: dict[str, Any], instrument: str, *tokens: str | None
) -> dict[str, Any]:
    """The session, read again: complete, with its instrument and its sender, funding and
    settlement ``tokens`` (None where the kind has none)."""
    done = fetch(ui, f"/v1/authorization_sessions/{session['id']}")
    assert done["status"] == "complete"
    assert done["instrument"] == instrument
    names = ("sender_token", "funding_token", "settlement_token")
    assert tuple(done[name] for name in names) == tokens
    return done


def complete_pages(ui: UiClient, url: str) -> dict[str, str]:
    """Follow a start URL as Bea: sign in, add and choose a card, confirm; the return params."""
    started = ui.client.get(url)
    assert started.status_code == 303, started.text
    match = PIPELINE_PATH.search(started.headers["location"])
    assert match is not None
    pid = match.group(1)
    csrf = csrf_of(ui.get(pid, "signin").text)
    form = {"csrf": csrf, "email": "bea@example.com", "password": BUYER_PASSWORD}
    assert ui.post(pid, "signin", form).status_code == 303
    bea = ui.world.directory.party_by_email("bea@example.com")
    assert bea is not None
    # Her card: an empty Penny balance cannot pay and is refused (#16's hosted-page fix).
    method = ui.world.directory.add_card(bea.id, CARD, 12, 2030).id
    page = ui.get(pid, "method")
    csrf = csrf_of(page.text)
    assert ui.post(pid, "method", {"csrf": csrf, "method_id": method}).status_code == 303
    done = ui.post(pid, "confirm", {"csrf": csrf})
    assert done.status_code == 303, done.text
    target = urlsplit(done.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == "https://shop.example/return"
    return dict(parse_qsl(target.query))


def test_a_prepaid_session_is_completed_on_the_hosted_pages(world: World) -> None:
    ui = UiClient(world)
    body = {
        "kind": "prepaid",
        "return_url": RETURN,
        "funding_amount": usd(2500),
        "payment_reason": "Game credits",
    }
    answer = create(ui, body, key="session-1")
    assert answer.status_code == 200, answer.text
    session = answer.json()
    assert session["object"] == "authorization_session"
    assert (session["kind"], session["status"]) == ("prepaid", "open")
    assert session["url"].startswith("http://testserver/cobranded-ui/actions/start?")
    assert session["caller_reference_sender"] == session["id"] + "-sender"
    assert session["caller_reference_funding"] == session["id"] + "-funding"
    assert session["instrument"] is None
    assert session["sender_token"] is None
    # The same key and body: the same session, replayed; nothing new is stored.
    again = create(ui, body, key="session-1")
    assert again.json() == session
    assert again.headers["idempotent-replayed"] == "true"
    assert fetch(ui, f"/v1/authorization_sessions/{session['id']}") == session

    back = complete_pages(ui, session["url"])
    assert back["status"] == "SC"  # a card (SA would be the Penny balance)
    assert back["callerReferenceSender"] == session["caller_reference_sender"]
    tokens = back["senderTokenID"], back["fundingTokenID"], None
    done = completed(ui, session, back["prepaidInstrumentID"], *tokens)

    instrument = fetch(ui, f"/v1/instruments/{done['instrument']}")
    assert instrument["kind"] == "prepaid"
    assert (instrument["balance"], instrument["funded"]) == (usd(0), usd(0))
    assert instrument["funding_limit"] == usd(2500)
    assert instrument["debt"] is None
    assert instrument["valid"] is True
    assert instrument["payment_reason"] == "Game credits"
    listed = fetch(ui, "/v1/instruments")
    assert [found["id"] for found in listed["data"]] == [done["instrument"]]


def test_a_postpaid_session_is_completed_on_the_hosted_pages(world: World) -> None:
    ui = UiClient(world)
    body = {
        "kind": "postpaid",
        "return_url": RETURN,
        "credit_limit": usd(5000),
        "global_amount_limit": usd(50000),
        "caller_reference_sender": "tab-7-sender",
        "caller_reference_settlement": "tab-7-settlement",
        "payment_methods": ["ABT", "CC"],
    }
    session = create(ui, body).json()
    assert (session["kind"], session["caller_reference_settlement"]) == (
        "postpaid",
        "tab-7-settlement",
    )
    back = complete_pages(ui, session["url"])
    tokens = back["creditSenderTokenID"], None, back["settlementTokenID"]
    done = completed(ui, session, back["creditInstrumentID"], *tokens)
    instrument = fetch(ui, f"/v1/instruments/{done['instrument']}")
    assert (instrument["kind"], instrument["debt"], instrument["charged"]) == (
        "credit",
        usd(0),
        usd(0),
    )
    assert (instrument["credit_limit"], instrument["global_amount_limit"]) == (
        usd(5000),
        usd(50000),
    )
    assert instrument["balance"] is None
    # Its references are used now: a new session with them is refused, naming the field.
    again = create(ui, body)
    assert again.status_code == 409
    assert again.json()["error"]["param"] == "caller_reference_sender"
    assert fetch(ui, "/v1/instruments?kind=prepaid")["data"] == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"kind": "postpaid", "credit_limit": usd(100)}, "global_amount_limit"),
        ({"kind": "prepaid"}, "funding_amount"),
        ({"kind": "prepaid", "funding_amount": usd(100), "credit_limit": usd(1)}, "credit_limit"),
        ({"kind": "prepaid", "funding_amount": usd(100), "valid_until": 1}, "valid_until"),
        ({"kind": "prepaid", "funding_amount": usd(0)}, "funding_amount"),
    ],
)
def test_a_session_the_pages_would_refuse_is_refused(
    world: World, body: dict[str, Any], param: str
) -> None:
    ui = UiClient(world)
    answer = create(ui, {"return_url": RETURN, **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("parameter_invalid", param)


def test_a_bad_return_url_and_unknown_sessions(world: World) -> None:
    ui = UiClient(world)
    answer = create(ui, {"kind": "prepaid", "return_url": "javascript:x", "funding_amount": usd(1)})
    assert answer.json()["error"]["param"] == "return_url"
    missing = ui.client.get("/v1/authorization_sessions/as_NOPE", headers=headers(world))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_authorization_session"
    unknown = ui.client.get("/v1/instruments/NOPE", headers=headers(world))
    assert unknown.status_code == 404
