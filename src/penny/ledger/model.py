"""The ledger's data: accounts with balance counters, legs, journals and the commands on them.

Conventions used throughout the ledger:

* Amounts are signed integers of minor units. On a :class:`Leg`, a positive amount is a
  *debit* of the account and a negative amount a *credit*; the legs of a journal sum to zero per
  currency (double entry).
* Each account keeps four counters — debits and credits, each *posted* and *pending* — and
  never anything derived from history, so a balance read is O(1).
* Times are integers of microseconds since the Unix epoch, handed in by the caller: the core has
  no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeAlias

from penny.ledger.results import ResultCode


class AccountFlags(enum.IntFlag):
    """Bounds an account keeps; fixed when the account is created."""

    NONE = 0
    #: ``debits_posted + debits_pending <= credits_posted``: a balance that cannot go
    #: negative, such as a prepaid instrument or a merchant's payable.
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1
    #: ``credits_posted + credits_pending <= debits_posted``: a receivable that cannot be
    #: repaid beyond what is owed, such as a postpaid debt.
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2


class JournalKind(enum.IntEnum):
    """What a stored journal row is."""

    posted = 0  # a journal whose legs were posted at once
    pending = 1  # a hold: its legs sit in the pending counters until posted, voided or expired
    post_pending = 2  # posts (all or part of) a pending journal; its legs are the posted amounts
    void_pending = 3  # releases a pending journal; it has no legs


class PendingState(enum.IntEnum):
    """Where a pending journal is in its life. Non-pending journals are always ``none``."""

    none = 0
    open = 1
    posted = 2
    voided = 3
    expired = 4


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What is needed to open an account.

    ``debit_limit`` bounds the *net debit* balance (debits posted and pending minus credits
    posted) and ``credit_limit`` the *net credit* balance, each when not ``None``: a postpaid
    credit line is an account whose net debit may not pass the credit limit.
    """

    currency: str
    flags: AccountFlags = AccountFlags.NONE
    debit_limit: int | None = None
    credit_limit: int | None = None
    code: int = 0


@dataclass(slots=True)
class Account:
    """An account as the core works on it: a mutable working copy inside one batch."""

    id: int
    currency: str
    flags: AccountFlags
    debit_limit: int | None
    credit_limit: int | None
    closed: bool
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0
    code: int = 0

    def copy(self) -> Account:
        return Account(
            self.id,
            self.currency,
            self.flags,
            self.debit_limit,
            self.credit_limit,
            self.closed,
            self.debits_posted,
            self.credits_posted,
            self.debits_pending,
            self.credits_pending,
            self.code,
        )

    @property
    def balance(self) -> Balance:
        return Balance(
            self.debits_posted, self.credits_posted, self.debits_pending, self.credits_pending
        )


@dataclass(frozen=True, slots=True)
class Balance:
    """An immutable snapshot of an account's four counters."""

    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    @property
    def net_credit_posted(self) -> int:
        """Credits minus debits, posted only: what a credit-normal account holds."""
        return self.credits_posted - self.debits_posted

    @property
    def net_debit_posted(self) -> int:
        """Debits minus credits, posted only: what a debit-normal account holds."""
        return self.debits_posted - self.credits_posted

    @property
    def available_credit(self) -> int:
        """Credits posted minus all debits, pending included: what may still be spent."""
        return self.credits_posted - self.debits_posted - self.debits_pending


@dataclass(frozen=True, slots=True)
class Leg:
    """One line of a journal: ``amount`` > 0 debits the account, < 0 credits it."""

    account_id: int
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class NewJournal:
    """Post a journal, or hold it as pending when ``pending`` is true.

    ``owner`` and ``key`` form the idempotency key (for FPS: the caller's account and its
    ``CallerReference``). ``code`` and ``memo`` are the caller's own classification and
    reference; they are part of the content compared on a retry.
    """

    owner: str
    key: str
    legs: tuple[Leg, ...]
    pending: bool = False
    expires_at: int | None = None
    code: int = 0
    memo: str = ""


@dataclass(frozen=True, slots=True)
class PostPending:
    """Post a pending journal: in full when ``legs`` is ``None``, else the amounts given.

    Given legs must name the pending journal's accounts in the same order with the same signs
    and amounts no larger than the held ones; what is not posted is released.
    """

    owner: str
    key: str
    pending_id: int
    legs: tuple[Leg, ...] | None = None
    code: int = 0
    memo: str = ""


@dataclass(frozen=True, slots=True)
class VoidPending:
    """Release a pending journal without moving any value."""

    owner: str
    key: str
    pending_id: int
    code: int = 0
    memo: str = ""


Command: TypeAlias = NewJournal | PostPending | VoidPending


@dataclass(frozen=True, slots=True)
class Pending:
    """A pending journal as the core needs it to post, void or expire it."""

    id: int
    owner: str
    legs: tuple[Leg, ...]
    state: PendingState
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What an idempotency key did the first time: kept with the journal row."""

    journal_id: int
    fingerprint: bytes
    result: int


@dataclass(frozen=True, slots=True)
class JournalRow:
    """A journal the batch will insert (successful or a remembered failure)."""

    id: int
    owner: str
    key: str
    fingerprint: bytes
    result: int
    kind: JournalKind
    pending_id: int | None
    pending_state: PendingState
    created_at: int
    expires_at: int | None
    code: int
    memo: str
    legs: tuple[Leg, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one command.

    ``journal_id`` names the journal row that holds this outcome (also for a remembered
    failure), or is ``None`` when nothing was stored (codes that are not ``remembered``, such as
    ``duplicate_with_different_content``). ``replayed`` is true when the key had been used
    before and this is the stored answer.
    """

    code: ResultCode
    journal_id: int | None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.code is ResultCode.ok
