"""The book: applies ledger commands, one after another, to the working set of one batch.

A storage adapter loads everything a batch of commands refers to — the accounts, the pending
journals, what each idempotency key did before — into a :class:`Book`, applies the commands in
order, and then writes back what the book collected: new journal rows, changed accounts and
changed pending states. Each command sees the state as the commands before it in the batch left
it, and a refused command changes nothing. The book is pure: no SQL, no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from penny.ledger.fingerprint import fingerprint
from penny.ledger.model import (
    Account,
    AccountFlags,
    Command,
    JournalKind,
    JournalRow,
    KeyRecord,
    Leg,
    NewJournal,
    Outcome,
    Pending,
    PendingState,
    PostPending,
    VoidPending,
)
from penny.ledger.results import (
    CODE_RANGE,
    MAX_KEY_LENGTH,
    MAX_MEMO_LENGTH,
    MAX_OWNER_LENGTH,
    TIME_RANGE,
    ResultCode,
)
from penny.money import CURRENCY_SCALES, MAX_MINOR_UNITS

#: Largest absolute amount of one leg. Far above any payment; keeps sums of many legs inside
#: a signed 64-bit counter for a long time, and the overflow check catches the rest.
MAX_LEG_AMOUNT = 10**15

_PENDING_STATE_CODES = {
    PendingState.posted: ResultCode.pending_already_posted,
    PendingState.voided: ResultCode.pending_already_voided,
    PendingState.expired: ResultCode.pending_expired,
}


@dataclass(slots=True)
class _Delta:
    """How one command would change one account's counters."""

    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0


@dataclass
class Book:
    """The working set of one batch, and what applying commands to it produced.

    ``accounts`` and ``pendings`` must hold every account and pending journal the commands
    refer to that exists (a missing one is reported as not found); ``keys`` holds what each
    already-used idempotency key of the batch did. ``allocate_id`` hands out journal ids.
    """

    accounts: dict[int, Account]
    pendings: dict[int, Pending]
    keys: dict[tuple[str, str], KeyRecord]
    now: int
    allocate_id: Callable[[], int]
    new_journals: list[JournalRow] = field(default_factory=list)
    changed_accounts: dict[int, Account] = field(default_factory=dict)
    pending_changes: dict[int, PendingState] = field(default_factory=dict)

    # -- entry points -------------------------------------------------------------------

    def apply(self, command: Command) -> Outcome:
        """Apply one command and return its outcome."""
        unstorable = _unstorable(command)
        if unstorable is not ResultCode.ok:
            return Outcome(unstorable, None)
        print_ = fingerprint(command)
        known = self.keys.get((command.owner, command.key))
        if known is not None:
            if known.fingerprint != print_:
                return Outcome(ResultCode.duplicate_with_different_content, None)
            return Outcome(ResultCode(known.result), known.journal_id, replayed=True)
        if isinstance(command, NewJournal):
            return self._new_journal(command, print_)
        if isinstance(command, PostPending):
            return self._post_pending(command, print_)
        assert isinstance(command, VoidPending)
        return self._void_pending(command, print_)

    def expire(self, pending_id: int) -> bool:
        """Expire one open pending journal whose time has come; False if it is not due."""
        pending = self.pendings.get(pending_id)
        if pending is None or pending.state is not PendingState.open:
            return False
        if pending.expires_at is None or pending.expires_at > self.now:
            return False
        self._release(pending)
        self._set_pending_state(pending, PendingState.expired)
        return True

    # -- commands -------------------------------------------------------------------------

    def _new_journal(self, command: NewJournal, print_: bytes) -> Outcome:
        code = _check_legs(command.legs)
        if code is ResultCode.ok:
            code = self._check_expiry(command)
        if code is ResultCode.ok:
            code = self._check_accounts(command.legs)
        deltas: dict[int, _Delta] = {}
        if code is ResultCode.ok:
            if command.pending:
                _add_held(deltas, command.legs, 1)
            else:
                _add_posted(deltas, command.legs)
            code = self._check_bounds(deltas)
        kind = JournalKind.pending if command.pending else JournalKind.posted
        if code is not ResultCode.ok:
            return self._remember(command, print_, code, kind)
        self._commit(deltas)
        state = PendingState.open if command.pending else PendingState.none
        journal_id = self._record(
            command, print_, ResultCode.ok, kind, legs=command.legs, pending_state=state
        )
        if command.pending:
            self.pendings[journal_id] = Pending(
                journal_id, command.owner, command.legs, PendingState.open, command.expires_at
            )
        return Outcome(ResultCode.ok, journal_id)

    def _post_pending(self, command: PostPending, print_: bytes) -> Outcome:
        kind = JournalKind.post_pending
        if command.legs is not None:
            code = _check_legs(command.legs)
            if code is not ResultCode.ok:
                return self._remember(command, print_, code, kind)
        pending, pending_code = self._open_pending(command.owner, command.pending_id)
        known = self.pendings.get(command.pending_id)
        if command.legs is not None:
            legs = command.legs
        elif known is not None and known.owner == command.owner:
            legs = known.legs
        else:
            return self._remember(command, print_, pending_code, kind)
        # Every check that applies runs; the one with the highest precedence answers.
        codes = [self._check_accounts(legs), pending_code]
        if pending is not None:
            codes.append(_check_post_legs(pending.legs, legs))
        code = _first(codes)
        deltas: dict[int, _Delta] = {}
        if code is ResultCode.ok:
            assert pending is not None
            _add_held(deltas, pending.legs, -1)
            _add_posted(deltas, legs)
            code = self._check_bounds(deltas)
        if code is not ResultCode.ok:
            return self._remember(command, print_, code, kind)
        assert pending is not None
        self._commit(deltas)
        self._set_pending_state(pending, PendingState.posted)
        journal_id = self._record(
            command, print_, ResultCode.ok, kind, legs=legs, pending_id=pending.id
        )
        return Outcome(ResultCode.ok, journal_id)

    def _void_pending(self, command: VoidPending, print_: bytes) -> Outcome:
        kind = JournalKind.void_pending
        pending, code = self._open_pending(command.owner, command.pending_id)
        if pending is None:
            return self._remember(command, print_, code, kind)
        self._release(pending)
        self._set_pending_state(pending, PendingState.voided)
        journal_id = self._record(command, print_, ResultCode.ok, kind, pending_id=pending.id)
        return Outcome(ResultCode.ok, journal_id)

    # -- checks ---------------------------------------------------------------------------

    def _check_expiry(self, command: NewJournal) -> ResultCode:
        if command.expires_at is None:
            return ResultCode.ok
        if not command.pending:
            return ResultCode.expiry_requires_pending
        if command.expires_at <= self.now:
            return ResultCode.expiry_must_be_in_future
        return ResultCode.ok

    def _check_accounts(self, legs: tuple[Leg, ...]) -> ResultCode:
        worst = ResultCode.ok
        for leg in legs:
            account = self.accounts.get(leg.account_id)
            if account is None:
                return ResultCode.account_not_found  # the highest precedence of this group
            if account.currency != leg.currency:
                code = ResultCode.currency_mismatch
            elif account.closed:
                code = ResultCode.account_closed
            else:
                continue
            if worst is ResultCode.ok or code < worst:
                worst = code
        return worst

    def _open_pending(self, owner: str, pending_id: int) -> tuple[Pending | None, ResultCode]:
        pending = self.pendings.get(pending_id)
        if pending is None or pending.owner != owner:
            return None, ResultCode.pending_not_found
        if pending.state is not PendingState.open:
            return None, _PENDING_STATE_CODES[pending.state]
        if pending.expires_at is not None and pending.expires_at <= self.now:
            return None, ResultCode.pending_expired
        return pending, ResultCode.ok

    def _check_bounds(self, deltas: Mapping[int, _Delta]) -> ResultCode:
        worst = ResultCode.ok
        for account_id, delta in deltas.items():
            code = _bounds_after(self.accounts[account_id], delta)
            if code is not ResultCode.ok and (worst is ResultCode.ok or code < worst):
                worst = code
        return worst

    # -- effects --------------------------------------------------------------------------

    def _commit(self, deltas: Mapping[int, _Delta]) -> None:
        for account_id, delta in deltas.items():
            account = self.accounts[account_id]
            account.debits_posted += delta.debits_posted
            account.credits_posted += delta.credits_posted
            account.debits_pending += delta.debits_pending
            account.credits_pending += delta.credits_pending
            self.changed_accounts[account_id] = account

    def _release(self, pending: Pending) -> None:
        deltas: dict[int, _Delta] = {}
        _add_held(deltas, pending.legs, -1)
        self._commit(deltas)

    def _set_pending_state(self, pending: Pending, state: PendingState) -> None:
        self.pendings[pending.id] = Pending(
            pending.id, pending.owner, pending.legs, state, pending.expires_at
        )
        self.pending_changes[pending.id] = state

    def _remember(
        self, command: Command, print_: bytes, code: ResultCode, kind: JournalKind
    ) -> Outcome:
        assert code is not ResultCode.ok
        assert code.remembered
        pending_id = None
        if not isinstance(command, NewJournal) and command.pending_id in self.pendings:
            pending_id = command.pending_id  # a reference to a missing journal is not kept
        journal_id = self._record(command, print_, code, kind, pending_id=pending_id)
        return Outcome(code, journal_id)

    def _record(
        self,
        command: Command,
        print_: bytes,
        code: ResultCode,
        kind: JournalKind,
        *,
        legs: tuple[Leg, ...] = (),
        pending_id: int | None = None,
        pending_state: PendingState = PendingState.none,
    ) -> int:
        journal_id = self.allocate_id()
        expires_at = command.expires_at if isinstance(command, NewJournal) else None
        self.new_journals.append(
            JournalRow(
                id=journal_id,
                owner=command.owner,
                key=command.key,
                fingerprint=print_,
                result=int(code),
                kind=kind,
                pending_id=pending_id,
                pending_state=pending_state,
                created_at=self.now,
                expires_at=expires_at,
                code=command.code,
                memo=command.memo,
                legs=legs,
            )
        )
        self.keys[(command.owner, command.key)] = KeyRecord(journal_id, print_, int(code))
        return journal_id


def _unstorable(command: Command) -> ResultCode:
    """Whether the store can hold this command's identity and labels at all."""
    if not command.owner or len(command.owner) > MAX_OWNER_LENGTH:
        return ResultCode.key_invalid
    if not command.key or len(command.key) > MAX_KEY_LENGTH:
        return ResultCode.key_invalid
    if len(command.memo) > MAX_MEMO_LENGTH:
        return ResultCode.memo_too_long
    if command.code not in CODE_RANGE:
        return ResultCode.code_out_of_range
    expires_at = command.expires_at if isinstance(command, NewJournal) else None
    if expires_at is not None and expires_at not in TIME_RANGE:
        return ResultCode.expiry_out_of_range
    return ResultCode.ok


def _check_legs(legs: tuple[Leg, ...]) -> ResultCode:
    """Checks that need nothing but the legs themselves (the same answer in any leg order)."""
    if len(legs) < 2:
        return ResultCode.journal_needs_two_legs
    worst = ResultCode.ok
    for leg in legs:
        code = _leg_code(leg)
        if code is not ResultCode.ok and (worst is ResultCode.ok or code < worst):
            worst = code
    if worst is not ResultCode.ok:
        return worst
    sums: dict[str, int] = {}
    for leg in legs:
        sums[leg.currency] = sums.get(leg.currency, 0) + leg.amount
    if any(total != 0 for total in sums.values()):
        return ResultCode.journal_must_balance
    if len({leg.account_id for leg in legs}) != len(legs):
        return ResultCode.accounts_must_be_distinct
    return ResultCode.ok


def _leg_code(leg: Leg) -> ResultCode:
    if leg.amount == 0:
        return ResultCode.amount_must_be_positive
    if abs(leg.amount) > MAX_LEG_AMOUNT:
        return ResultCode.amount_out_of_range
    if leg.currency not in CURRENCY_SCALES:
        return ResultCode.unsupported_currency
    return ResultCode.ok


def _check_post_legs(held: tuple[Leg, ...], posted: tuple[Leg, ...]) -> ResultCode:
    """A posting must mirror the hold leg by leg, with amounts no larger than held."""
    if len(held) != len(posted):
        return ResultCode.post_must_match_pending
    code = ResultCode.ok
    for hold, post in zip(held, posted, strict=True):
        if (
            hold.account_id != post.account_id
            or hold.currency != post.currency
            or (hold.amount > 0) != (post.amount > 0)
        ):
            return ResultCode.post_must_match_pending
        if abs(post.amount) > abs(hold.amount):
            code = ResultCode.post_exceeds_pending
    return code


def _first(codes: list[ResultCode]) -> ResultCode:
    """The failing code of highest precedence (lowest value), or ``ok``."""
    failing = [code for code in codes if code is not ResultCode.ok]
    return min(failing) if failing else ResultCode.ok


def _add_posted(deltas: dict[int, _Delta], legs: Sequence[Leg]) -> None:
    """Add ``legs`` to ``deltas`` as posted amounts (debits positive, credits negative)."""
    for leg in legs:
        delta = deltas.setdefault(leg.account_id, _Delta())
        if leg.amount > 0:
            delta.debits_posted += leg.amount
        else:
            delta.credits_posted -= leg.amount


def _add_held(deltas: dict[int, _Delta], legs: Sequence[Leg], sign: int) -> None:
    """Add ``legs`` to ``deltas`` as pending amounts: ``sign`` 1 holds them, -1 releases them."""
    for leg in legs:
        delta = deltas.setdefault(leg.account_id, _Delta())
        if leg.amount > 0:
            delta.debits_pending += sign * leg.amount
        else:
            delta.credits_pending -= sign * leg.amount


def _bounds_after(account: Account, delta: _Delta) -> ResultCode:
    """The bound of highest precedence ``account`` would break if ``delta`` applied, or ok."""
    debits_posted = account.debits_posted + delta.debits_posted
    credits_posted = account.credits_posted + delta.credits_posted
    debits = debits_posted + account.debits_pending + delta.debits_pending
    credits = credits_posted + account.credits_pending + delta.credits_pending
    grows_debits = delta.debits_posted + delta.debits_pending > 0
    grows_credits = delta.credits_posted + delta.credits_pending > 0
    flags = account.flags
    checks = [
        (
            grows_debits
            and bool(flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
            and debits > credits_posted,
            ResultCode.insufficient_balance,
        ),
        (
            grows_credits
            and bool(flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
            and credits > debits_posted,
            ResultCode.exceeds_debits,
        ),
        (
            grows_debits
            and account.debit_limit is not None
            and debits - credits_posted > account.debit_limit,
            ResultCode.exceeds_limit,
        ),
        (
            grows_credits
            and account.credit_limit is not None
            and credits - debits_posted > account.credit_limit,
            ResultCode.exceeds_limit,
        ),
    ]
    codes = [code for broken, code in checks if broken]
    if max(debits, credits) > MAX_MINOR_UNITS:
        codes.append(ResultCode.counter_overflow)
    return _first(codes)


def violated_bound(account: Account) -> ResultCode:
    """The first bound ``account``'s counters break as they stand, or ``ok`` (for audits)."""
    debits = account.debits_posted + account.debits_pending
    credits = account.credits_posted + account.credits_pending
    if max(debits, credits) > MAX_MINOR_UNITS or min(debits, credits) < 0:
        return ResultCode.counter_overflow
    if (
        account.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
        and debits > account.credits_posted
    ):
        return ResultCode.insufficient_balance
    if (
        account.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
        and credits > account.debits_posted
    ):
        return ResultCode.exceeds_debits
    if account.debit_limit is not None and debits - account.credits_posted > account.debit_limit:
        return ResultCode.exceeds_limit
    if account.credit_limit is not None and credits - account.debits_posted > (
        account.credit_limit
    ):
        return ResultCode.exceeds_limit
    return ResultCode.ok
