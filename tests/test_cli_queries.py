"""``penny accounts list``, ``penny transactions list|show`` and ``penny instruments
list|show``: the operator sees the state without SQL, as text, JSON or CSV, on both stores.

The store is made and filled the way an operator would (``db upgrade``, ``sandbox seed``,
``sandbox setup-prepaid|setup-postpaid``) plus real payments through the payments service.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from builders import open_command_store, usd
from penny.cli.main import app
from penny.clock import MICROS_PER_DAY
from penny.domain.model import Status
from penny.money import parse_amount
from penny.security import SERVER_KEY_ENV
from penny.services.payments import FundPrepaidRequest, PayRequest, RefundRequest

KEY_HEX = "ef" * 32


@dataclass
class World:
    url: str
    merchant: str
    buyer: str
    prepaid: str
    credit: str
    fund: str
    pays: list[str]
    refund: str


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--database", url], env={SERVER_KEY_ENV: KEY_HEX})


def ok(url: str, *args: str) -> str:
    result = invoke(url, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def ok_json(url: str, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(url, *args, "--json"))
    return data


def refused(url: str, *args: str) -> str:
    result = invoke(url, *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert line.startswith("error: ")
    assert "\n" not in line
    return line


@pytest.fixture
def world(database_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv(SERVER_KEY_ENV, KEY_HEX)
    url = database_url
    ok(url, "db", "upgrade")
    seeded = ok_json(url, "sandbox", "seed")
    merchant, buyer = seeded["merchant_id"], seeded["buyer_id"]
    parties = ("--merchant", merchant, "--buyer", buyer)
    prepaid = ok_json(url, "sandbox", "setup-prepaid", *parties, "--reference", "p")
    credit = ok_json(
        url, "sandbox", "setup-postpaid", *parties, "--reference", "c", "--credit-limit", "50"
    )
    services = open_command_store(url)
    payments = services.payments
    fund = payments.execute(
        FundPrepaidRequest(
            merchant, "f1", prepaid["second_token_id"], prepaid["instrument_id"], usd("10")
        )
    )
    assert fund.status is Status.success
    pays = [
        payments.execute(PayRequest(merchant, "pay-1", prepaid["sender_token_id"], usd("1.25"))),
        payments.execute(PayRequest(merchant, "pay-2", credit["sender_token_id"], usd("7.00"))),
    ]
    refund = payments.execute(RefundRequest(merchant, "refund-1", pays[0].id, usd("0.25")))
    services.database.dispose()
    return World(
        url,
        merchant,
        buyer,
        prepaid["instrument_id"],
        credit["instrument_id"],
        fund.id,
        [p.id for p in pays],
        refund.id,
    )


def test_accounts_list(world: World) -> None:
    listed = ok_json(world.url, "accounts", "list")["accounts"]
    assert [(a["id"], a["kind"]) for a in listed] == [
        (world.merchant, "business"),
        (world.buyer, "personal"),
    ]
    businesses = ok_json(world.url, "accounts", "list", "--kind", "business")["accounts"]
    assert [a["email"] for a in businesses] == ["merchant@digitaldownload.example"]
    text = ok(world.url, "accounts", "list")
    assert f"{world.merchant}  business" in text
    assert "DigitalDownload <merchant@digitaldownload.example>" in text
    rows = list(csv.DictReader(io.StringIO(ok(world.url, "accounts", "list", "--csv"))))
    assert [r["id"] for r in rows] == [world.merchant, world.buyer]
    assert rows[0]["created_at"].endswith("Z")


def test_transactions_list_newest_first_with_filters(world: World) -> None:
    every = ok_json(world.url, "transactions", "list")["transactions"]
    assert [t["id"] for t in every] == [world.refund, *reversed(world.pays), world.fund]
    assert every[0]["operation"] == "Refund"
    assert every[0]["amount"] == "0.25"
    assert every[0]["parent_id"] == world.pays[0]

    def ids(*filters: str) -> list[str]:
        found = ok_json(world.url, "transactions", "list", *filters)["transactions"]
        return [t["id"] for t in found]

    assert ids("--operation", "pay") == list(reversed(world.pays))
    assert ids("--instrument", world.credit) == [world.pays[1]]
    assert ids("--account", "buyer@example.com", "--operation", "FundPrepaid") == [world.fund]
    assert ids("--status", "Failure") == []
    assert ids("--limit", "2") == [world.refund, world.pays[1]]
    assert ids("--since", "2999-01-01") == []
    assert ids("--until", "2000-01-01T00:00:00Z") == []
    assert len(ids("--since", "2000-01-01", "--until", "2999-01-01")) == 4


def test_transactions_list_as_csv_and_text(world: World) -> None:
    rows = list(csv.DictReader(io.StringIO(ok(world.url, "transactions", "list", "--csv"))))
    assert [r["id"] for r in rows][-1] == world.fund
    assert rows[-1]["amount"] == "10.00"
    assert rows[-1]["operation"] == "FundPrepaid"
    assert rows[-1]["received_at"].endswith("Z")
    assert rows[-1]["parent_id"] == ""
    empty = ok(world.url, "transactions", "list", "--csv", "--status", "Failure")
    assert empty.splitlines()[0].startswith("id,received_at,operation,status,amount")
    assert len(empty.splitlines()) == 1
    text = ok(world.url, "transactions", "list", "--operation", "Pay")
    assert f"{world.pays[1]}  " in text
    assert "USD       7.00" in text
    assert ok(world.url, "transactions", "list", "--status", "Failure") == "(no transactions)\n"


def test_transactions_show(world: World) -> None:
    shown = ok_json(world.url, "transactions", "show", world.pays[0])
    assert shown["operation"] == "Pay"
    assert shown["amount"] == "1.25"
    assert shown["refunded"] == "0.25"
    assert [r["id"] for r in shown["refunds"]] == [world.refund]
    text = ok(world.url, "transactions", "show", world.pays[0])
    assert text.startswith(f"Pay {world.pays[0]}: USD 1.25 Success")
    assert f"  {world.refund}" in text


def test_instruments_list_and_show(world: World) -> None:
    listed = ok_json(world.url, "instruments", "list")["instruments"]
    assert [i["id"] for i in listed] == [world.credit, world.prepaid]
    assert listed[0]["credit_limit"] == "50.00"
    prepaid_only = ok_json(world.url, "instruments", "list", "--kind", "prepaid")["instruments"]
    assert [i["id"] for i in prepaid_only] == [world.prepaid]
    mine = ok_json(world.url, "instruments", "list", "--account", world.merchant)["instruments"]
    assert len(mine) == 2
    rows = list(csv.DictReader(io.StringIO(ok(world.url, "instruments", "list", "--csv"))))
    assert [r["kind"] for r in rows] == ["credit", "prepaid"]

    prepaid = ok_json(world.url, "instruments", "show", world.prepaid)
    # $10 funded, $1.25 spent, $0.25 refunded to the instrument.
    assert prepaid["balance"] == {"available": "9.00", "pending": "0.00"}
    assert {t["kind"] for t in prepaid["tokens"]} == {"prepaid_sender", "funding"}
    assert [t["id"] for t in prepaid["transactions"]][-1] == world.fund
    credit = ok_json(world.url, "instruments", "show", world.credit)
    assert credit["balance"] == {"debt": "7.00", "pending": "0.00"}
    text = ok(world.url, "instruments", "show", world.credit)
    assert text.startswith(f"credit instrument {world.credit}")
    assert "balance: debt USD 7.00 (pending 0.00)" in text


def test_unknown_ids_and_bad_filters_are_one_line(world: World) -> None:
    assert refused(world.url, "transactions", "show", "NOPE") == (
        "error: no transaction has the id 'NOPE'"
    )
    assert refused(world.url, "instruments", "show", "NOPE") == (
        "error: no instrument has the id 'NOPE'"
    )
    assert refused(world.url, "transactions", "list", "--status", "done") == (
        "error: --status must be one of Pending, Success, Failure, Reserved, Cancelled, not 'done'"
    )
    assert refused(world.url, "transactions", "list", "--since", "yesterday") == (
        "error: --since 'yesterday' is not a date like 2026-12-01 or 2026-12-01T10:00Z"
    )
    assert refused(world.url, "transactions", "list", "--account", "who@example.com") == (
        "error: no account has the id or email 'who@example.com'"
    )
    assert refused(world.url, "accounts", "list", "--json", "--csv") == (
        "error: choose one of --json and --csv"
    )


def test_sandbox_time_orders_the_lists(world: World) -> None:
    """A transaction made after ``sandbox advance`` is the newest."""
    ok(world.url, "sandbox", "advance", "--days", "1")
    services = open_command_store(world.url)
    payments = services.payments
    prepaid = ok_json(world.url, "instruments", "show", world.prepaid)
    sender = next(t["id"] for t in prepaid["tokens"] if t["kind"] == "prepaid_sender")
    later = payments.execute(PayRequest(world.merchant, "pay-3", sender, parse_amount("1", "USD")))
    services.database.dispose()
    newest = ok_json(world.url, "transactions", "list", "--limit", "1")["transactions"][0]
    assert newest["id"] == later.id
    assert newest["received_at"] >= MICROS_PER_DAY
