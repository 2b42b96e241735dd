"""The bank test on a Patroni cluster (``penny check bank --store patroni``).

What changes against a single PostgreSQL:

* the store is a throwaway :class:`~penny.devtools.patroni.PatroniCluster` (etcd + three nodes,
  synchronous replication), and Penny is given its libpq multi-host URL with
  ``target_session_attrs=read-write``;
* the nemesis (:class:`ClusterNemesis`) does, in a random order drawn from the seed, F leader
  kills (SIGKILL of the primary's postmaster: Patroni fails over to the synchronous standby),
  S planned switchovers (Patroni's REST API) and K Penny kills; before each database fault it
  waits until all three nodes are back and one is a synchronous standby, so that every fault
  starts from a cluster that promises what it should;
* after the run, :func:`check_replicas` waits until every standby has replayed all the
  primary's WAL and audits each node on its own: the ledger must be clean everywhere and every
  node must hold exactly what the primary holds;
* :func:`failover_figures` measures, per database fault, the seconds without an acknowledged
  write and the acknowledged writes per second before and after.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from penny.check.bank import Nemesis, Run
from penny.check.history import FAILOVER, SWITCHOVER, Event, Facts, Op, World
from penny.check.servers import PennyServer
from penny.check.verify import load_facts
from penny.devtools.patroni import PatroniCluster, PatroniError, PatroniNode
from penny.engine.ledger import Ledger
from penny.storage.database import open_database

DB_UP: Final = "db-up"
#: Seconds of traffic on each side of a fault the throughput figures look at.
RATE_WINDOW_S: Final = 5.0
_CATCH_UP_TIMEOUT_S: Final = 120.0
_NEW_LEADER_TIMEOUT_S: Final = 120.0


class ClusterNemesis(Nemesis):
    """Leader kills, switchovers and Penny kills in a random order (see the module)."""

    def __init__(
        self, run: Run, servers: list[PennyServer], cluster: PatroniCluster, events: list[Event]
    ) -> None:
        super().__init__(run, servers, cluster, events)
        self.patroni = cluster

    def _loop(self) -> None:
        config = self.run.config
        plan = [FAILOVER] * config.failovers + [SWITCHOVER] * config.switchovers
        plan += ["kill"] * config.kills
        self.rng.shuffle(plan)
        mean_gap = config.duration_s / (len(plan) + 1)
        trial = 0
        for fault in plan:
            time.sleep(self.rng.uniform(0.3, 1.7) * mean_gap)
            if fault == "kill":
                trial += 1
                self.kill_penny(trial)
            else:
                self._database_fault(fault)

    def _database_fault(self, fault: str) -> None:
        cluster = self.patroni
        cluster.wait_healthy()  # three nodes, one a synchronous standby
        leader = cluster.leader()
        assert leader is not None
        if fault == FAILOVER:
            pid = cluster.kill_postmaster(leader)
            self.event(FAILOVER, f"SIGKILL postmaster {pid} of leader {leader.name}")
            new = wait_for_writable_leader(cluster)
        else:
            self.event(SWITCHOVER, f"switchover away from {leader.name}")
            new = cluster.switchover()
        self.event(DB_UP, f"{new.name} leads")


def wait_for_writable_leader(cluster: PatroniCluster) -> PatroniNode:
    """Wait until some node leads and takes writes; return it."""
    deadline = time.monotonic() + _NEW_LEADER_TIMEOUT_S
    while time.monotonic() < deadline:
        leader = cluster.leader()
        if leader is not None:
            try:
                with psycopg.connect(cluster.dsn(), autocommit=True, connect_timeout=3) as conn:
                    conn.execute("SELECT txid_current()")
            except psycopg.Error:
                pass
            else:
                return leader
        time.sleep(0.1)
    raise PatroniError(f"no writable leader after {_NEW_LEADER_TIMEOUT_S:.0f} s")


# -- after the run -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaCheck:
    """One node after catch-up: its role, whether its ledger audits clean, and whether it
    holds exactly what the primary holds."""

    node: str
    role: str
    audit_clean: bool
    same_as_primary: bool


def check_replicas(cluster: PatroniCluster, dbname: str, world: World) -> list[ReplicaCheck]:
    """Wait for the cluster to be whole and every standby to have replayed the primary's WAL,
    then audit every node and compare what it holds with the primary."""
    leader = cluster.wait_healthy()
    with psycopg.connect(cluster.node_dsn(leader), autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target = str(row[0])
    for node in cluster.nodes:
        if node is not leader:
            _wait_replayed(cluster.node_dsn(node), target)
    results: list[ReplicaCheck] = []
    primary_facts: Facts | None = None
    for node in sorted(cluster.nodes, key=lambda n: n is not leader):
        with open_database(cluster.node_url(node, dbname), migrate=False) as db:
            audit = Ledger(db).audit()
            facts = load_facts(db, world)
        if primary_facts is None:
            primary_facts = facts
        role = "primary" if node is leader else "standby"
        same = _same(facts, primary_facts)
        results.append(ReplicaCheck(node.name, role, audit.ok, same))
    return results


def _same(facts: Facts, other: Facts) -> bool:
    return (
        sorted(facts.rows, key=lambda r: r.id) == sorted(other.rows, key=lambda r: r.id)
        and facts.journals == other.journals
        and facts.duplicate_keys == other.duplicate_keys
    )


def _wait_replayed(dsn: str, target: str) -> None:
    deadline = time.monotonic() + _CATCH_UP_TIMEOUT_S
    while time.monotonic() < deadline:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
            ).fetchone()
        if row is not None and row[0]:
            return
        time.sleep(0.1)
    raise PatroniError(f"a standby did not replay up to {target} in {_CATCH_UP_TIMEOUT_S:.0f} s")


def failover_figures(ops: list[Op], events: list[Event], end: float) -> list[dict[str, Any]]:
    """Per database fault: the longest stretch without an acknowledged write from the fault
    until the next fault (or the end), and acknowledged writes per second in the
    :data:`RATE_WINDOW_S` before the fault and after that stretch."""
    done = sorted(
        op.completed
        for op in ops
        if op.reference is not None and op.outcome == "ok" and op.completed is not None
    )
    faults = [e for e in events if e.kind in (FAILOVER, SWITCHOVER)]
    figures: list[dict[str, Any]] = []
    for index, fault in enumerate(faults):
        until = faults[index + 1].t if index + 1 < len(faults) else end
        points = [fault.t, *(t for t in done if fault.t < t < until), until]
        gaps = [(b - a, b) for a, b in itertools.pairwise(points)]
        gap, resumed = max(gaps)
        before = sum(1 for t in done if fault.t - RATE_WINDOW_S <= t < fault.t)
        after = sum(1 for t in done if resumed <= t < resumed + RATE_WINDOW_S)
        figures.append(
            {
                "kind": fault.kind,
                "at_s": round(fault.t, 2),
                "no_write_s": round(gap, 2),
                "writes_per_s_before": round(before / RATE_WINDOW_S, 1),
                "writes_per_s_after": round(after / RATE_WINDOW_S, 1),
            }
        )
    return figures
