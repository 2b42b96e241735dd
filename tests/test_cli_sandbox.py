"""``penny sandbox``: seed, issue instruments, move time, and what that does to balances."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from builders import open_command_store
from penny.cli.main import app
from penny.clock import MICROS_PER_DAY
from penny.domain.model import Status
from penny.money import parse_amount
from penny.services.payments import FundPrepaidRequest

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    """The exit status, and stdout (on success) or everything printed (on failure)."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_seed_setup_fund_by_bank_and_advance(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/penny.db"
    code, out = run("sandbox", "seed", "--database", url, "--json")
    assert code == 0, out
    seeded = json.loads(out)
    assert seeded["seeded"] is True
    assert seeded["access_key_id"].startswith("PNY")
    code, out = run("sandbox", "seed", "--database", url)
    assert code == 0
    assert "already seeded" in out

    code, out = run(
        "sandbox", "setup-prepaid", "--database", url, "--json",
        "--merchant", seeded["merchant_id"], "--buyer", "buyer@example.com",
        "--method", seeded["bank_payment_method_id"], "--reference", "r1",
        "--funding-limit", "50",
    )  # fmt: skip
    assert code == 0, out
    setup = json.loads(out)
    assert setup["kind"] == "prepaid"
    assert setup["second_token_kind"] == "funding"

    services = open_command_store(url)
    clock, ledger, payments = services.clock, services.ledger, services.payments
    txn = payments.execute(
        FundPrepaidRequest(
            seeded["merchant_id"],
            "fund-1",
            setup["second_token_id"],
            setup["instrument_id"],
            parse_amount("20", "USD"),
        )
    )
    assert txn.status is Status.pending
    before = clock.now_us()

    code, out = run("sandbox", "advance", "--database", url, "--days", "4", "--json")
    assert code == 0, out
    advanced = json.loads(out)
    assert advanced["now_us"] >= before + 4 * MICROS_PER_DAY
    assert advanced["completed"] == [
        {"transaction_id": txn.id, "operation": "FundPrepaid", "status": "Success"}
    ]
    balance = payments.prepaid_balance(seeded["merchant_id"], setup["instrument_id"])
    assert balance.main == parse_amount("20", "USD")
    # The bank fee by default: $0.05 + 1.5 % of $20 = $0.35.
    assert payments.account_balance(seeded["merchant_id"]).total == parse_amount("19.65", "USD")
    assert services.directory.party(seeded["merchant_id"]) is not None
    assert ledger.audit().ok
    services.database.dispose()


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/penny.db"
    assert run("db", "upgrade", "--database", url)[0] == 0
    code, out = run("sandbox", "advance", "--database", url)
    assert code == 2
    assert "say how far to move" in out
    code, out = run(
        "sandbox", "setup-postpaid", "--database", url, "--merchant", "nobody",
        "--buyer", "nobody", "--reference", "r", "--credit-limit", "10",
    )  # fmt: skip
    assert code == 2
    assert "no account has the id or email 'nobody'" in out
    assert "Traceback" not in out
    code, out = run(
        "sandbox", "setup-postpaid", "--database", url, "--merchant", "x", "--buyer", "y",
        "--reference", "r", "--credit-limit", "10.001",
    )  # fmt: skip
    assert code == 2
    assert "--credit-limit" in out


def test_withdraw_needs_a_balance(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/penny.db"
    code, out = run("sandbox", "seed", "--database", url, "--json")
    assert code == 0, out
    merchant = json.loads(out)["merchant_id"]
    code, out = run(
        "accounts", "withdraw", "--database", url, "--account", merchant,
        "--amount", "1", "--reference", "w1",
    )  # fmt: skip
    assert code == 2
    assert "insufficient" in out
    assert "Traceback" not in out
