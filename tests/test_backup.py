"""The restore drill: a pgBackRest backup of the Patroni cluster, taken under load, restored to a
point in time into a fresh server, audits clean and holds exactly what the primary held then.

The cluster archives its WAL with pgBackRest (``PatroniCluster.start(archive=True)``). Payments
flow from a client thread while a full backup runs; the load pauses for a moment, the primary's
clock and everything Penny stores are read (the state at that point), and payments go on. Then
the backup plus the archived WAL are restored up to that moment into an empty data directory,
a plain PostgreSQL starts on it, ``penny audit`` must be clean there, and the restored state must
equal the state read at that point — not the later one, which holds more payments.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from penny.devtools.patroni import PatroniCluster
from penny.money import parse_amount
from penny.services.payments import PayRequest
from penny.storage.database import open_database
from penny.storage.payments_sql import transactions
from penny.storage.schema import accounts, journals
from test_ipn_processes import Shop, open_shop

pytestmark = pytest.mark.postgresql

PENNY = (sys.executable, "-c", "from penny.cli.main import main; main()")


class Load:
    """Pays $0.01 in a loop (one Pay per commit) until stopped; can be paused between Pays."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.paid = 0
        self.running = threading.Event()
        self.idle = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                if not self.running.is_set():
                    self.idle.set()
                    self.running.wait(0.1)
                    continue
                self.idle.clear()
                self.shop.payments.execute(
                    PayRequest(
                        self.shop.merchant_id,
                        f"drill-{self.paid}",
                        self.shop.setup.sender_token.id,
                        parse_amount("0.01", "USD"),
                    )
                )
                self.paid += 1
        except BaseException as exc:  # reported by the test
            self.error = exc

    def pause(self) -> None:
        self.idle.clear()
        self.running.clear()
        assert self.idle.wait(30), "the load did not pause"


def _state(url: str) -> dict[str, Any]:
    """What Penny stores that matters for money: every transaction, account and journal."""
    db = open_database(url, migrate=False)
    try:
        with db.read() as conn:
            rows = conn.execute(
                select(
                    transactions.c.id,
                    transactions.c.caller_reference,
                    transactions.c.amount,
                    transactions.c.status,
                ).order_by(transactions.c.id)
            ).all()
            counters = conn.execute(select(accounts).order_by(accounts.c.id)).all()
            journal_ids = conn.execute(select(journals.c.id).order_by(journals.c.id)).all()
    finally:
        db.dispose()
    return {
        "transactions": [tuple(r) for r in rows],
        "accounts": [tuple(r) for r in counters],
        "journals": [r[0] for r in journal_ids],
    }


def test_a_backup_under_load_restores_to_a_point_in_time_and_audits_clean() -> None:
    with PatroniCluster.start(archive=True) as cluster:
        url = cluster.create_database("drill")
        shop = open_shop(url)
        load = Load(shop)
        try:
            load.thread.start()
            load.running.set()
            _wait_paid(load, 20)
            before_backup = load.paid
            cluster.backrest("--type=full", "backup")
            paid_during_backup = load.paid
            assert paid_during_backup > before_backup  # payments flowed during the backup
            # pgBackRest looks for a backup that stopped before the target, to the second.
            time.sleep(1.5)
            _wait_paid(load, paid_during_backup + 20)

            load.pause()
            with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
                row = conn.execute("SELECT clock_timestamp()::text").fetchone()
            assert row is not None
            target = str(row[0])
            at_target = _state(url)
            time.sleep(0.2)
            load.running.set()
            _wait_paid(load, load.paid + 20)
            load.pause()
            later = _state(url)
            with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
                conn.execute("SELECT pg_switch_wal()")
            cluster.backrest("check")  # waits until the current WAL segment is archived
        finally:
            load.stop.set()
            load.running.set()
            load.thread.join(30)
            shop.db.dispose()
        assert load.error is None, load.error
        assert len(later["transactions"]) > len(at_target["transactions"]) > 40

        restored = cluster.restore(target)
        restored_url = restored.url("drill")
        audit = subprocess.run(
            [*PENNY, "audit", "--database", restored_url],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "PENNY_SECRET_KEY": shop.key_hex},
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert _state(restored_url) == at_target


def _wait_paid(load: Load, count: int) -> None:
    deadline = time.monotonic() + 60
    while load.paid < count:
        assert load.error is None, load.error
        assert time.monotonic() < deadline, f"{load.paid} of {count} payments"
        time.sleep(0.05)
