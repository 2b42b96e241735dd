"""Stateful property test: the ledger engine on a real store against a simple reference model.

Hypothesis drives :class:`penny.engine.ledger.Ledger` with random commands — balanced journals
of two to four legs and deliberately broken ones, holds with and without expiry, posts in full
and in part, voids, retries of used keys with the same and with other content, clock advances
with ``expire_due``, account closings — one at a time or as a batch through ``execute``. The
reference model below is written from the documented rules, independently of
:class:`penny.ledger.book.Book`: plain dicts of four counters per account.

For every command the model computes *every* rule the command breaks; the engine must refuse
exactly the commands the model refuses, with one of those codes (which one wins when several
apply is pinned down by the precedence tests in ``test_book.py``), remember the outcome under
the key, and replay it on a retry. After every step: each account's counters equal the model's,
every bound holds, each currency sums to zero, and the audit of the whole store passes.

One database serves all the examples of one test function (creating one per example would be
slow on PostgreSQL); each example uses its own accounts and owner, and the global checks still
hold because every example keeps the whole store consistent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Final

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from penny.clock import MICROS_PER_SECOND, ManualClock
from penny.engine.ledger import Ledger
from penny.ledger.model import (
    AccountFlags,
    AccountSpec,
    Balance,
    Command,
    Leg,
    NewJournal,
    Outcome,
    PendingState,
    PostPending,
    VoidPending,
)
from penny.ledger.results import ResultCode
from penny.storage.database import open_database
from stateful_support import machine_settings

# Written down here rather than imported, so that the model does not share the core's constants.
SUPPORTED: Final = frozenset({"USD", "EUR", "GBP", "CAD", "AUD", "CHF", "JPY", "KRW", "BHD", "KWD"})
LEG_LIMIT: Final = 10**15
COUNTER_LIMIT: Final = 2**63 - 1
UNKNOWN_ACCOUNT: Final = 2**40  # never handed out by the stores in this test
UNKNOWN_JOURNAL: Final = 2**41

DMNEC = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
CMNED = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS

MAX_EXPIRY_S = 120
SWEEP_S = 10_000  # more than any expiry an example can set

R = ResultCode


# -- the reference model ---------------------------------------------------------------------


@dataclass
class ModelAccount:
    currency: str
    flags: AccountFlags
    debit_limit: int | None
    credit_limit: int | None
    closed: bool = False
    dp: int = 0  # debits posted
    cp: int = 0  # credits posted
    dq: int = 0  # debits pending
    cq: int = 0  # credits pending

    @property
    def balance(self) -> Balance:
        return Balance(self.dp, self.cp, self.dq, self.cq)


def broken_bounds(a: ModelAccount) -> set[ResultCode]:
    """The bounds an account's counters break, as the model reads the account rules."""
    codes: set[ResultCode] = set()
    if max(a.dp + a.dq, a.cp + a.cq) > COUNTER_LIMIT:
        codes.add(R.counter_overflow)
    if a.flags & DMNEC and a.dp + a.dq > a.cp:
        codes.add(R.insufficient_balance)
    if a.flags & CMNED and a.cp + a.cq > a.dp:
        codes.add(R.exceeds_debits)
    if a.debit_limit is not None and a.dp + a.dq - a.cp > a.debit_limit:
        codes.add(R.exceeds_limit)
    if a.credit_limit is not None and a.cp + a.cq - a.dp > a.credit_limit:
        codes.add(R.exceeds_limit)
    return codes


@dataclass
class ModelPending:
    owner: str
    legs: tuple[Leg, ...]
    expires_at: int | None
    state: PendingState = PendingState.open


@dataclass(frozen=True)
class Remembered:
    command: Command
    code: ResultCode
    journal_id: int


def same_content(a: Command, b: Command) -> bool:
    return type(a) is type(b) and replace(a, key="") == replace(b, key="")


@dataclass
class Model:
    accounts: dict[int, ModelAccount] = field(default_factory=dict)
    pendings: dict[int, ModelPending] = field(default_factory=dict)
    keys: dict[tuple[str, str], Remembered] = field(default_factory=dict)
    journal_ids: set[int] = field(default_factory=set)

    # -- what a command breaks ----------------------------------------------------------

    def _leg_problems(self, legs: tuple[Leg, ...]) -> set[ResultCode]:
        codes: set[ResultCode] = set()
        if len(legs) < 2:
            codes.add(R.journal_needs_two_legs)
        if any(leg.amount == 0 for leg in legs):
            codes.add(R.amount_must_be_positive)
        if any(abs(leg.amount) > LEG_LIMIT for leg in legs):
            codes.add(R.amount_out_of_range)
        if any(leg.currency not in SUPPORTED for leg in legs):
            codes.add(R.unsupported_currency)
        for currency in {leg.currency for leg in legs}:
            if sum(leg.amount for leg in legs if leg.currency == currency) != 0:
                codes.add(R.journal_must_balance)
        if len({leg.account_id for leg in legs}) != len(legs):
            codes.add(R.accounts_must_be_distinct)
        return codes

    def _account_problems(self, legs: tuple[Leg, ...]) -> set[ResultCode]:
        codes: set[ResultCode] = set()
        for leg in legs:
            account = self.accounts.get(leg.account_id)
            if account is None:
                codes.add(R.account_not_found)
                continue
            if account.currency != leg.currency:
                codes.add(R.currency_mismatch)
            if account.closed:
                codes.add(R.account_closed)
        return codes

    def _pending_problems(self, owner: str, pending_id: int, now: int) -> set[ResultCode]:
        pending = self.pendings.get(pending_id)
        if pending is None or pending.owner != owner:
            return {R.pending_not_found}
        if pending.state is PendingState.posted:
            return {R.pending_already_posted}
        if pending.state is PendingState.voided:
            return {R.pending_already_voided}
        if pending.state is PendingState.expired:
            return {R.pending_expired}
        if pending.expires_at is not None and pending.expires_at <= now:
            return {R.pending_expired}
        return set()

    def _bound_problems(self, changes: list[tuple[int, str, int]]) -> set[ResultCode]:
        """Bounds broken after adding ``(account, counter, amount)`` changes to copies."""
        trial = {account_id: replace(self.accounts[account_id]) for account_id, _c, _a in changes}
        for account_id, counter, amount in changes:
            setattr(trial[account_id], counter, getattr(trial[account_id], counter) + amount)
        codes: set[ResultCode] = set()
        for account in trial.values():
            codes |= broken_bounds(account)
        return codes

    @staticmethod
    def _posting(legs: tuple[Leg, ...], pending: bool, sign: int = 1) -> list[tuple[int, str, int]]:
        changes = []
        for leg in legs:
            debit = leg.amount > 0
            counter = ("dq" if debit else "cq") if pending else ("dp" if debit else "cp")
            changes.append((leg.account_id, counter, sign * abs(leg.amount)))
        return changes

    def _effect(self, command: Command) -> list[tuple[int, str, int]]:
        """The counter changes ``command`` makes if it is accepted."""
        if isinstance(command, NewJournal):
            return self._posting(command.legs, command.pending)
        pending = self.pendings[command.pending_id]
        release = self._posting(pending.legs, pending=True, sign=-1)
        if isinstance(command, VoidPending):
            return release
        posted = pending.legs if command.legs is None else command.legs
        return release + self._posting(posted, pending=False)

    def problems(self, command: Command, now: int) -> set[ResultCode]:
        """Every rule ``command`` breaks in the model's current state."""
        codes: set[ResultCode] = set()
        if isinstance(command, NewJournal):
            codes |= self._leg_problems(command.legs)
            if command.expires_at is not None:
                if not command.pending:
                    codes.add(R.expiry_requires_pending)
                if command.expires_at <= now:
                    codes.add(R.expiry_must_be_in_future)
            codes |= self._account_problems(command.legs)
        else:
            codes |= self._pending_problems(command.owner, command.pending_id, now)
            pending = self.pendings.get(command.pending_id)
            if isinstance(command, PostPending):
                if command.legs is not None:
                    codes |= self._leg_problems(command.legs)
                    codes |= self._account_problems(command.legs)
                    if pending is not None:
                        codes |= _match_problems(pending.legs, command.legs)
                elif pending is not None:
                    codes |= self._account_problems(pending.legs)
        if not codes:
            codes = self._bound_problems(self._effect(command))
        return codes

    # -- checking the engine's answer and following it -----------------------------------

    def follow(self, command: Command, outcome: Outcome, now: int) -> None:
        """Check ``outcome`` against the model, then apply ``command`` to the model."""
        key = (command.owner, command.key)
        known = self.keys.get(key)
        if known is not None:
            if same_content(known.command, command):
                expected = Outcome(known.code, known.journal_id, replayed=True)
            else:
                expected = Outcome(R.duplicate_with_different_content, None)
            event(f"retry: {expected.code.name}{' (replayed)' if expected.replayed else ''}")
            assert outcome == expected, (command, outcome, expected)
            return
        codes = self.problems(command, now)
        kind = type(command).__name__
        if isinstance(command, NewJournal) and command.pending:
            kind = "hold"
        event(f"{kind}: {outcome.code.name}")
        assert not outcome.replayed, (command, outcome)
        assert outcome.journal_id is not None, (command, outcome)
        assert outcome.journal_id not in self.journal_ids, (command, outcome)
        self.journal_ids.add(outcome.journal_id)
        if codes:
            assert outcome.code in codes, (command, outcome, codes)
        else:
            assert outcome.code is R.ok, (command, outcome)
            self._apply(command, outcome.journal_id)
        self.keys[key] = Remembered(command, outcome.code, outcome.journal_id)

    def _apply(self, command: Command, journal_id: int) -> None:
        for account_id, counter, amount in self._effect(command):
            account = self.accounts[account_id]
            setattr(account, counter, getattr(account, counter) + amount)
        if isinstance(command, NewJournal):
            if command.pending:
                self.pendings[journal_id] = ModelPending(
                    command.owner, command.legs, command.expires_at
                )
        elif isinstance(command, PostPending):
            self.pendings[command.pending_id].state = PendingState.posted
        else:
            self.pendings[command.pending_id].state = PendingState.voided

    def expire(self, now: int) -> int:
        count = 0
        for pending in self.pendings.values():
            due = pending.expires_at is not None and pending.expires_at <= now
            if pending.state is PendingState.open and due:
                for account_id, counter, amount in self._posting(pending.legs, True, -1):
                    account = self.accounts[account_id]
                    setattr(account, counter, getattr(account, counter) + amount)
                pending.state = PendingState.expired
                count += 1
        return count


def _match_problems(held: tuple[Leg, ...], posted: tuple[Leg, ...]) -> set[ResultCode]:
    if len(held) != len(posted):
        return {R.post_must_match_pending}
    codes: set[ResultCode] = set()
    for hold, post in zip(held, posted, strict=True):
        if (
            hold.account_id != post.account_id
            or hold.currency != post.currency
            or (hold.amount > 0) != (post.amount > 0)
        ):
            codes.add(R.post_must_match_pending)
        elif abs(post.amount) > abs(hold.amount):
            codes.add(R.post_exceeds_pending)
    return codes


# -- the state machine -----------------------------------------------------------------------

SOURCE_CURRENCIES = ("USD", "EUR", "JPY")
FLAGS = st.sampled_from([AccountFlags.NONE, DMNEC, DMNEC, CMNED, DMNEC | CMNED])
# Amounts and limits are often multiples of 50, so that balances land exactly on a bound.
LIMIT = st.one_of(st.none(), st.none(), st.integers(0, 60).map(lambda n: n * 50))
AMOUNT = st.one_of(st.integers(1, 500), st.integers(1, 10).map(lambda n: n * 50))
CURRENCY = st.sampled_from(["USD", "USD", "EUR", "JPY"])
NEW_JOURNAL_VARIANTS = [
    *(["fine"] * 10),
    "unbalanced",
    "zero",
    "unknown_account",
    "other_currency",
    "one_leg",
    "same_account",
    "unsupported_currency",
    "too_large",
]
POST_VARIANTS = [*(["full"] * 3), *(["partial"] * 3), "exceeding", "reversed", "foreign"]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, ledger: Ledger, clock: ManualClock) -> None:
        super().__init__()
        self.ledger = ledger
        self.clock = clock
        self.owner = "o" + uuid.uuid4().hex[:12]
        self.stranger = self.owner + "-x"
        self.model = Model()
        self.serial = 0
        self.sources: dict[str, int] = {}

    # -- helpers --------------------------------------------------------------------------

    def _key(self) -> str:
        self.serial += 1
        return f"k{self.serial}"

    def _submit(self, commands: list[Command]) -> None:
        now = self.clock.now_us()
        outcomes = self.ledger.execute(commands)
        assert len(outcomes) == len(commands)
        for command, outcome in zip(commands, outcomes, strict=True):
            self.model.follow(command, outcome, now)

    def _create(self, specs: list[AccountSpec]) -> list[int]:
        ids = self.ledger.create_accounts(specs)
        assert len(set(ids)) == len(specs)
        for account_id, spec in zip(ids, specs, strict=True):
            assert account_id not in self.model.accounts
            self.model.accounts[account_id] = ModelAccount(
                spec.currency, spec.flags, spec.debit_limit, spec.credit_limit
            )
        return ids

    def _draw_spec(self, data: st.DataObject, currency: str | None = None) -> AccountSpec:
        return AccountSpec(
            currency or data.draw(CURRENCY),
            data.draw(FLAGS),
            debit_limit=data.draw(LIMIT),
            credit_limit=data.draw(LIMIT),
        )

    def _draw_balanced_legs(self, data: st.DataObject) -> tuple[Leg, ...]:
        by_currency: dict[str, list[int]] = {}
        for account_id, account in self.model.accounts.items():
            by_currency.setdefault(account.currency, []).append(account_id)
        currency = data.draw(
            st.sampled_from(sorted(c for c, i in by_currency.items() if len(i) > 1))
        )
        chosen = data.draw(st.permutations(by_currency[currency]))
        count = data.draw(st.integers(2, min(4, len(chosen))))
        if data.draw(st.booleans()):
            # Money comes in: the currency's unbounded source is debited, the others credited.
            source = self.sources[currency]
            others = [a for a in chosen if a != source][: count - 1]
            amounts = [-data.draw(AMOUNT) for _ in others]
            return (
                Leg(source, -sum(amounts), currency),
                *(Leg(a, amount, currency) for a, amount in zip(others, amounts, strict=True)),
            )
        amounts = [
            data.draw(AMOUNT) * data.draw(st.sampled_from([1, -1])) for _ in range(count - 1)
        ]
        if sum(amounts) == 0:
            amounts[0] += 1 if amounts[0] > 0 else -1
        amounts.append(-sum(amounts))
        return tuple(Leg(a, amount, currency) for a, amount in zip(chosen, amounts, strict=False))

    def _draw_new_journal(
        self, data: st.DataObject, *, pending: bool, mostly_fine: bool = False
    ) -> NewJournal:
        legs = self._draw_balanced_legs(data)
        variant = "fine"
        if not mostly_fine or data.draw(st.integers(0, 4)) == 0:
            variant = data.draw(st.sampled_from(NEW_JOURNAL_VARIANTS))
        if variant == "unbalanced":
            first = legs[0]
            legs = (
                replace(first, amount=first.amount + (1 if first.amount > 0 else -1)),
                *legs[1:],
            )
        elif variant == "zero":
            spare = [
                a for a, acc in self.model.accounts.items() if acc.currency == legs[0].currency
            ]
            extra = data.draw(st.sampled_from(spare))
            legs = (*legs, Leg(extra, 0, legs[0].currency))
        elif variant == "unknown_account":
            legs = (replace(legs[0], account_id=UNKNOWN_ACCOUNT + self.serial), *legs[1:])
        elif variant == "other_currency":
            other = "EUR" if legs[0].currency != "EUR" else "USD"
            legs = tuple(replace(leg, currency=other) for leg in legs)
        elif variant == "one_leg":
            legs = legs[:1]
        elif variant == "same_account":
            legs = (legs[0], replace(legs[1], account_id=legs[0].account_id), *legs[2:])
        elif variant == "unsupported_currency":
            legs = tuple(replace(leg, currency="XXX") for leg in legs)
        elif variant == "too_large":
            big = LEG_LIMIT + 1
            legs = (replace(legs[0], amount=big), replace(legs[1], amount=-big))
        expires_at: int | None = None
        timing = data.draw(st.sampled_from(["none", "future", "future", "past"]))
        now = self.clock.now_us()
        if timing == "future" and (pending or data.draw(st.integers(0, 4)) == 0):
            expires_at = now + data.draw(st.integers(1, MAX_EXPIRY_S)) * MICROS_PER_SECOND
        elif timing == "past" and data.draw(st.integers(0, 3)) == 0:
            expires_at = now - data.draw(st.integers(0, 10)) * MICROS_PER_SECOND
        return NewJournal(
            self.owner,
            self._key(),
            legs,
            pending=pending,
            expires_at=expires_at,
            code=data.draw(st.integers(0, 3)),
            memo=data.draw(st.sampled_from(["", "", "order #1", "refund"])),
        )

    def _draw_pending_id(self, data: st.DataObject) -> int:
        pendings = sorted(self.model.pendings)
        open_ones = [i for i in pendings if self.model.pendings[i].state is PendingState.open]
        others = sorted(self.model.journal_ids - set(pendings))[:5]
        choice = data.draw(st.integers(0, 9))
        if choice < 6 and open_ones:
            return data.draw(st.sampled_from(open_ones))
        if choice < 8 and pendings:
            return data.draw(st.sampled_from(pendings))
        if choice < 9 and others:
            return data.draw(st.sampled_from(others))
        return UNKNOWN_JOURNAL

    def _draw_post(self, data: st.DataObject) -> PostPending:
        pending_id = self._draw_pending_id(data)
        pending = self.model.pendings.get(pending_id)
        variant = data.draw(st.sampled_from(POST_VARIANTS))
        owner = self.stranger if variant == "foreign" else self.owner
        legs: tuple[Leg, ...] | None = None
        if pending is not None and variant in {"partial", "exceeding", "reversed"}:
            held = list(pending.legs)
            debits = [i for i, leg in enumerate(held) if leg.amount > 0]
            credits = [i for i, leg in enumerate(held) if leg.amount < 0]
            i = data.draw(st.sampled_from(debits))
            j = data.draw(st.sampled_from(credits))
            room = min(abs(held[i].amount), abs(held[j].amount)) - 1
            if variant == "reversed":
                legs = tuple(reversed(held))
            elif variant == "exceeding":
                extra = data.draw(st.integers(1, 50))
                held[i] = replace(held[i], amount=held[i].amount + extra)
                held[j] = replace(held[j], amount=held[j].amount - extra)
                legs = tuple(held)
            elif room >= 1:
                cut = data.draw(st.integers(1, room))
                held[i] = replace(held[i], amount=held[i].amount - cut)
                held[j] = replace(held[j], amount=held[j].amount + cut)
                legs = tuple(held)
        return PostPending(
            owner, self._key(), pending_id, legs, memo=data.draw(st.sampled_from(["", "ship"]))
        )

    def _draw_void(self, data: st.DataObject) -> VoidPending:
        foreign = data.draw(st.integers(0, 5)) == 0
        owner = self.stranger if foreign else self.owner
        return VoidPending(owner, self._key(), self._draw_pending_id(data))

    def _draw_retry(self, data: st.DataObject, *, same: bool) -> Command:
        remembered = sorted(self.model.keys)
        key = data.draw(st.sampled_from(remembered))
        command = self.model.keys[key].command
        if same:
            return command
        change = data.draw(st.sampled_from(["memo", "code"]))
        if change == "memo":
            return replace(command, memo=command.memo + "*")
        return replace(command, code=command.code + 1)

    def _draw_any(self, data: st.DataObject) -> Command:
        kinds = ["journal", "journal", "journal", "pending"]
        if self.model.pendings:
            kinds += ["post", "void"]
        if self.model.keys:
            kinds += ["retry", "retry_different"]
        kind = data.draw(st.sampled_from(kinds))
        if kind == "journal":
            return self._draw_new_journal(data, pending=False)
        if kind == "pending":
            return self._draw_new_journal(data, pending=True)
        if kind == "post":
            return self._draw_post(data)
        if kind == "void":
            return self._draw_void(data)
        return self._draw_retry(data, same=kind == "retry")

    # -- rules ----------------------------------------------------------------------------

    @initialize(data=st.data())
    def open_accounts(self, data: st.DataObject) -> None:
        # An unbounded source of funds per currency, then a few random accounts.
        ids = self._create([AccountSpec(currency) for currency in SOURCE_CURRENCIES])
        self.sources = dict(zip(SOURCE_CURRENCIES, ids, strict=True))
        self._create([self._draw_spec(data, "USD") for _ in range(2)])
        self._create([self._draw_spec(data) for _ in range(data.draw(st.integers(1, 3)))])

    @rule(data=st.data(), count=st.integers(1, 2))
    def create_accounts(self, data: st.DataObject, count: int) -> None:
        self._create([self._draw_spec(data) for _ in range(count)])

    @rule(data=st.data())
    def post_journal(self, data: st.DataObject) -> None:
        self._submit([self._draw_new_journal(data, pending=False)])

    @rule(data=st.data())
    def hold(self, data: st.DataObject) -> None:
        self._submit([self._draw_new_journal(data, pending=True, mostly_fine=True)])

    @precondition(lambda self: bool(self.model.pendings))
    @rule(data=st.data())
    def post_pending(self, data: st.DataObject) -> None:
        self._submit([self._draw_post(data)])

    @precondition(lambda self: bool(self.model.pendings))
    @rule(data=st.data())
    def void_pending(self, data: st.DataObject) -> None:
        self._submit([self._draw_void(data)])

    @precondition(lambda self: bool(self.model.pendings))
    @rule(data=st.data())
    def post_or_void_in_a_batch(self, data: st.DataObject) -> None:
        # Several resolutions of (mostly) open holds at once: the second one for a hold finds
        # it resolved by the first.
        commands: list[Command] = []
        for _ in range(data.draw(st.integers(2, 4))):
            draw = self._draw_post if data.draw(st.integers(0, 2)) else self._draw_void
            commands.append(draw(data))
        self._submit(commands)

    @precondition(lambda self: bool(self.model.keys))
    @rule(data=st.data())
    def retry_same_content(self, data: st.DataObject) -> None:
        self._submit([self._draw_retry(data, same=True)])

    @precondition(lambda self: bool(self.model.keys))
    @rule(data=st.data())
    def retry_other_content(self, data: st.DataObject) -> None:
        self._submit([self._draw_retry(data, same=False)])

    @rule(data=st.data(), size=st.integers(2, 6))
    def batch(self, data: st.DataObject, size: int) -> None:
        commands: list[Command] = []
        for _ in range(size):
            if commands and data.draw(st.integers(0, 4)) == 0:
                # the same key twice in one batch, with the same or with other content
                earlier = data.draw(st.sampled_from(commands))
                if data.draw(st.booleans()):
                    earlier = replace(earlier, memo=earlier.memo + "!")
                commands.append(earlier)
            else:
                commands.append(self._draw_any(data))
        self._submit(commands)

    @rule(seconds=st.integers(0, MAX_EXPIRY_S))
    def advance_clock_and_expire(self, seconds: int) -> None:
        self.clock.advance(seconds * MICROS_PER_SECOND)
        expired = self.ledger.expire_due()
        event(f"expired {min(expired, 2)}{'+' if expired > 2 else ''}")
        assert expired == self.model.expire(self.clock.now_us())

    @precondition(lambda self: not any(a.closed for a in self.model.accounts.values()))
    @rule(data=st.data())
    def close_account(self, data: st.DataObject) -> None:
        account_id = data.draw(st.sampled_from(sorted(self.model.accounts)))
        assert self.ledger.close_account(account_id)
        self.model.accounts[account_id].closed = True

    # -- invariants -----------------------------------------------------------------------

    def _stored(self) -> dict[int, Balance]:
        stored: dict[int, Balance] = {}
        for account_id in self.model.accounts:
            account = self.ledger.account(account_id)
            assert account is not None, account_id
            assert account.closed == self.model.accounts[account_id].closed
            stored[account_id] = account.balance
        return stored

    @invariant()
    def counters_equal_the_model_and_bounds_hold(self) -> None:
        stored = self._stored()
        totals: dict[str, tuple[int, int]] = {}
        for account_id, balance in stored.items():
            model = self.model.accounts[account_id]
            assert balance == model.balance, (account_id, balance, model)
            check = replace(
                model,
                dp=balance.debits_posted,
                cp=balance.credits_posted,
                dq=balance.debits_pending,
                cq=balance.credits_pending,
            )
            assert broken_bounds(check) == set(), (account_id, balance, model)
            assert min(check.dp, check.cp, check.dq, check.cq) >= 0, (account_id, balance)
            posted, pending = totals.get(model.currency, (0, 0))
            totals[model.currency] = (
                posted + check.dp - check.cp,
                pending + check.dq - check.cq,
            )
        assert all(total == (0, 0) for total in totals.values()), totals

    @invariant()
    def the_audit_passes(self) -> None:
        report = self.ledger.audit()
        assert report.ok, report
        assert report.conserved

    def teardown(self) -> None:
        # Expire what this example left behind, so no later example finds it due.
        self.clock.advance(SWEEP_S * MICROS_PER_SECOND)
        assert self.ledger.expire_due() == self.model.expire(self.clock.now_us())


def test_ledger_against_the_model(database_url: str) -> None:
    database = open_database(database_url)
    try:
        clock = ManualClock()
        ledger = Ledger(database, clock)
        postgresql = database.is_postgresql

        class OnThisStore(LedgerMachine):
            def __init__(self) -> None:
                super().__init__(ledger, clock)

        run_state_machine_as_test(
            OnThisStore,
            settings=machine_settings(20 if postgresql else 40),
        )
        assert ledger.audit().ok
    finally:
        database.dispose()
