"""Penny on a real high-availability PostgreSQL: etcd + three Patroni nodes on 127.0.0.1.

* The dev tool (:mod:`penny.devtools.patroni`) starts a cluster with synchronous replication
  (one synchronous standby, ``synchronous_commit = on``), and tearing it down leaves no process,
  port or file behind.
* A batch in flight when the primary's postmaster is SIGKILLed ends as the transient
  ``storage_unavailable`` — not re-run, not guessed — and its retry with the same key, once
  Patroni has promoted a standby, is applied exactly once; Penny reached the new primary through
  the libpq multi-host URL on its own. ``/healthz`` names the server it reached and its role,
  and answers 503 on a standby or a dead server.
* Synchronous replication is really on: with the standbys' WAL receivers stopped a Pay is not
  acknowledged; an acknowledged Pay survives losing the primary's machine *and* its data
  directory; a ``penny serve`` that never restarted serves on the new primary (its key cache
  and IPN workers included: every notification is delivered); the wiped node comes back as a
  standby, a copy of the new primary, and every node audits clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select

from ipn_receiver import Receiver
from penny.check.ha import wait_for_writable_leader
from penny.devtools.patroni import PatroniCluster, PatroniNode
from penny.engine.ledger import Ledger
from penny.ledger.model import AccountSpec, Leg, NewJournal
from penny.ledger.results import ResultCode
from penny.storage import ipn_sql
from penny.storage.database import open_database
from penny.storage.payments_sql import transactions
from penny.web.health import healthz
from test_ipn_processes import Serve, Shop, _pay_over_http, open_shop, pay_url

pytestmark = pytest.mark.postgresql


@pytest.fixture
def cluster() -> Iterator[PatroniCluster]:
    with PatroniCluster.start() as started:
        yield started


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")  # reaped or a zombie


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_tool_runs_a_synchronous_three_node_cluster_and_removes_it_all() -> None:
    cluster = PatroniCluster.start()
    try:
        members = {m["name"]: m for m in cluster.members()}
        roles = sorted(m["role"] for m in members.values())
        assert roles == ["leader", "replica", "sync_standby"]
        assert {m["host"] for m in members.values()} == {"127.0.0.1"}
        leader = cluster.leader()
        assert leader is not None
        (sync_name,) = (name for name, m in members.items() if m["role"] == "sync_standby")
        with psycopg.connect(cluster.dsn()) as conn:  # multi-host, read-write: the primary
            row = conn.execute(
                "SELECT inet_server_port(), pg_is_in_recovery(),"
                " current_setting('synchronous_commit'),"
                " current_setting('synchronous_standby_names')"
            ).fetchone()
            replication = conn.execute(
                "SELECT application_name, sync_state FROM pg_stat_replication ORDER BY 2"
            ).fetchall()
        assert row is not None
        port, in_recovery, synchronous_commit, standby_names = row
        assert (port, in_recovery, synchronous_commit) == (leader.pg_port, False, "on")
        assert sync_name in standby_names
        assert [state for _name, state in replication] == ["async", "sync"]
        assert replication[1][0] == sync_name
        pids = [cluster.etcd.pid] if cluster.etcd is not None else []
        for node in cluster.nodes:
            assert node.process is not None
            postmaster = node.postmaster_pid()
            assert postmaster is not None
            pids += [node.process.pid, postmaster]
        ports = [cluster.etcd_port] + [n.pg_port for n in cluster.nodes]
        ports += [n.api_port for n in cluster.nodes]
    finally:
        cluster.destroy()
    assert not cluster.directory.exists()
    _wait(lambda: all(_gone(pid) for pid in pids), 30, "the cluster's processes to end")
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, port


def _health(url: str) -> tuple[int, dict[str, Any]]:
    db = open_database(url, migrate=False)
    try:
        response = asyncio.run(healthz(db, timeout_ms=8_000))
    finally:
        db.dispose()
    return response.status_code, json.loads(bytes(response.body))


class _HeldWrites:
    """The ledger's statements, except that a batch's journals, once written, wait (in the
    open transaction) for ``release``."""

    def __init__(self, inner: Any, reached: threading.Event, release: threading.Event) -> None:
        self._inner, self._reached, self._release = inner, reached, release
        #: The server process of the held transaction's session.
        self.backend_pid = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def write_journals(self, conn: Any, *args: Any, **kwargs: Any) -> None:
        self._inner.write_journals(conn, *args, **kwargs)
        self.backend_pid = conn.connection.dbapi_connection.info.backend_pid
        self._reached.set()  # written, not committed: now the primary dies
        self._release.wait(60)


def test_a_batch_in_flight_when_the_primary_dies_is_unavailable_then_applied_once(
    cluster: PatroniCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.create_database("inflight")
    db = open_database(cluster.dsn("inflight"))  # the libpq multi-host form, as documented
    try:
        ledger = Ledger(db)
        bank, shop = ledger.create_accounts([AccountSpec("USD"), AccountSpec("USD")])
        command = NewJournal("ha", "pay-1", (Leg(bank, 100, "USD"), Leg(shop, -100, "USD")))
        reached, release = threading.Event(), threading.Event()
        held = _HeldWrites(ledger.sql, reached, release)
        monkeypatch.setattr(ledger, "sql", held)
        answers: list[Any] = []
        worker = threading.Thread(target=lambda: answers.append(ledger.execute([command])))
        worker.start()
        assert reached.wait(30)
        old = cluster.leader()
        assert old is not None
        cluster.kill_postmaster(old)
        # Its session's server process goes with it (a backend left running would still commit,
        # and its orphaned WAL sender would still replicate the commit: a success, rightly).
        _wait(lambda: _gone(held.backend_pid), 30, "the session's server process to end")
        release.set()
        worker.join(60)
        assert [o.code for o in answers[0]] == [ResultCode.storage_unavailable]
        assert ledger.unavailable == 1
        monkeypatch.undo()

        new = wait_for_writable_leader(cluster)
        assert new is not old
        deadline = time.monotonic() + 60
        while (outcome := ledger.execute([command])[0]).code is ResultCode.storage_unavailable:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert outcome.ok
        assert not outcome.replayed  # the first attempt never committed
        assert ledger.execute([command])[0].replayed  # and now it is remembered, once
        assert ledger.count_journals() == 1
        assert ledger.audit().ok
    finally:
        db.dispose()
    status, body = _health(cluster.url("inflight"))
    assert (status, body["status"], body["role"]) == (200, "ok", "primary"), body
    assert body["server"] == f"127.0.0.1:{new.pg_port}"
    standby = next(n for n in cluster.nodes if n is not new and n.postmaster_pid() is not None)
    standby_url = cluster.node_url(standby, "inflight")
    # Right after the failover a standby may still be starting (Patroni restarts the old
    # primary as one): until it takes connections it answers "unavailable" with no role.
    _wait(lambda: "role" in _health(standby_url)[1], 60, "the standby to answer with its role")
    status, body = _health(standby_url)
    assert (status, body["status"], body["role"]) == (503, "unavailable", "standby"), body
    dead = cluster.node_url(standby, "inflight").replace(str(standby.pg_port), "1")
    status, body = _health(dead)
    assert (status, body["status"]) == (503, "unavailable"), body
    assert "role" not in body


# -- synchronous replication and a lost machine ---------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _wal_receivers(cluster: PatroniCluster, leader: PatroniNode) -> list[int]:
    receivers = []
    for node in cluster.nodes:
        postmaster = node.postmaster_pid()
        if node is leader or postmaster is None:
            continue
        for child in _children(postmaster):
            with contextlib.suppress(OSError):
                if b"walreceiver" in Path(f"/proc/{child}/cmdline").read_bytes():
                    receivers.append(child)
    return receivers


def _stored(url: str, reference: str) -> tuple[str, str] | None:
    db = open_database(url, migrate=False)
    try:
        with db.read() as conn:
            row = conn.execute(
                select(transactions.c.id, transactions.c.status).where(
                    transactions.c.caller_reference == reference
                )
            ).one_or_none()
    finally:
        db.dispose()
    return None if row is None else (str(row[0]), str(row[1]))


def _node_state(url: str) -> tuple[bool, int]:
    """Whether the ledger on one node audits clean, and how many IPNs it has as delivered."""
    db = open_database(url, migrate=False)
    try:
        with db.read() as conn:
            delivered = ipn_sql.counts(conn)[ipn_sql.DELIVERED]
        return Ledger(db).audit().ok, delivered
    finally:
        db.dispose()


def _all_delivered(url: str, count: int) -> bool:
    return _node_state(url)[1] == count


def _pay_until_answered(shop: Shop, server: Serve, reference: str, ipn: str) -> httpx.Response:
    """Retry (same CallerReference) through a failover until a definite answer."""
    deadline = time.monotonic() + 90
    while True:
        try:
            response = _pay_over_http(shop, server, reference, ipn)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code < 500:
            return response
        assert time.monotonic() < deadline, response.text if response else "no answer"
        time.sleep(0.2)


def test_an_acknowledged_pay_survives_losing_the_primary_and_its_data_directory(
    cluster: PatroniCluster, tmp_path: Path
) -> None:
    shop = open_shop(cluster.create_database("sync"))
    env = shop.env(PENNY_IPN_POLL_SECONDS="0.05", PENNY_IPN_TIMEOUT_SECONDS="2")
    env["PENNY_IPN_LEASE_SECONDS"] = "3"
    try:
        with Receiver() as receiver, Serve(shop.url, tmp_path, "ha", env) as server:
            server.wait_ready()
            ipn = receiver.url("/ipn")
            first = _pay_over_http(shop, server, "before", ipn)
            assert first.status_code == 200, first.text
            leader = cluster.leader()
            assert leader is not None

            # The control: no standby flushes WAL, so no commit may be acknowledged.
            stopped = _wal_receivers(cluster, leader)
            assert len(stopped) == 2
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            try:
                with pytest.raises(httpx.TimeoutException):
                    httpx.get(pay_url(shop, server, "held", ipn), timeout=4.0)
            finally:
                for pid in stopped:
                    os.kill(pid, signal.SIGCONT)
            held = _pay_until_answered(shop, server, "held", ipn)
            assert held.status_code == 200, held.text

            # The primary's machine is lost, disk and all, right after the acknowledgement.
            acknowledged = _pay_over_http(shop, server, "acknowledged", ipn)
            assert acknowledged.status_code == 200, acknowledged.text
            cluster.kill_node(leader)
            cluster.wipe_node(leader)
            new = wait_for_writable_leader(cluster)
            assert new is not leader
            after = _pay_until_answered(shop, server, "after", ipn)  # same process, new primary
            assert after.status_code == 200, after.text
            references = {"before", "held", "acknowledged", "after"}
            _wait(
                lambda: {r.params["callerReference"] for r in receiver.received} == references,
                60,
                "every IPN (the workers recover on the new primary)",
            )
            assert server.process.poll() is None  # never restarted
        for reference in references:
            assert _stored(cluster.url("sync"), reference) is not None, reference

        cluster.start_node(leader)  # an empty data directory: re-cloned from the new primary
        for node in cluster.nodes:
            url = cluster.node_url(node, "sync")
            _wait(functools.partial(_all_delivered, url, len(references)), 60, node.name)
            assert _node_state(url) == (True, len(references)), node.name
        assert _stored(cluster.node_url(leader, "sync"), "acknowledged") is not None
    finally:
        shop.db.dispose()
