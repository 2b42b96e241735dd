"""The FPS API side of the attack checklist (docs/security.md), on SQLite and PostgreSQL.

Each test is one line of the checklist: forged signatures, replays after the time window, a
signature reused for another action or other parameters, another merchant's tokens,
instruments and transactions (answered exactly like unknown ones), SQL injection through every
parameter of every action, oversize bodies and parameter floods. Requests go through the real
application (Starlette's TestClient over :func:`penny.web.app.create_app`) with a manual clock,
one world per store for the module; each test checks the state before and after its requests.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from builders import (
    add_card,
    application,
    fps_timestamp,
    manual_clock,
    new_buyer,
    new_merchant,
    open_store,
    postpaid,
    prepaid,
    signed_fps,
)
from penny.clock import MICROS_PER_SECOND, ManualClock
from penny.fps.actions import ACTIONS, COMMON_PARAMETERS
from penny.fps.decode import MAX_PARAMETERS, MAX_REQUEST_BYTES
from penny.fps.signature import sign_v2
from penny.money import Money
from penny.services.factory import Services
from penny.services.payments import (
    InstrumentSetup,
    PayRequest,
)
from penny.storage.database import Database
from penny.storage.payments_sql import instruments, tokens, transactions
from penny.storage.schema import accounts, journals, legs

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

HOST = "testserver"
FORM = "application/x-www-form-urlencoded"
WINDOW_S = 15 * 60


@dataclass
class Merchant:
    id: str
    key: str
    secret: str
    prepaid: InstrumentSetup
    credit: InstrumentSetup
    payment_id: str


@dataclass
class World:
    db: Database
    clock: ManualClock
    client: TestClient
    a: Merchant
    b: Merchant

    def params(self, who: Merchant, action: str, extra: dict[str, str]) -> dict[str, str]:
        moment = fps_timestamp(self.clock.now_us())
        return signed_fps(
            action, who.key, who.secret, extra, method="POST", host=HOST, timestamp=moment
        )

    def post(self, params: dict[str, str]) -> tuple[int, str, str]:
        """(HTTP status, FPS error code or "" on success, the body) of a POSTed form."""
        response = self.client.post(
            "/", content=urlencode(params).encode(), headers={"Content-Type": FORM}
        )
        return answer(response)

    def call(self, who: Merchant, action: str, **extra: str) -> tuple[int, str, str]:
        return self.post(self.params(who, action, extra))

    def snapshot(self) -> tuple[Any, ...]:
        with self.db.read() as conn:
            return (
                tuple(conn.execute(select(accounts).order_by(accounts.c.id)).all()),
                conn.execute(select(func.count()).select_from(journals)).scalar(),
                conn.execute(select(func.count()).select_from(legs)).scalar(),
                tuple(conn.execute(select(transactions).order_by(transactions.c.id)).all()),
                tuple(conn.execute(select(tokens).order_by(tokens.c.id)).all()),
                tuple(conn.execute(select(instruments).order_by(instruments.c.id)).all()),
            )


def answer(response: Any) -> tuple[int, str, str]:
    body: str = response.text
    assert "Traceback" not in body
    root = ET.fromstring(body)
    code = next((n.text or "" for n in root.iter() if n.tag.endswith("Code")), "")
    return response.status_code, code, body


def _merchant(name: str, services: Services, buyer_no: int) -> Merchant:
    merchant = new_merchant(services, name, f"{name.lower()}@shop.example")
    buyer = new_buyer(services, f"Buyer {name}", f"b{buyer_no}@example.com", "pass-word-1")
    card = add_card(services, buyer.id, year=2035)
    payments = services.payments
    prepaid_setup = prepaid(
        payments, merchant.id, buyer.id, card.id, (f"{name}-s", f"{name}-f"), limit=None
    )
    credit = postpaid(
        payments, merchant.id, buyer.id, card.id, (f"{name}-cs", f"{name}-ct"), limit="100"
    )
    pay = payments.execute(
        PayRequest(merchant.id, f"{name}-pay", credit.sender_token.id, Money(500, "USD"))
    )
    return Merchant(
        merchant.id, merchant.access_key, merchant.secret, prepaid_setup, credit, pay.id
    )


@pytest.fixture(scope="module")
def world(database_url_for_module: str) -> Iterator[World]:
    services = open_store(database_url_for_module)
    clock = manual_clock(services)
    a = _merchant("Alpha", services, 1)
    b = _merchant("Bravo", services, 2)
    with TestClient(
        application(services, request_clock=True), raise_server_exceptions=False
    ) as client:
        yield World(services.database, clock, client, a, b)
    assert services.ledger.audit().ok
    services.database.dispose()


# -- forged and replayed signatures --------------------------------------------------------


def test_a_forged_signature_is_refused_and_changes_nothing(world: World) -> None:
    before = world.snapshot()
    params = world.params(
        world.a,
        "Pay",
        {
            "CallerReference": "forged",
            "SenderTokenId": world.a.credit.sender_token.id,
            "TransactionAmount.Value": "1.00",
        },
    )
    # Signed with a guessed secret, with the right key id.
    params["Signature"] = sign_v2("guessed-secret", "POST", HOST, "/", params)
    assert world.post(params)[:2] == (403, "SignatureDoesNotMatch")
    # Signed by merchant B with its own secret, claiming A's key id.
    params["Signature"] = sign_v2(world.b.secret, "POST", HOST, "/", params)
    assert world.post(params)[:2] == (403, "SignatureDoesNotMatch")
    # No signature at all.
    del params["Signature"]
    assert world.post(params)[:2] == (400, "MissingParameter")
    assert world.snapshot() == before


def test_a_request_replayed_after_the_time_window_is_refused(world: World) -> None:
    params = world.params(
        world.a,
        "Pay",
        {
            "CallerReference": "replayed",
            "SenderTokenId": world.a.credit.sender_token.id,
            "TransactionAmount.Value": "2.00",
        },
    )
    first = world.post(params)
    assert first[:2] == (200, "")
    # Within the window the very same request is a retry: the same transaction, once.
    again = world.post(params)
    assert again[:2] == (200, "")
    assert _without_request_id(again[2]) == _without_request_id(first[2])
    before = world.snapshot()
    world.clock.advance((WINDOW_S + 1) * MICROS_PER_SECOND)
    status, code, _ = world.post(params)
    assert (status, code) == (400, "RequestExpired")
    assert world.snapshot() == before


def _request_id(body: str) -> str:
    found = re.search(r"<RequestI[dD]>([^<]*)</RequestI[dD]>", body)
    assert found is not None
    return found.group(1)


def _without_request_id(body: str) -> str:
    return body.replace(_request_id(body), "")


def test_a_signature_reused_for_another_action_or_other_parameters_is_refused(
    world: World,
) -> None:
    before = world.snapshot()
    signed = world.params(
        world.a, "GetDebtBalance", {"CreditInstrumentId": world.a.credit.instrument.id}
    )
    stolen = signed["Signature"]
    for changes in (
        {"Action": "WriteOffDebt", "CallerReference": "reuse", "AdjustmentAmount.Value": "5.00"},
        {"Action": "GetPrepaidBalance", "CreditInstrumentId": "", "PrepaidInstrumentId": "x"},
        {"CreditInstrumentId": world.b.credit.instrument.id},
        {"Timestamp": "2030-01-01T00:00:00Z"},
    ):
        forged = {k: v for k, v in {**signed, **changes}.items() if v}
        forged["Signature"] = stolen
        status, code, _ = world.post(forged)
        assert (status, code) in {(403, "SignatureDoesNotMatch"), (400, "RequestExpired")}
        assert code == "SignatureDoesNotMatch" or "Timestamp" in changes
    assert world.snapshot() == before


# -- another merchant's ids ----------------------------------------------------------------


def test_another_merchants_ids_are_indistinguishable_from_unknown_ones(world: World) -> None:
    a = world.a
    unknown_token = "T" * 64
    unknown_instrument = "I" * 64
    unknown_txn = "X" * 35
    cases = [
        ("GetPrepaidBalance", "PrepaidInstrumentId", a.prepaid.instrument.id, unknown_instrument),
        ("GetDebtBalance", "CreditInstrumentId", a.credit.instrument.id, unknown_instrument),
        ("GetTransaction", "TransactionId", a.payment_id, unknown_txn),
        ("GetTransactionStatus", "TransactionId", a.payment_id, unknown_txn),
        ("GetTokenByCaller", "TokenId", a.prepaid.sender_token.id, unknown_token),
        ("GetTokenUsage", "TokenId", a.credit.sender_token.id, unknown_token),
        ("CancelToken", "TokenId", a.prepaid.sender_token.id, unknown_token),
        ("Refund", "TransactionId", a.payment_id, unknown_txn),
        ("Pay", "SenderTokenId", a.credit.sender_token.id, unknown_token),
        ("WriteOffDebt", "CreditInstrumentId", a.credit.instrument.id, unknown_instrument),
        ("FundPrepaid", "PrepaidInstrumentId", a.prepaid.instrument.id, unknown_instrument),
        ("SettleDebt", "CreditInstrumentId", a.credit.instrument.id, unknown_instrument),
    ]
    base = {
        "Pay": {"TransactionAmount.Value": "1.00"},
        "Refund": {},
        "WriteOffDebt": {"AdjustmentAmount.Value": "1.00"},
        "FundPrepaid": {
            "FundingAmount.Value": "1.00",
            "SenderTokenId": world.b.prepaid.second_token.id,
        },
        "SettleDebt": {
            "SettlementAmount.Value": "1.00",
            "SenderTokenId": world.b.credit.second_token.id,
        },
    }
    before = world.snapshot()
    for n, (action, name, theirs, unknown) in enumerate(cases):
        extra = dict(base.get(action, {}))
        if action in {"Pay", "Refund", "WriteOffDebt", "FundPrepaid", "SettleDebt"}:
            extra["CallerReference"] = f"probe-{n}"
        seen = []
        for value in (theirs, unknown):
            status, code, body = world.call(world.b, action, **{name: value}, **extra)
            assert status == 400, body
            seen.append((status, code, _without_request_id(body).replace(value, "<id>")))
        assert seen[0] == seen[1], (action, seen)
    assert world.snapshot() == before


# -- SQL injection -------------------------------------------------------------------------

INJECTIONS = (
    "' OR '1'='1",
    "'; DROP TABLE ledger_accounts; --",
    "1) ; DELETE FROM transactions WHERE ('1'='1",
    "x' UNION SELECT secret_ciphertext FROM api_keys --",
)


def _valid_values(world: World, n: int) -> dict[str, str]:
    a = world.a
    return {
        "SenderTokenId": a.prepaid.sender_token.id,
        "PrepaidInstrumentId": a.prepaid.instrument.id,
        "CreditInstrumentId": a.credit.instrument.id,
        "TransactionId": a.payment_id,
        "TokenId": a.prepaid.sender_token.id,
        "CallerReference": f"inject-{n}",
        "TransactionAmount.Value": "0.01",
        "FundingAmount.Value": "0.01",
        "SettlementAmount.Value": "0.01",
        "AdjustmentAmount.Value": "0.01",
        "RefundAmount.Value": "0.01",
    }


def test_sql_injection_through_every_parameter_is_inert(world: World) -> None:
    """Every parameter of every action (the common ones included) carries each payload; the
    other parameters are valid, so the payload reaches as deep as it can. Nothing fails with a
    5xx, every table is still there, and a payload that was stored is stored verbatim."""
    n = 0
    for action, spec in sorted(ACTIONS.items()):
        names = sorted(spec.parameters | {"Version", "Timestamp", "AWSAccessKeyId"})
        for name in names:
            for payload in INJECTIONS:
                n += 1
                valid = _valid_values(world, n)
                extra = {k: v for k, v in valid.items() if k in spec.parameters}
                extra[name] = payload
                params = world.params(world.a, action, extra)
                if name in COMMON_PARAMETERS:
                    params[name] = payload  # after signing: the forged value itself
                status, _code, body = world.post(params)
                assert status < 500, (action, name, body)
    with world.db.read() as conn:
        for table in (accounts, journals, legs, transactions, tokens, instruments):
            assert conn.execute(select(func.count()).select_from(table)).scalar()
        stored = set(
            conn.execute(
                select(transactions.c.caller_reference).where(
                    transactions.c.caller_reference.in_(INJECTIONS)
                )
            ).scalars()
        )
    # CallerReference is free text: an injection string is a valid (if odd) reference, kept
    # as the literal it is.
    assert stored <= set(INJECTIONS)


# -- oversize bodies and parameter floods --------------------------------------------------


def test_an_oversize_body_is_refused_with_a_clear_error(world: World) -> None:
    before = world.snapshot()
    body = b"Action=Pay&" + b"A" * (MAX_REQUEST_BYTES + 1)
    response = world.client.post("/", content=body, headers={"Content-Type": FORM})
    status, code, text = answer(response)
    assert (status, code) == (413, "InvalidRequest")
    assert f"larger than {MAX_REQUEST_BYTES} bytes" in text
    # A lying Content-Length is refused before the body is read.
    response = world.client.post(
        "/",
        content=b"x",
        headers={"Content-Type": FORM, "Content-Length": str(10 * MAX_REQUEST_BYTES)},
    )
    assert response.status_code in {400, 413}
    assert world.snapshot() == before


def test_a_parameter_flood_is_refused_with_a_clear_error(world: World) -> None:
    before = world.snapshot()
    flood = {f"P{i}": "1" for i in range(MAX_PARAMETERS + 1)}
    params = world.params(world.a, "GetAccountBalance", flood)
    status, code, text = world.post(params)
    assert (status, code) == (400, "InvalidRequest")
    assert f"more than {MAX_PARAMETERS} parameters" in text
    # A long value and a repeated name are refused as clearly.
    status, code, text = world.post(world.params(world.a, "GetAccountBalance", {"X": "v" * 9000}))
    assert (status, code) == (400, "InvalidRequest")
    assert "longer than" in text
    query = urlencode(world.params(world.a, "GetAccountBalance", {})) + "&Action=Pay"
    status, code, _ = answer(world.client.get("/?" + query))
    assert (status, code) == (400, "InvalidRequest")
    assert world.snapshot() == before
