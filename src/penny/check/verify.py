"""The bank test's checker: the recorded history against what the store holds.

:func:`load_facts` reads the store once after the run (the transactions of the run's merchants,
the ledger journals behind them, duplicate journal keys). :func:`check` then verifies:

* ``lost``: every acknowledged operation is in the store, exactly as answered (id, status,
  amount), with a journal that moved value (a Reserve: its row, whose status may have moved on
  to Success or Cancelled since; a Cancel: its reserve is Cancelled);
* ``duplicate``: no ``CallerReference`` and no journal key appears twice;
* ``refused-applied``: an operation refused with an FPS error changed nothing;
* ``partial``: an operation that got no answer is either absent or fully applied (its
  transaction row and its journal both there);
* ``phantom``: the store holds no operation the clients never sent;
* ``negative-prepaid`` / ``debt-limit``: no read ever showed a negative prepaid balance or
  liability, or a debt below zero or above its credit limit;
* ``snapshot``: every balance read during the run lies between what the operations finished
  before it left and what those still in flight could have made it (a read is a consistent
  snapshot of one moment in its window);
* ``final``: once the run is over, each instrument's balance, each merchant's total prepaid
  liability and outstanding debt equal what the applied operations add up to, and the liability
  equals the sum of the prepaid balances and of what open reserves still hold on them;

A Reserve takes its amount off the prepaid balance but not off the liability (held value is
still owed); its Settle gives back the part not settled to the balance and takes the settled
part off the liability; a Cancel gives the whole hold back to the balance.
* ``audit``: ``penny audit`` (counters re-derived from the legs, value conserved) is clean —
  on a Patroni cluster, on the primary and on every standby after catch-up;
* ``replica``: on a Patroni cluster, every standby holds exactly what the primary holds.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from penny.check.history import FAILOVER, SWITCHOVER, Facts, Op, Row, RunRecord, World
from penny.services.payments import LEDGER_OWNER
from penny.storage.database import Database
from penny.storage.payments_sql import transactions
from penny.storage.schema import journals, legs

INF = float("inf")
CREDIT_LIMIT = 100_00


@dataclass(frozen=True, slots=True)
class Violation:
    code: str
    message: str
    ops: tuple[int, ...] = ()


@dataclass
class Verdict:
    violations: list[Violation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, code: str, message: str, *ops: int) -> None:
        self.violations.append(Violation(code, message, ops))


def load_facts(db: Database, world: World) -> Facts:
    merchant_ids = [m.party_id for m in world.merchants]
    with db.read() as conn:
        found = conn.execute(
            select(
                transactions.c.id,
                transactions.c.operation,
                transactions.c.caller_id,
                transactions.c.caller_reference,
                transactions.c.amount,
                transactions.c.status,
                transactions.c.journal_id,
                transactions.c.instrument_id,
            ).where(transactions.c.caller_id.in_(merchant_ids))
        ).all()
        rows = [Row(*r) for r in found]
        journal_rows = conn.execute(
            select(journals.c.id, journals.c.result, func.count(legs.c.idx))
            .select_from(journals.outerjoin(legs, legs.c.journal_id == journals.c.id))
            .where(journals.c.owner == LEDGER_OWNER)
            .group_by(journals.c.id, journals.c.result)
        ).all()
        duplicates = conn.execute(
            select(journals.c.key)
            .group_by(journals.c.owner, journals.c.key)
            .having(func.count() > 1)
        ).all()
    return Facts(
        rows=rows,
        journals={int(j): (int(r), int(n)) for j, r, n in journal_rows},
        duplicate_keys=[str(k) for (k,) in duplicates],
    )


# -- the checks ----------------------------------------------------------------------------


def check(record: RunRecord) -> Verdict:
    verdict = Verdict()
    world, facts = record.world, record.facts
    ops = record.ops
    mutating = [op for op in ops if op.reference is not None]
    verdict.counts = _counts(ops, mutating)
    party = {m.index: m.party_id for m in world.merchants}
    by_reference: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for fact in facts.rows:
        by_reference[(fact.caller_id, fact.caller_reference)].append(fact)
    sent = {(party[op.merchant], op.reference) for op in mutating}
    _check_references(facts, by_reference, sent, verdict)
    applied: dict[int, Row] = {}
    for op in mutating:
        assert op.reference is not None
        stored = by_reference.get((party[op.merchant], op.reference), [])
        row = stored[0] if stored else None
        if _check_op(op, row, facts, verdict):
            assert row is not None
            applied[op.id] = row
    _check_cancels(record, verdict)
    _check_values(record, applied, verdict)
    if not record.audit_clean:
        verdict.add("audit", "penny audit is not clean:\n" + record.audit_output.strip())
    for node in record.replicas:
        if not node.audit_clean:
            verdict.add("audit", f"the ledger on {node.role} {node.node} does not audit clean")
        if not node.same_as_primary:
            verdict.add("replica", f"{node.role} {node.node} does not hold what the primary holds")
    return verdict


def _counts(ops: list[Op], mutating: list[Op]) -> dict[str, int]:
    """How many operations of each kind and outcome the run made (the verdict's counts)."""
    return {
        "operations": len(ops),
        "mutating": len(mutating),
        "acknowledged": sum(op.outcome == "ok" for op in mutating),
        "marketplace": sum(op.kind == "pay_market" and op.outcome == "ok" for op in mutating),
        "refused": sum(op.outcome == "refused" for op in mutating),
        "unknown": sum(op.outcome == "unknown" for op in mutating),
        "reads": sum(op.reference is None and op.kind != "cancel" for op in ops),
        "retried": sum(op.sent > 1 for op in ops),
    }


def _check_references(
    facts: Facts,
    by_reference: dict[tuple[str, str], list[Row]],
    sent: set[tuple[str, str | None]],
    verdict: Verdict,
) -> None:
    """``duplicate`` journal keys and CallerReferences, and ``phantom`` stored operations."""
    for key in facts.duplicate_keys:
        verdict.add("duplicate", f"journal key {key!r} is in the ledger more than once")
    for (_caller, reference), found in by_reference.items():
        if len(found) > 1:
            verdict.add("duplicate", f"CallerReference {reference!r} applied {len(found)} times")
    for (caller, reference), found in by_reference.items():
        known = (caller, reference) in sent or _setup_reference(reference)
        if not known and reference.startswith("bank-"):
            verdict.add("phantom", f"{reference!r} ({found[0].operation}) was never sent")


def _check_op(op: Op, row: Row | None, facts: Facts, verdict: Verdict) -> bool:
    """Check one mutating operation against its stored ``row`` (``lost``, ``refused-applied``,
    ``partial``); true when it was applied in full (a successful row with its journal)."""
    if op.outcome == "ok":
        if row is None:
            verdict.add(
                "lost",
                f"op {op.id} {op.kind} {op.reference} was acknowledged "
                f"({op.transaction_id}, {op.status}) but is not in the store",
                op.id,
            )
            return False
        # A Reserve answered Reserved may have been settled or cancelled since, a card Pay
        # answered Pending completed.
        answered, later = LATER.get(op.kind, ("", frozenset()))
        status = answered if row.status in later else row.status
        if (row.id, status, row.amount) != (op.transaction_id, op.status, op.amount):
            verdict.add(
                "lost",
                f"op {op.id} {op.kind} was answered ({op.transaction_id}, {op.status}, "
                f"{op.amount}) but the store says ({row.id}, {row.status}, {row.amount})",
                op.id,
            )
    elif op.outcome == "refused":
        if row is not None:
            verdict.add(
                "refused-applied",
                f"op {op.id} {op.kind} was refused ({op.error}) but {row.id} is stored",
                op.id,
            )
        return False
    if row is None:
        return False
    if op.kind in LATER:  # a pending journal, written with the row
        return True
    if row.status == "Success":
        journal = facts.journals.get(row.journal_id) if row.journal_id else None
        if journal is None or journal[0] != 0 or journal[1] == 0:
            verdict.add(
                "partial",
                f"op {op.id} {op.kind}: transaction {row.id} is stored without the "
                f"journal that moves its value ({row.journal_id}: {journal})",
                op.id,
            )
            return False
        return True
    return False


#: Where a reserve can end up after it was answered Reserved.
RESERVE_ENDS = frozenset({"Reserved", "Success", "Cancelled"})
#: Operations whose answer may have moved on since: what they answered, where it may end up
#: (a subscription's card Pay answers Pending, then the servers' sweep completes it).
LATER = {
    "reserve": ("Reserved", RESERVE_ENDS),
    "sub_pay": ("Pending", frozenset({"Pending", "Success", "Failure"})),
}


def _check_cancels(record: RunRecord, verdict: Verdict) -> None:
    """A Cancel creates no row: an acknowledged one left its reserve Cancelled (``lost``
    otherwise), a refused one did not (``refused-applied``)."""
    rows = {row.id: row for row in record.facts.rows}
    for op in record.ops:
        if op.kind != "cancel" or op.target is None:
            continue
        row = rows.get(op.target)
        cancelled = row is not None and row.status == "Cancelled"
        if op.outcome == "ok" and not cancelled:
            verdict.add("lost", f"op {op.id} cancelled {op.target}, which is not Cancelled", op.id)
        if op.outcome == "refused" and cancelled:
            verdict.add(
                "refused-applied",
                f"op {op.id} cancel was refused ({op.error}) but {op.target} is Cancelled",
                op.id,
            )


def _setup_reference(reference: str) -> bool:
    return reference.endswith(("-prepaid", "-funding", "-credit", "-settlement", "-subscription"))


Key = tuple[str, int]
Window = tuple[float, float, int]


def _effects(record: RunRecord, applied: dict[int, Row]) -> dict[Key, list[Window]]:
    """Per balance (``prepaid``/``debt`` per buyer, ``liability``/``outstanding`` per
    merchant): (invoked, completed, delta) of every applied operation."""
    instrument: dict[str, tuple[str, int, int]] = {}
    for buyer in record.world.buyers:
        instrument[buyer.prepaid_id] = ("prepaid", buyer.index, buyer.merchant)
        instrument[buyer.credit_id] = ("debt", buyer.index, buyer.merchant)
    rows = {row.id: row for row in record.facts.rows}
    effects: dict[Key, list[Window]] = defaultdict(list)
    for op in record.ops:
        row = applied.get(op.id)
        if op.kind == "cancel" and op.target in rows:
            row = rows[op.target]  # the cancelled reserve: its row, when it is Cancelled
        if row is None or row.instrument_id not in instrument:
            continue  # a subscription's Pay or refund: on the card, no balance read here
        kind, owner, merchant = instrument[row.instrument_id]
        own, total = _deltas(op, row, rows, kind)
        window = (op.invoked, op.completed if op.completed is not None else INF, own)
        effects[(kind, owner)].append(window)
        effects[("liability" if kind == "prepaid" else "outstanding", merchant)].append(
            (window[0], window[1], total)
        )
    return effects


SIGN = {
    "pay_prepaid": -1,
    "pay_market": -1,  # a marketplace Pay spends prepaid value like any Pay (#19)
    "fund": 1,
    "pay_credit": 1,
    "settle": -1,
    "write_off": -1,
}


def _deltas(op: Op, row: Row, rows: dict[str, Row], kind: str) -> tuple[int, int]:
    """What ``op`` (applied as ``row``) adds to its instrument's balance and to the merchant's
    total: the same, except for what reserves hold (off the balance, still in the total)."""
    if op.kind == "refund":
        delta = row.amount if kind == "prepaid" else -row.amount
        return delta, delta
    if op.kind == "reserve":
        return -row.amount, 0
    if op.kind == "cancel":
        return (row.amount, 0) if row.status == "Cancelled" else (0, 0)
    if op.kind == "settle_reserve":
        reserve = rows.get(op.target or "")
        held = row.amount if reserve is None else reserve.amount
        return held - row.amount, -row.amount
    delta = SIGN[op.kind] * row.amount
    return delta, delta


class _Bounds:
    """Prefix sums to bound a balance read in time window [invoked, completed]."""

    def __init__(self, windows: Iterable[tuple[float, float, int]]) -> None:
        items = list(windows)
        by_done = sorted(items, key=lambda w: w[1])
        by_start = sorted(items, key=lambda w: w[0])
        self.done_t = [w[1] for w in by_done]
        self.start_t = [w[0] for w in by_start]
        self.done_sum = _prefix(w[2] for w in by_done)
        self.start_pos = _prefix(max(0, w[2]) for w in by_start)
        self.start_neg = _prefix(min(0, w[2]) for w in by_start)
        self.done_pos = _prefix(max(0, w[2]) for w in by_done)
        self.done_neg = _prefix(min(0, w[2]) for w in by_done)
        self.total = self.done_sum[-1]

    def range(self, invoked: float, completed: float) -> tuple[int, int]:
        d = bisect.bisect_left(self.done_t, invoked)  # finished before the read began
        s = bisect.bisect_left(self.start_t, completed)  # began before the read ended
        definite = self.done_sum[d]
        low = definite + self.start_neg[s] - self.done_neg[d]
        high = definite + self.start_pos[s] - self.done_pos[d]
        return low, high


def _prefix(values: Iterable[int]) -> list[int]:
    sums = [0]
    for value in values:
        sums.append(sums[-1] + value)
    return sums


READ_KEYS = {
    "read_prepaid": "prepaid",
    "read_debt": "debt",
    "read_liability": "liability",
    "read_outstanding": "outstanding",
    "final_prepaid": "prepaid",
    "final_debt": "debt",
    "final_liability": "liability",
    "final_outstanding": "outstanding",
}


def _check_values(record: RunRecord, applied: dict[int, Row], verdict: Verdict) -> None:
    effects = _effects(record, applied)
    bounds: dict[Key, _Bounds] = {}

    def bounds_for(key: Key) -> _Bounds:
        if key not in bounds:
            bounds[key] = _Bounds(effects.get(key, []))
        return bounds[key]

    finals: dict[Key, int] = {}
    for op in record.ops:
        what = READ_KEYS.get(op.kind)
        if what is None or op.outcome != "ok" or op.value is None:
            if what is not None and op.kind.startswith("final") and op.outcome != "ok":
                verdict.add("final", f"final read {op.kind} got no answer ({op.error})", op.id)
            continue
        index = op.buyer if what in ("prepaid", "debt") else op.merchant
        assert index is not None
        key = (what, index)
        value = op.value
        if what in ("prepaid", "liability") and value < 0:
            verdict.add("negative-prepaid", f"op {op.id} read {what} {index} = {value}", op.id)
        if what == "debt" and not 0 <= value <= CREDIT_LIMIT:
            verdict.add("debt-limit", f"op {op.id} read debt of buyer {index} = {value}", op.id)
        if what == "outstanding" and value < 0:
            verdict.add("debt-limit", f"op {op.id} read outstanding {index} = {value}", op.id)
        b = bounds_for(key)
        if op.kind.startswith("final"):
            finals[key] = value
            if value != b.total:
                verdict.add(
                    "final",
                    f"final {what} of {index} is {value}, the applied operations add up to "
                    f"{b.total}",
                    op.id,
                )
            continue
        low, high = b.range(op.invoked, op.completed if op.completed is not None else INF)
        if not low <= value <= high:
            verdict.add(
                "snapshot",
                f"op {op.id} read {what} {index} = {value} at [{op.invoked:.3f}, "
                f"{op.completed}], possible only within [{low}, {high}]",
                op.id,
            )
    held = _held(record)
    for merchant in record.world.merchants:
        mine = [b.index for b in record.world.buyers if b.merchant == merchant.index]
        for total, part in (("liability", "prepaid"), ("outstanding", "debt")):
            parts = [finals.get((part, i)) for i in mine]
            whole = finals.get((total, merchant.index))
            if whole is not None and None not in parts:
                added = sum(p for p in parts if p is not None)
                if total == "liability":
                    added += held.get(merchant.index, 0)
                if whole != added:
                    verdict.add(
                        "final",
                        f"merchant {merchant.index}: {total} {whole} != sum of {part} "
                        f"balances {added}",
                    )


def _held(record: RunRecord) -> dict[int, int]:
    """Per merchant: what the reserves still open at the end hold on its prepaid balances."""
    merchant_of = {b.prepaid_id: b.merchant for b in record.world.buyers}
    held: dict[int, int] = defaultdict(int)
    for row in record.facts.rows:
        if row.operation == "Reserve" and row.status == "Reserved" and row.instrument_id:
            held[merchant_of[row.instrument_id]] += row.amount
    return held


def summary(record: RunRecord, verdict: Verdict) -> dict[str, Any]:
    """The run in numbers, for the summary file and ``--json``."""
    ops = record.ops
    answered = [op for op in ops if op.outcome in ("ok", "refused") and op.client >= 0]
    kills = [e for e in record.events if e.kind == "kill"]
    restarts = record.restart_s
    return {
        "ok": verdict.ok,
        "seed": record.config.seed,
        "store": _store(record),
        "processes": record.config.processes,
        "duration_s": round(record.duration_s, 2),
        "kills": len(kills),
        "database_restarts": sum(e.kind == "db-down" for e in record.events),
        "mean_restart_s": round(sum(restarts) / len(restarts), 2) if restarts else None,
        "answered_per_s": round(len(answered) / record.duration_s, 1) if record.duration_s else 0.0,
        "counts": verdict.counts,
        "audit_clean": record.audit_clean,
        **_cluster_summary(record),
        "violations": len(verdict.violations),
        "first_violations": [
            {"code": v.code, "message": v.message, "ops": list(v.ops)}
            for v in verdict.violations[:10]
        ],
    }


def _store(record: RunRecord) -> str:
    if record.config.store == "patroni" and record.config.database_url is None:
        return "patroni"
    return "postgresql" if record.database_url.startswith("postgresql") else "sqlite"


def _cluster_summary(record: RunRecord) -> dict[str, Any]:
    """On a Patroni cluster: the database faults, their figures and every node's check."""
    if not record.replicas and not record.failovers:
        return {}
    return {
        "failovers": sum(e.kind == "failover" for e in record.events),
        "switchovers": sum(e.kind == "switchover" for e in record.events),
        "failover_figures": figures_summary(record.failovers),
        "per_fault": record.failovers,
        "nodes": [vars(node) for node in record.replicas],
    }


def first_ops(record: RunRecord, verdict: Verdict, limit: int = 5) -> list[Op]:
    """The operations named by the first violations, for the report."""
    wanted: list[int] = []
    for violation in verdict.violations:
        for op_id in violation.ops:
            if op_id not in wanted:
                wanted.append(op_id)
    by_id = {op.id: op for op in record.ops}
    return [by_id[i] for i in wanted[:limit] if i in by_id]


def figures_summary(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """p50 and max of the seconds without a write, per kind of fault."""
    result: dict[str, Any] = {}
    for kind in (FAILOVER, SWITCHOVER):
        gaps = [f["no_write_s"] for f in figures if f["kind"] == kind]
        if gaps:
            result[kind] = {
                "count": len(gaps),
                "no_write_s_p50": round(statistics.median(gaps), 2),
                "no_write_s_max": round(max(gaps), 2),
                "writes_per_s_before_mean": round(
                    statistics.fmean(
                        f["writes_per_s_before"] for f in figures if f["kind"] == kind
                    ),
                    1,
                ),
                "writes_per_s_after_mean": round(
                    statistics.fmean(f["writes_per_s_after"] for f in figures if f["kind"] == kind),
                    1,
                ),
            }
    return result
