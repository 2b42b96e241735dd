"""The audit: compares the stored balance counters with what the journal says they must be.

The storage adapter derives, from the legs alone, each account's four counters and each
journal's sum per currency, and lists structural anomalies it finds (a failed journal with legs,
a pending journal whose state contradicts its postings). :func:`audit` compares that with the
stored counters and bounds and returns an :class:`AuditReport`; it is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from penny.ledger.book import violated_bound
from penny.ledger.model import Account, Balance
from penny.ledger.results import ResultCode

ZERO = Balance(0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class CounterMismatch:
    account_id: int
    stored: Balance
    derived: Balance


@dataclass(frozen=True, slots=True)
class UnbalancedJournal:
    journal_id: int
    currency: str
    total: int


@dataclass(frozen=True, slots=True)
class BoundViolation:
    account_id: int
    code: ResultCode


@dataclass(frozen=True)
class AuditReport:
    """What the audit found. ``ok`` only when every list is empty and value is conserved."""

    accounts: int
    journals: int
    legs: int
    mismatches: list[CounterMismatch] = field(default_factory=list)
    unbalanced: list[UnbalancedJournal] = field(default_factory=list)
    violations: list[BoundViolation] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    #: Per currency: (sum of posted debits − posted credits, same for pending), over all
    #: accounts. Double entry makes both zero.
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def conserved(self) -> bool:
        return all(posted == 0 and pending == 0 for posted, pending in self.totals.values())

    @property
    def ok(self) -> bool:
        return (
            not self.mismatches
            and not self.unbalanced
            and not self.violations
            and not self.anomalies
            and self.conserved
        )


def audit(
    accounts: Iterable[Account],
    derived: Mapping[int, Balance],
    unbalanced: Iterable[UnbalancedJournal],
    anomalies: Iterable[str],
    *,
    journals: int,
    legs: int,
) -> AuditReport:
    """Compare stored ``accounts`` with the counters ``derived`` from the legs."""
    mismatches: list[CounterMismatch] = []
    violations: list[BoundViolation] = []
    totals: dict[str, tuple[int, int]] = {}
    count = 0
    seen: set[int] = set()
    for account in accounts:
        count += 1
        seen.add(account.id)
        stored = account.balance
        expected = derived.get(account.id, ZERO)
        if stored != expected:
            mismatches.append(CounterMismatch(account.id, stored, expected))
        code = violated_bound(account)
        if code is not ResultCode.ok:
            violations.append(BoundViolation(account.id, code))
        posted, pending = totals.get(account.currency, (0, 0))
        totals[account.currency] = (
            posted + stored.debits_posted - stored.credits_posted,
            pending + stored.debits_pending - stored.credits_pending,
        )
    extra = [
        f"legs refer to account {account_id}, which does not exist"
        for account_id in sorted(set(derived) - seen)
    ]
    return AuditReport(
        accounts=count,
        journals=journals,
        legs=legs,
        mismatches=mismatches,
        unbalanced=list(unbalanced),
        violations=violations,
        anomalies=[*anomalies, *extra],
        totals=totals,
    )
