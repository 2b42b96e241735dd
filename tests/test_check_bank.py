"""``penny check bank``: short runs of the real command, a broken build it must catch, and the
checker's rules on hand-made histories.

The short runs (CI) kill Penny a few times on SQLite, on a throwaway PostgreSQL (which is also
crash-restarted once) and with two Penny processes on one PostgreSQL, and must pass. The long
mode (≥ 100 kills each) is one documented command: see docs/reliability.md.

A server built with ``PENNY_FAULTS=ack-before-commit`` acknowledges payments whose commit it
then drops: the checker must fail the run, name the lost operations and exit 1.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conftest import unique_database_name
from penny.check.client import Credentials
from penny.check.faults import UnknownFaultError, faults_from_env
from penny.check.history import BankConfig, Buyer, Event, Facts, Merchant, Op, Row, RunRecord, World
from penny.check.verify import _Bounds, check
from penny.devtools.pgcluster import create_database_at, drop_database_at

PENNY = (sys.executable, "-c", "from penny.cli.main import main; main()")
#: A small bank for CI: 2 merchants, 4 buyers, 4 clients.
SMALL = ("--merchants", "2", "--buyers", "4", "--clients", "4")


def run_check(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "bank"
    completed = subprocess.run(
        [*PENNY, "check", "bank", "--out", str(out), "--json", *SMALL, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "history.jsonl").stat().st_size > 0
    assert (out / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return completed.returncode, summary, completed.stdout + completed.stderr


def assert_passed(code: int, summary: dict[str, Any], output: str, kills: int) -> None:
    assert code == 0, output
    assert summary["ok"], summary["first_violations"]
    assert summary["kills"] == kills
    assert summary["audit_clean"]
    counts = summary["counts"]
    # Loose: CI machines are busy, the point is that traffic flowed through the kills.
    assert counts["acknowledged"] > 5
    assert counts["reads"] > 0
    # Kills happened while clients were busy: some requests had to be sent again.
    assert counts["retried"] > 0


@pytest.mark.postgresql
def test_bank_survives_leader_kills_a_switchover_and_penny_kills_on_patroni(
    tmp_path: Path,
) -> None:
    code, summary, output = run_check(
        tmp_path,
        *("--store", "patroni", "--processes", "2", "--duration", "10", "--seed", "13"),
        *("--kills", "1", "--failovers", "1", "--switchovers", "1"),
    )
    assert_passed(code, summary, output, kills=1)
    assert (summary["failovers"], summary["switchovers"]) == (1, 1)
    # Every node after catch-up: the ledger audits clean and holds what the primary holds.
    nodes = summary["nodes"]
    assert sorted(n["role"] for n in nodes) == ["primary", "standby", "standby"]
    assert all(n["audit_clean"] and n["same_as_primary"] for n in nodes), nodes
    figures = summary["failover_figures"]
    for kind in ("failover", "switchover"):
        assert figures[kind]["count"] == 1
        # A database fault stops writes for a moment (Patroni needs more than half a second to
        # promote a standby), and they resume before the run ends.
        assert 0.5 <= figures[kind]["no_write_s_max"] < 60
        assert figures[kind]["writes_per_s_after_mean"] > 0


def test_bank_survives_kills_on_sqlite(tmp_path: Path) -> None:
    code, summary, output = run_check(
        tmp_path, "--store", "sqlite", "--duration", "3", "--kills", "2", "--seed", "11"
    )
    assert_passed(code, summary, output, kills=2)
    assert summary["database_restarts"] == 0
    assert summary["counts"]["marketplace"] > 0  # marketplace Pays were mixed in (#19)


@pytest.mark.postgresql
def test_bank_survives_kills_and_a_database_crash_on_postgresql(tmp_path: Path) -> None:
    code, summary, output = run_check(
        tmp_path, "--store", "postgresql", "--duration", "2", "--kills", "2", "--seed", "12"
    )
    assert_passed(code, summary, output, kills=2)
    assert summary["database_restarts"] == 1


@pytest.mark.postgresql
def test_bank_survives_kills_with_two_processes_on_one_postgresql(
    tmp_path: Path, pg_server_url: str
) -> None:
    # A database of the session's server (``--database``): no cluster to start, no restart.
    name = unique_database_name("bank")
    url = create_database_at(pg_server_url, name)
    try:
        code, summary, output = run_check(
            tmp_path,
            "--database",
            url,
            "--processes",
            "2",
            "--duration",
            "2",
            "--kills",
            "2",
            "--seed",
            "13",
            env={"PENNY_SECRET_KEY": secrets.token_hex(32)},
        )
    finally:
        drop_database_at(pg_server_url, name)
    assert_passed(code, summary, output, kills=2)
    assert summary["processes"] == 2
    assert summary["store"] == "postgresql"


def test_the_checker_catches_a_server_that_acknowledges_before_committing(
    tmp_path: Path,
) -> None:
    code, summary, output = run_check(
        tmp_path,
        "--duration",
        "3",
        "--kills",
        "0",
        "--inject-fault",
        "ack-before-commit",
    )
    assert code == 1, output
    assert not summary["ok"]
    assert summary["first_violations"][0]["code"] == "lost"
    assert "acknowledged" in summary["first_violations"][0]["message"]
    log = (tmp_path / "bank" / "penny-0.log").read_text()
    assert "fault 'ack-before-commit' INJECTED" in log


def test_penny_faults_rejects_unknown_names_and_is_empty_when_unset() -> None:
    assert faults_from_env({}) == frozenset()
    assert faults_from_env({"PENNY_FAULTS": " ack-before-commit "}) == {"ack-before-commit"}
    with pytest.raises(UnknownFaultError):
        faults_from_env({"PENNY_FAULTS": "ack-before-commit,drop-tables"})


# -- the checker's rules on hand-made histories --------------------------------------------


WORLD = World(
    merchants=(Merchant(0, "M0", Credentials("K", "S")),),
    buyers=(Buyer(0, 0, "P0", "PT", "FT", "C0", "CT", "ST"),),
)


Journals = dict[int, tuple[int, int]]
"""A history's journals: id → (first, last) entry, as the checker reads them from the store."""

History = tuple[list[Op], list[Row], Journals]
"""A hand-made run: the operations the clients made, the rows stored, their journals."""


def record(ops: list[Op], rows: list[Row], journals: Journals) -> RunRecord:
    return RunRecord(
        config=BankConfig(),
        world=WORLD,
        ops=ops,
        events=[Event(1.0, "kill", "penny #0")],
        started_at=0.0,
        duration_s=10.0,
        database_url="sqlite:///x",
        restart_s=[1.0],
        audit_clean=True,
        audit_output="",
        facts=Facts(rows=rows, journals=journals, duplicate_keys=[]),
    )


def fund(op_id: int, invoked: float, completed: float | None, outcome: str = "ok") -> Op:
    return Op(
        op_id,
        0,
        "fund",
        0,
        0,
        reference=f"bank-1-{op_id}",
        amount=1000,
        invoked=invoked,
        completed=completed,
        outcome=outcome,
        transaction_id=f"T{op_id}" if outcome == "ok" else None,
        status="Success" if outcome == "ok" else None,
    )


def row(op_id: int, journal: int, amount: int = 1000) -> Row:
    return Row(
        f"T{op_id}", "FundPrepaid", "M0", f"bank-1-{op_id}", amount, "Success", journal, "P0"
    )


def read(op_id: int, kind: str, invoked: float, completed: float, value: int) -> Op:
    return Op(
        op_id,
        1,
        kind,
        0,
        0,
        invoked=invoked,
        completed=completed,
        outcome="ok",
        value=value,
        pending=0,
    )


def codes(ops: list[Op], rows: list[Row], journals: Journals) -> list[str]:
    """What the checker finds wrong in the history, by code, in its order."""
    return [v.code for v in check(record(ops, rows, journals)).violations]


def _funds() -> History:
    """Fund $10 twice (the second's answer lost, applied), with reads that may see it."""
    ops = [
        fund(1, 0.0, 1.0),
        fund(2, 2.0, None, outcome="unknown"),  # applied, answer lost
        read(3, "read_prepaid", 1.5, 1.6, 1000),
        read(4, "read_prepaid", 2.1, 2.2, 2000),  # may already see op 2
        read(5, "final_prepaid", 9.0, 9.1, 2000),
        read(6, "final_liability", 9.0, 9.1, 2000),
    ]
    return ops, [row(1, 10), row(2, 11)], {10: (0, 3), 11: (0, 3)}


def test_an_acknowledged_operation_missing_from_the_store_is_lost() -> None:
    ops = [fund(1, 0.0, 1.0), read(2, "final_prepaid", 9.0, 9.1, 0)]
    assert codes(ops, [], {}) == ["lost"]


def test_a_reference_applied_twice_and_a_refusal_that_applied_are_caught() -> None:
    ops = [fund(1, 0.0, 1.0), fund(2, 0.0, 1.0, outcome="refused")]
    rows = [row(1, 10), row(1, 12), row(2, 11)]
    found = codes(ops, rows, {10: (0, 3), 11: (0, 3), 12: (0, 3)})
    assert "duplicate" in found
    assert "refused-applied" in found


def test_a_transaction_without_its_journal_is_partial() -> None:
    ops = [fund(1, 0.0, None, outcome="unknown")]
    assert codes(ops, [row(1, 10)], {}) == ["partial"]


def test_a_read_outside_what_concurrent_operations_allow_is_not_a_snapshot() -> None:
    # Op 1 finished before the read began (+1000); op 2 was in flight (+1000 maybe): the read
    # may say 1000 or 2000, never 0, 1500 or 3000.
    ops = [fund(1, 0.0, 1.0), fund(2, 1.5, 3.0), read(3, "read_prepaid", 2.0, 2.5, 0)]
    rows = [row(1, 10), row(2, 11)]
    journals = {10: (0, 3), 11: (0, 3)}
    assert codes(ops, rows, journals) == ["snapshot"]
    ops[2] = read(3, "read_prepaid", 2.0, 2.5, 3000)
    assert codes(ops, rows, journals) == ["snapshot"]


def test_a_final_balance_that_does_not_add_up_is_caught() -> None:
    ops = [fund(1, 0.0, 1.0), read(2, "final_prepaid", 9.0, 9.1, 900)]
    assert codes(ops, [row(1, 10)], {10: (0, 3)}) == ["final"]


def test_a_negative_prepaid_read_and_a_debt_over_its_limit_are_caught() -> None:
    ops = [read(1, "read_prepaid", 0.0, 0.1, -5), read(2, "read_debt", 0.0, 0.1, 100_01)]
    found = codes(ops, [], {})
    assert "negative-prepaid" in found
    assert "debt-limit" in found


def test_bounds_worked_example() -> None:
    # Effects (invoked, completed, delta): +500 done at 1; -200 in flight 2..5; +300 from 4..∞.
    bounds = _Bounds([(0.0, 1.0, 500), (2.0, 5.0, -200), (4.0, float("inf"), 300)])
    assert bounds.range(0.5, 0.6) == (0, 500)  # the +500 may or may not be in
    assert bounds.range(1.5, 1.6) == (500, 500)
    assert bounds.range(3.0, 3.5) == (300, 500)
    assert bounds.range(4.5, 4.6) == (300, 800)
    assert bounds.range(6.0, 6.1) == (300, 600)
    assert bounds.total == 600


def test_bank_refuses_options_it_cannot_honour(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from penny.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["check", "bank", "--store", "oracle", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--store must be 'sqlite', 'postgresql' or 'patroni'" in result.output
    result = runner.invoke(app, ["check", "bank", "--processes", "2", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--processes > 1 needs PostgreSQL" in result.output


# -- Reserve, Settle and Cancel (issue #19) ------------------------------------------------------


def _op(op_id: int, kind: str, amount: int, **extra: Any) -> Op:
    return Op(op_id, 0, kind, 0, 0, amount=amount, outcome="ok", **extra)


def _reserves() -> History:
    """Fund $10; reserve $4 (settled: $3), reserve $2 (cancelled), reserve $1 (left open)."""
    ops = [
        fund(1, 0.0, 1.0),
        _op(
            2,
            "reserve",
            400,
            reference="bank-1-2",
            invoked=1.0,
            completed=1.5,
            transaction_id="R2",
            status="Reserved",
        ),
        _op(
            3,
            "settle_reserve",
            300,
            reference="Settle R2 USD 3.00",
            target="R2",
            invoked=2.0,
            completed=2.5,
            transaction_id="S3",
            status="Success",
        ),
        _op(
            4,
            "reserve",
            200,
            reference="bank-1-4",
            invoked=3.0,
            completed=3.5,
            transaction_id="R4",
            status="Reserved",
        ),
        _op(
            5,
            "cancel",
            200,
            target="R4",
            invoked=4.0,
            completed=4.5,
            transaction_id="R4",
            status="Cancelled",
        ),
        _op(
            6,
            "reserve",
            100,
            reference="bank-1-6",
            invoked=5.0,
            completed=5.5,
            transaction_id="R6",
            status="Reserved",
        ),
        read(7, "read_prepaid", 1.6, 1.7, 600),  # $4 held
        read(8, "read_liability", 1.6, 1.7, 1000),  # held value is still owed
        read(9, "read_prepaid", 2.6, 2.7, 700),  # $3 settled, $1 back
        read(10, "final_prepaid", 9.0, 9.1, 600),
        read(11, "final_liability", 9.0, 9.1, 700),  # $6 available + $1 held
    ]
    rows = [
        row(1, 10),
        Row("R2", "Reserve", "M0", "bank-1-2", 400, "Success", None, "P0"),
        Row("S3", "Settle", "M0", "Settle R2 USD 3.00", 300, "Success", 12, "P0"),
        Row("R4", "Reserve", "M0", "bank-1-4", 200, "Cancelled", None, "P0"),
        Row("R6", "Reserve", "M0", "bank-1-6", 100, "Reserved", None, "P0"),
    ]
    return ops, rows, {10: (0, 3), 12: (0, 2)}


def test_an_acknowledged_cancel_whose_reserve_is_not_cancelled_is_lost() -> None:
    ops, rows, journals = _reserves()
    rows[3] = replace(rows[3], status="Reserved")
    found = codes(ops, rows, journals)
    assert "lost" in found
    assert "final" in found  # the $2 it should have given back is missing


def test_a_liability_without_what_reserves_hold_is_caught() -> None:
    ops, rows, journals = _reserves()
    ops[-1] = read(11, "final_liability", 9.0, 9.1, 600)
    assert codes(ops, rows, journals) == ["final", "final"]


# -- subscriptions (issue #19) ---------------------------------------------------------------


def _subscription() -> History:
    """A subscription's card Pay answered Pending (completed since by the servers' sweep),
    then CancelSubscriptionAndRefund with $1.00 back: both on the card (the authorization
    instrument ``A0``), so no balance the checker reads moves."""
    ops = [
        _op(
            1,
            "sub_pay",
            500,
            reference="bank-1-1",
            invoked=0.0,
            completed=0.5,
            transaction_id="T1",
            status="Pending",
        ),
        _op(
            2,
            "sub_cancel",
            100,
            reference="bank-1-2",
            invoked=6.0,
            completed=6.5,
            transaction_id="T2",
            status="Success",
        ),
        read(3, "final_prepaid", 9.0, 9.1, 0),
    ]
    rows = [
        Row("T1", "Pay", "M0", "bank-1-1", 500, "Success", 20, "A0"),
        Row("T2", "Refund", "M0", "bank-1-2", 100, "Success", 21, "A0"),
    ]
    return ops, rows, {20: (0, 3), 21: (0, 3)}


def test_a_subscription_refund_acknowledged_but_not_stored_is_lost() -> None:
    ops, rows, journals = _subscription()
    assert codes(ops, rows[:1], {20: (0, 3)}) == ["lost"]
    ops[1] = replace(ops[1], outcome="refused", transaction_id=None, status=None)
    assert codes(ops, rows, journals) == ["refused-applied"]


# -- every clean history -----------------------------------------------------------------------


@pytest.mark.parametrize("history", [_funds, _reserves, _subscription])
def test_a_clean_history_passes(history: Callable[[], History]) -> None:
    """Funds with an answer lost; reserves settled, cancelled and left open; a subscription's
    Pay completed since and its refund: nothing to find."""
    assert codes(*history()) == []
