"""``penny audit`` as a user runs it: clean after real work, exit 1 naming the culprit after a
deliberately corrupted counter or an unbalanced journal, exit 2 for a bad database URL."""

from __future__ import annotations

import json

from sqlalchemy import text
from typer.testing import CliRunner

from penny.cli.main import app
from penny.clock import ManualClock
from penny.engine.ledger import Ledger
from penny.ledger.model import AccountFlags, AccountSpec, Leg, NewJournal
from penny.storage.database import open_database

runner = CliRunner()


def _ledger_with_payments(url: str) -> tuple[int, int]:
    database = open_database(url)
    ledger = Ledger(database, ManualClock())
    bank, buyer = ledger.create_accounts(
        [AccountSpec("USD"), AccountSpec("USD", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)]
    )
    outcomes = ledger.execute(
        [
            NewJournal("o", "fund", (Leg(bank, 1000, "USD"), Leg(buyer, -1000, "USD"))),
            NewJournal("o", "spend", (Leg(buyer, 300, "USD"), Leg(bank, -300, "USD"))),
        ]
    )
    assert all(o.ok for o in outcomes)
    database.dispose()
    return bank, buyer


def test_audit_clean_then_corrupted_counter(database_url: str) -> None:
    _bank, buyer = _ledger_with_payments(database_url)
    result = runner.invoke(app, ["audit", "--database", database_url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["ok"], report["journals"], report["legs"]) == (True, 2, 4)

    database = open_database(database_url)
    with database.write() as conn:
        conn.execute(
            text("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = :i"),
            {"i": buyer},
        )
    database.dispose()
    result = runner.invoke(app, ["audit", "--database", database_url])
    assert result.exit_code == 1
    assert f"account {buyer}: stored" in result.output
    assert "NOT CONSERVED" in result.output


def test_audit_names_an_unbalanced_journal(database_url: str) -> None:
    bank, _buyer = _ledger_with_payments(database_url)
    database = open_database(database_url)
    with database.write() as conn:
        conn.execute(
            text("UPDATE ledger_legs SET amount = amount + 1 WHERE account_id = :a"), {"a": bank}
        )
    database.dispose()
    result = runner.invoke(app, ["audit", "--database", database_url, "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert {u["journal_id"] for u in report["unbalanced"]} == {1, 2}


def test_audit_bad_url_is_one_line() -> None:
    result = runner.invoke(app, ["audit", "--database", "mysql://nope"])
    assert result.exit_code == 2
    assert "unsupported database" in result.output
    assert "Traceback" not in result.output
