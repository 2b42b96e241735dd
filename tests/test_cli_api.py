"""``penny api …`` (penny-client from the shell) against a live ``penny serve``, on both stores:
pay, refund, list, balances and an authorization session, the key from $PENNY_API_KEY; refusals
are one ``error:`` line naming the field."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from penny.api.auth import bearer_secret
from penny.cli.main import app
from test_client_live import live
from test_ipn_processes import Serve, Shop

__all__ = ["live"]  # the fixture: penny serve over a shop with a funded prepaid instrument


def penny_api(shop: Shop, server: Serve, *args: str, status: int = 0) -> Any:
    env = {"PENNY_API_KEY": bearer_secret(shop.access_key, shop.secret, live=False)}
    result = CliRunner().invoke(app, ["api", *args, "--url", server.base], env=env)
    assert result.exit_code == status, result.output
    if "--json" in args and status == 0:
        return json.loads(result.stdout)
    return result.output


def test_a_merchant_works_from_the_shell(live: tuple[Shop, Serve]) -> None:
    shop, server = live
    token, instrument = shop.setup.sender_token.id, shop.setup.instrument.id
    paid = penny_api(shop, server, "pay", token, "1.50", "--idempotency-key", "o-1", "--json")
    assert (paid["amount"]["amount"], paid["caller_reference"]) == (150, "o-1")
    again = penny_api(shop, server, "pay", token, "1.50", "--idempotency-key", "o-1", "--json")
    assert again["id"] == paid["id"]
    text = penny_api(shop, server, "refund", paid["id"], "--amount", "0.50")
    assert "refund" in text
    assert "USD 0.50" in text
    listed = penny_api(shop, server, "transactions", "--operation", "pay", "--json")
    assert [found["id"] for found in listed["data"]] == [paid["id"]]
    every = penny_api(shop, server, "transactions", "--all", "--json")
    assert len(every["data"]) == 3  # funding, Pay, refund
    shown = penny_api(shop, server, "balance", instrument)
    assert f"{instrument}  prepaid  balance USD 499.00" in shown
    totals = penny_api(shop, server, "balance", "--json")
    assert totals["prepaid_liability"]["balance"]["amount"] == 49900
    made = penny_api(
        shop, server, "session", "create", "postpaid", "--return-url",
        "https://shop.example/back", "--credit-limit", "20", "--global-amount-limit", "200",
        "--json",
    )  # fmt: skip
    assert made["url"].startswith(f"{server.base}/cobranded-ui/actions/start?")
    status = penny_api(shop, server, "session", "show", made["id"])
    assert f"{made['id']}  postpaid  open" in status


def test_refusals_and_bad_input_are_one_line(live: tuple[Shop, Serve]) -> None:
    shop, server = live
    token = shop.setup.sender_token.id
    out = penny_api(shop, server, "pay", token, "1000", status=2)
    assert out.startswith("error: insufficient_balance (amount): ")
    out = penny_api(shop, server, "pay", token, "1.5.0", status=2)
    assert out.startswith("error: AMOUNT '1.5.0' is not an amount of dollars")
    out = penny_api(shop, server, "session", "create", "prepaid", "--return-url", "x", status=2)
    assert out.startswith("error: parameter_invalid (")
    result = CliRunner().invoke(
        app, ["api", "balance", "--url", server.base], env={"PENNY_API_KEY": ""}
    )
    assert result.exit_code == 2
    assert "no API key" in result.output
