"""The ledger engine over a real store: worked examples on SQLite and on PostgreSQL.

Every test runs once per store (the ``database_url`` fixture) on a fresh database, and the
fixture checks after each test that the audit, which re-derives every counter from the journal,
finds nothing wrong. Journal ids are compared with each other, never with fixed numbers: they
come from a sequence on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import text

from penny.clock import MICROS_PER_DAY, MICROS_PER_SECOND, ManualClock, SystemClock
from penny.engine.group import GroupCommitter
from penny.engine.ledger import Ledger
from penny.ledger.audit import CounterMismatch, UnbalancedJournal
from penny.ledger.model import (
    AccountFlags,
    AccountSpec,
    Balance,
    Command,
    JournalKind,
    Leg,
    NewJournal,
    Outcome,
    PendingState,
    PostPending,
    VoidPending,
)
from penny.ledger.results import ResultCode
from penny.storage.database import Database, open_database

OWNER = "caller-1"
PREPAID = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
POSTPAID = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS


@dataclass
class Env:
    database: Database
    ledger: Ledger
    clock: ManualClock
    bank: int
    buyer: int
    merchant: int
    fees: int
    credit_line: int
    eur_bank: int
    eur_shop: int
    corrupted: bool = False

    def journal(
        self,
        key: str,
        *pairs: tuple[int, int],
        owner: str = OWNER,
        currency: str = "USD",
        pending: bool = False,
        expires_at: int | None = None,
        memo: str = "",
        code: int = 0,
    ) -> NewJournal:
        return NewJournal(
            owner,
            key,
            tuple(Leg(account_id, amount, currency) for account_id, amount in pairs),
            pending=pending,
            expires_at=expires_at,
            memo=memo,
            code=code,
        )

    def run(self, *commands: Command) -> list[Outcome]:
        return self.ledger.execute(list(commands))

    def one(self, command: Command) -> Outcome:
        (outcome,) = self.ledger.execute([command])
        return outcome

    def fund(self, amount: int, key: str = "fund", to: int | None = None) -> Outcome:
        target = self.buyer if to is None else to
        outcome = self.one(self.journal(key, (self.bank, amount), (target, -amount)))
        assert outcome.ok, outcome
        return outcome

    def bal(self, account_id: int) -> Balance:
        balance = self.ledger.balance(account_id)
        assert balance is not None, account_id
        return balance


@pytest.fixture
def env(database_url: str) -> Iterator[Env]:
    database = open_database(database_url)
    try:
        clock = ManualClock()
        ledger = Ledger(database, clock)
        ids = ledger.create_accounts(
            [
                AccountSpec("USD"),
                AccountSpec("USD", PREPAID),
                AccountSpec("USD", PREPAID, code=7),
                AccountSpec("USD", PREPAID),
                AccountSpec("USD", POSTPAID, debit_limit=5000),
                AccountSpec("EUR"),
                AccountSpec("EUR", PREPAID),
            ]
        )
        bank, buyer, merchant, fees, credit_line, eur_bank, eur_shop = ids
        environment = Env(
            database, ledger, clock, bank, buyer, merchant, fees, credit_line, eur_bank, eur_shop
        )
        yield environment
        if not environment.corrupted:
            report = ledger.audit()
            assert report.ok, report
            assert report.accounts >= 7
    finally:
        database.dispose()


# -- clocks ----------------------------------------------------------------------------------


def test_manual_clock_moves_only_forward_and_only_when_told() -> None:
    clock = ManualClock()
    assert clock.now_us() == 1_700_000_000_000_000
    assert clock.now_us() == 1_700_000_000_000_000
    assert clock.advance(MICROS_PER_DAY) == 1_700_086_400_000_000
    assert clock.advance(0) == 1_700_086_400_000_000
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)
    clock.set(1_800_000_000_000_000)
    assert clock.now_us() == 1_800_000_000_000_000
    with pytest.raises(ValueError, match="only moves forward"):
        clock.set(1_799_999_999_999_999)
    assert ManualClock(5).now_us() == 5


def test_system_clock_is_in_microseconds() -> None:
    before = time.time_ns() // 1_000
    now = SystemClock().now_us()
    after = time.time_ns() // 1_000
    assert before <= now <= after


# -- accounts --------------------------------------------------------------------------------


def test_created_accounts_read_back(env: Env) -> None:
    assert len({env.bank, env.buyer, env.merchant, env.fees, env.credit_line}) == 5
    merchant = env.ledger.account(env.merchant)
    assert merchant is not None
    assert (merchant.currency, merchant.flags, merchant.code, merchant.closed) == (
        "USD",
        PREPAID,
        7,
        False,
    )
    line = env.ledger.account(env.credit_line)
    assert line is not None
    assert (line.flags, line.debit_limit, line.credit_limit) == (POSTPAID, 5000, None)
    assert env.bal(env.buyer) == Balance(0, 0, 0, 0)
    assert env.ledger.balance(10**9) is None
    assert env.ledger.account(10**9) is None
    assert env.ledger.create_accounts([]) == []


# -- worked examples -------------------------------------------------------------------------


def test_prepaid_funding_pay_with_fee_and_overspend(env: Env) -> None:
    funded = env.fund(1000)
    pay = env.one(
        env.journal("pay-1", (env.buyer, 100), (env.merchant, -95), (env.fees, -5), memo="#1")
    )
    assert pay.ok
    assert pay.journal_id != funded.journal_id
    assert env.bal(env.bank) == Balance(1000, 0, 0, 0)
    assert env.bal(env.buyer) == Balance(100, 1000, 0, 0)
    assert env.bal(env.buyer).available_credit == 900
    assert env.bal(env.merchant) == Balance(0, 95, 0, 0)
    assert env.bal(env.fees) == Balance(0, 5, 0, 0)

    over = env.one(env.journal("pay-2", (env.buyer, 901), (env.merchant, -901)))
    assert over.code is ResultCode.insufficient_balance
    assert over.journal_id is not None
    assert env.bal(env.buyer) == Balance(100, 1000, 0, 0)
    assert env.bal(env.merchant) == Balance(0, 95, 0, 0)

    row = env.ledger.journal(OWNER, "pay-1")
    assert row is not None
    assert row.id == pay.journal_id
    assert (row.owner, row.key, row.result, row.kind) == (OWNER, "pay-1", 0, JournalKind.posted)
    assert row.legs == (
        Leg(env.buyer, 100, "USD"),
        Leg(env.merchant, -95, "USD"),
        Leg(env.fees, -5, "USD"),
    )
    assert row.memo == "#1"
    assert row.created_at == env.clock.now_us()
    assert row.pending_state is PendingState.none

    refused = env.ledger.journal(OWNER, "pay-2")
    assert refused is not None
    assert (refused.id, refused.result, refused.legs) == (over.journal_id, 60, ())
    assert env.ledger.journal(OWNER, "nope") is None
    assert env.ledger.journal("caller-2", "pay-1") is None
    assert env.ledger.count_journals() == 3


def test_postpaid_up_to_the_limit_then_settled(env: Env) -> None:
    line, merchant, bank = env.credit_line, env.merchant, env.bank
    outcomes = env.run(
        env.journal("c1", (line, 3000), (merchant, -3000)),
        env.journal("c2", (line, 2000), (merchant, -2000)),
        env.journal("c3", (line, 1), (merchant, -1)),
        env.journal("s1", (bank, 5001), (line, -5001)),
        env.journal("s2", (bank, 5000), (line, -5000)),
    )
    assert [o.code for o in outcomes] == [
        ResultCode.ok,
        ResultCode.ok,
        ResultCode.exceeds_limit,
        ResultCode.exceeds_debits,
        ResultCode.ok,
    ]
    assert env.bal(line) == Balance(5000, 5000, 0, 0)
    assert env.bal(merchant) == Balance(0, 5000, 0, 0)
    assert env.bal(bank) == Balance(5000, 0, 0, 0)


def test_a_command_sees_the_effect_of_the_one_before_it_in_the_batch(env: Env) -> None:
    buyer, merchant = env.buyer, env.merchant
    outcomes = env.run(
        env.journal("fund", (env.bank, 500), (buyer, -500)),
        env.journal("spend", (buyer, 500), (merchant, -500)),
    )
    assert [o.code for o in outcomes] == [ResultCode.ok, ResultCode.ok]
    assert env.bal(buyer) == Balance(500, 500, 0, 0)
    # The other way round, the spend comes first and finds nothing.
    outcomes = env.run(
        env.journal("spend-2", (buyer, 300), (merchant, -300)),
        env.journal("fund-2", (env.bank, 300), (buyer, -300)),
    )
    assert [o.code for o in outcomes] == [ResultCode.insufficient_balance, ResultCode.ok]
    assert env.bal(buyer) == Balance(500, 800, 0, 0)
    assert env.bal(merchant) == Balance(0, 500, 0, 0)


def test_a_refused_command_leaves_its_neighbours_alone(env: Env) -> None:
    env.fund(1000)
    outcomes = env.run(
        env.journal("a", (env.buyer, 400), (env.merchant, -400)),
        env.journal("b", (env.buyer, 601), (env.merchant, -601)),
        env.journal("c", (env.buyer, 600), (env.merchant, -600)),
    )
    assert [o.code for o in outcomes] == [
        ResultCode.ok,
        ResultCode.insufficient_balance,
        ResultCode.ok,
    ]
    assert len({o.journal_id for o in outcomes}) == 3
    assert env.bal(env.buyer) == Balance(1000, 1000, 0, 0)
    assert env.bal(env.merchant) == Balance(0, 1000, 0, 0)


def test_every_kind_of_refusal_in_one_batch(env: Env) -> None:
    env.fund(100)
    env.ledger.close_account(env.fees)
    b, m = env.buyer, env.merchant
    outcomes = env.run(
        env.journal("ok-1", (b, 10), (m, -10)),
        env.journal("one-leg", (b, 10)),
        env.journal("zero", (b, 10), (m, -10), (env.bank, 0)),
        env.journal("unbalanced", (b, 10), (m, -9)),
        env.journal("same", (b, 10), (b, -10)),
        env.journal("unknown", (b, 10), (10**9, -10)),
        env.journal("currency", (b, 10), (env.eur_shop, -10)),
        env.journal("closed", (b, 10), (env.fees, -10)),
        env.journal("too-much", (b, 91), (m, -91)),
        env.journal("ok-2", (b, 90), (m, -90)),
    )
    assert [o.code for o in outcomes] == [
        ResultCode.ok,
        ResultCode.journal_needs_two_legs,
        ResultCode.amount_must_be_positive,
        ResultCode.journal_must_balance,
        ResultCode.accounts_must_be_distinct,
        ResultCode.account_not_found,
        ResultCode.currency_mismatch,
        ResultCode.account_closed,
        ResultCode.insufficient_balance,
        ResultCode.ok,
    ]
    assert env.bal(b) == Balance(100, 100, 0, 0)
    assert env.bal(m) == Balance(0, 100, 0, 0)
    assert env.bal(env.fees) == Balance(0, 0, 0, 0)
    assert env.ledger.count_journals() == 11


def test_multi_currency_journal(env: Env) -> None:
    both = NewJournal(
        OWNER,
        "fx",
        (
            Leg(env.bank, 1000, "USD"),
            Leg(env.buyer, -1000, "USD"),
            Leg(env.eur_bank, 920, "EUR"),
            Leg(env.eur_shop, -920, "EUR"),
        ),
    )
    cross = NewJournal(OWNER, "cross", (Leg(env.bank, 50, "USD"), Leg(env.eur_shop, -50, "EUR")))
    assert [o.code for o in env.run(both, cross)] == [
        ResultCode.ok,
        ResultCode.journal_must_balance,
    ]
    assert env.bal(env.buyer) == Balance(0, 1000, 0, 0)
    assert env.bal(env.eur_bank) == Balance(920, 0, 0, 0)
    assert env.bal(env.eur_shop) == Balance(0, 920, 0, 0)
    report = env.ledger.audit()
    assert report.totals == {"USD": (0, 0), "EUR": (0, 0)}


# -- idempotency -----------------------------------------------------------------------------


def test_retry_with_the_same_key(env: Env) -> None:
    first = env.fund(1000)
    again = env.one(env.journal("fund", (env.bank, 1000), (env.buyer, -1000)))
    assert again == Outcome(ResultCode.ok, first.journal_id, replayed=True)
    different = env.one(env.journal("fund", (env.bank, 2000), (env.buyer, -2000)))
    assert different == Outcome(ResultCode.duplicate_with_different_content, None)
    assert env.bal(env.buyer) == Balance(0, 1000, 0, 0)
    assert env.ledger.count_journals() == 1


def test_retries_in_the_same_batch(env: Env) -> None:
    fund = env.journal("fund", (env.bank, 700), (env.buyer, -700))
    other = env.journal("fund", (env.bank, 1), (env.buyer, -1))
    outcomes = env.run(fund, fund, other, fund)
    assert outcomes[0].ok
    assert not outcomes[0].replayed
    jid = outcomes[0].journal_id
    assert outcomes[1:] == [
        Outcome(ResultCode.ok, jid, replayed=True),
        Outcome(ResultCode.duplicate_with_different_content, None),
        Outcome(ResultCode.ok, jid, replayed=True),
    ]
    assert env.bal(env.buyer) == Balance(0, 700, 0, 0)


def test_a_remembered_failure_replays_after_the_state_changed(env: Env) -> None:
    pay = env.journal("pay", (env.buyer, 500), (env.merchant, -500))
    failed = env.one(pay)
    assert failed.code is ResultCode.insufficient_balance
    env.fund(1000)
    assert env.one(pay) == Outcome(ResultCode.insufficient_balance, failed.journal_id, True)
    assert env.bal(env.buyer) == Balance(0, 1000, 0, 0)
    fresh = env.one(replace(pay, key="pay-2"))
    assert fresh.ok
    assert env.bal(env.buyer) == Balance(500, 1000, 0, 0)


def test_the_same_key_for_two_owners(env: Env) -> None:
    mine = env.fund(100, key="k")
    theirs = env.one(env.journal("k", (env.bank, 100), (env.buyer, -100), owner="caller-2"))
    assert theirs.ok
    assert not theirs.replayed
    assert theirs.journal_id != mine.journal_id
    assert env.bal(env.buyer) == Balance(0, 200, 0, 0)


# -- pending journals ------------------------------------------------------------------------


def hold(env: Env, key: str = "hold", expires_in_s: int | None = None) -> int:
    """Fund the buyer $10.00 and hold $3.00 of it for the merchant, with a 10-cent fee."""
    env.fund(1000, key=f"fund-{key}")
    before = [env.bal(a) for a in (env.buyer, env.merchant, env.fees)]
    expires_at = None
    if expires_in_s is not None:
        expires_at = env.clock.now_us() + expires_in_s * MICROS_PER_SECOND
    outcome = env.one(
        env.journal(
            key,
            (env.buyer, 300),
            (env.merchant, -290),
            (env.fees, -10),
            pending=True,
            expires_at=expires_at,
        )
    )
    assert outcome.ok, outcome
    assert outcome.journal_id is not None
    after = [env.bal(a) for a in (env.buyer, env.merchant, env.fees)]
    assert [
        (a.debits_pending - b.debits_pending, a.credits_pending - b.credits_pending)
        for a, b in zip(after, before, strict=True)
    ] == [(300, 0), (0, 290), (0, 10)]
    assert [(a.debits_posted, a.credits_posted) for a in after] == [
        (b.debits_posted, b.credits_posted) for b in before
    ]
    return outcome.journal_id


def test_post_in_full(env: Env) -> None:
    pending_id = hold(env)
    over = env.one(env.journal("x", (env.buyer, 701), (env.merchant, -701)))
    assert over.code is ResultCode.insufficient_balance
    post = env.one(PostPending(OWNER, "post", pending_id))
    assert post.ok
    assert env.bal(env.buyer) == Balance(300, 1000, 0, 0)
    assert env.bal(env.merchant) == Balance(0, 290, 0, 0)
    assert env.bal(env.fees) == Balance(0, 10, 0, 0)
    held = env.ledger.journal(OWNER, "hold")
    assert held is not None
    assert (held.kind, held.pending_state) == (JournalKind.pending, PendingState.posted)
    row = env.ledger.journal(OWNER, "post")
    assert row is not None
    assert (row.kind, row.pending_id, row.result) == (JournalKind.post_pending, pending_id, 0)
    assert row.legs == held.legs
    again = env.one(PostPending(OWNER, "post-again", pending_id))
    assert again.code is ResultCode.pending_already_posted
    void = env.one(VoidPending(OWNER, "void", pending_id))
    assert void.code is ResultCode.pending_already_posted


def test_post_partially_releases_the_rest(env: Env) -> None:
    pending_id = hold(env)
    part = (
        Leg(env.buyer, 120, "USD"),
        Leg(env.merchant, -116, "USD"),
        Leg(env.fees, -4, "USD"),
    )
    exceeding = (
        Leg(env.buyer, 301, "USD"),
        Leg(env.merchant, -291, "USD"),
        Leg(env.fees, -10, "USD"),
    )
    outcomes = env.run(
        PostPending(OWNER, "too-much", pending_id, exceeding),
        PostPending(OWNER, "post", pending_id, part),
    )
    assert [o.code for o in outcomes] == [ResultCode.post_exceeds_pending, ResultCode.ok]
    assert env.bal(env.buyer) == Balance(120, 1000, 0, 0)
    assert env.bal(env.buyer).available_credit == 880
    assert env.bal(env.merchant) == Balance(0, 116, 0, 0)
    assert env.bal(env.fees) == Balance(0, 4, 0, 0)
    row = env.ledger.journal(OWNER, "post")
    assert row is not None
    assert row.legs == part


def test_void(env: Env) -> None:
    pending_id = hold(env)
    void = env.one(VoidPending(OWNER, "void", pending_id))
    assert void.ok
    assert env.bal(env.buyer) == Balance(0, 1000, 0, 0)
    assert env.bal(env.merchant) == Balance(0, 0, 0, 0)
    assert env.bal(env.fees) == Balance(0, 0, 0, 0)
    held = env.ledger.journal(OWNER, "hold")
    assert held is not None
    assert held.pending_state is PendingState.voided
    row = env.ledger.journal(OWNER, "void")
    assert row is not None
    assert (row.kind, row.pending_id, row.legs) == (JournalKind.void_pending, pending_id, ())
    outcomes = env.run(
        PostPending(OWNER, "post", pending_id),
        VoidPending(OWNER, "void-2", pending_id),
        VoidPending(OWNER, "void", pending_id),
        VoidPending("caller-2", "void", pending_id),
    )
    assert outcomes == [
        Outcome(ResultCode.pending_already_voided, outcomes[0].journal_id),
        Outcome(ResultCode.pending_already_voided, outcomes[1].journal_id),
        Outcome(ResultCode.ok, void.journal_id, replayed=True),
        Outcome(ResultCode.pending_not_found, outcomes[3].journal_id),
    ]


def test_hold_and_post_in_one_batch(env: Env) -> None:
    env.fund(1000)
    # The hold's id is not known before the batch runs, so a post in the same batch can only
    # be for an earlier hold; here the hold and a spend of the rest share a batch.
    outcomes = env.run(
        env.journal("hold", (env.buyer, 300), (env.merchant, -300), pending=True),
        env.journal("rest", (env.buyer, 700), (env.merchant, -700)),
        env.journal("one-more", (env.buyer, 1), (env.merchant, -1)),
    )
    assert [o.code for o in outcomes] == [
        ResultCode.ok,
        ResultCode.ok,
        ResultCode.insufficient_balance,
    ]
    pending_id = outcomes[0].journal_id
    assert pending_id is not None
    assert env.one(PostPending(OWNER, "post", pending_id)).ok
    assert env.bal(env.buyer) == Balance(1000, 1000, 0, 0)
    assert env.bal(env.merchant) == Balance(0, 1000, 0, 0)


def test_expire_due(env: Env) -> None:
    pending_id = hold(env, expires_in_s=60)
    lasting = hold(env, key="lasting")  # no expiry: never expires
    assert env.ledger.expire_due() == 0
    env.clock.advance(59 * MICROS_PER_SECOND)
    assert env.ledger.expire_due() == 0
    assert env.bal(env.buyer) == Balance(0, 2000, 600, 0)
    env.clock.advance(1 * MICROS_PER_SECOND)
    # Due but not yet swept: posting is refused as expired, and the hold stays.
    late = env.one(PostPending(OWNER, "late", pending_id))
    assert late.code is ResultCode.pending_expired
    late_row = env.ledger.journal(OWNER, "late")
    assert late_row is not None
    assert late_row.created_at == 1_700_000_060 * MICROS_PER_SECOND
    assert late_row.pending_id == pending_id
    assert env.bal(env.buyer) == Balance(0, 2000, 600, 0)
    assert env.ledger.expire_due() == 1
    assert env.bal(env.buyer) == Balance(0, 2000, 300, 0)
    assert env.bal(env.merchant) == Balance(0, 0, 0, 290)
    assert env.bal(env.fees) == Balance(0, 0, 0, 10)
    row = env.ledger.journal(OWNER, "hold")
    assert row is not None
    assert row.pending_state is PendingState.expired
    assert env.ledger.expire_due() == 0
    later = env.one(VoidPending(OWNER, "later", pending_id))
    assert later.code is ResultCode.pending_expired
    env.clock.advance(10**6 * MICROS_PER_SECOND)
    assert env.ledger.expire_due() == 0
    assert env.one(VoidPending(OWNER, "void-lasting", lasting)).ok
    assert env.bal(env.buyer) == Balance(0, 2000, 0, 0)


def test_expire_due_respects_the_limit(env: Env) -> None:
    env.fund(1000)
    expires_at = env.clock.now_us() + MICROS_PER_SECOND
    outcomes = env.run(
        *(
            env.journal(
                f"h{i}",
                (env.buyer, 100),
                (env.merchant, -100),
                pending=True,
                expires_at=expires_at + i,
            )
            for i in range(5)
        )
    )
    assert all(o.ok for o in outcomes)
    assert env.bal(env.buyer) == Balance(0, 1000, 500, 0)
    env.clock.advance(2 * MICROS_PER_SECOND)
    assert env.ledger.expire_due(limit=2) == 2
    assert env.bal(env.buyer) == Balance(0, 1000, 300, 0)
    assert env.ledger.expire_due() == 3
    assert env.bal(env.buyer) == Balance(0, 1000, 0, 0)
    assert env.bal(env.merchant) == Balance(0, 0, 0, 0)


def test_expiry_must_be_in_the_future_by_the_engine_clock(env: Env) -> None:
    env.fund(100)
    now = env.clock.now_us()
    outcomes = env.run(
        env.journal("a", (env.buyer, 10), (env.merchant, -10), pending=True, expires_at=now),
        env.journal("b", (env.buyer, 10), (env.merchant, -10), pending=True, expires_at=now + 1),
    )
    assert [o.code for o in outcomes] == [ResultCode.expiry_must_be_in_future, ResultCode.ok]
    assert env.bal(env.buyer) == Balance(0, 100, 10, 0)
    env.clock.advance(1)
    assert env.ledger.expire_due() == 1
    assert env.bal(env.buyer) == Balance(0, 100, 0, 0)


# -- closing accounts ------------------------------------------------------------------------


def test_close_account(env: Env) -> None:
    pending_id = hold(env)
    assert env.ledger.close_account(env.merchant)
    assert not env.ledger.close_account(10**9)
    account = env.ledger.account(env.merchant)
    assert account is not None
    assert account.closed
    outcomes = env.run(
        env.journal("in", (env.buyer, 1), (env.merchant, -1)),
        PostPending(OWNER, "post", pending_id),
        VoidPending(OWNER, "void", pending_id),
    )
    assert [o.code for o in outcomes] == [
        ResultCode.account_closed,
        ResultCode.account_closed,
        ResultCode.ok,
    ]
    assert env.bal(env.buyer) == Balance(0, 1000, 0, 0)
    assert env.bal(env.merchant) == Balance(0, 0, 0, 0)


# -- what the store can hold -----------------------------------------------------------------


@pytest.mark.parametrize("field", ["memo", "key", "owner", "code", "expires_at"])
def test_an_unstorable_command_is_refused_without_failing_its_neighbours(
    env: Env, field: str
) -> None:
    # The schema holds owners of up to 64 characters, keys of up to 128, memos of up to 256,
    # 32-bit codes and 64-bit times.
    env.fund(1000)
    bad = env.journal("bad", (env.buyer, 1), (env.merchant, -1))
    if field == "memo":
        bad = replace(bad, memo="m" * 257)
    elif field == "key":
        bad = replace(bad, key="k" * 129)
    elif field == "owner":
        bad = replace(bad, owner="o" * 65)
    elif field == "code":
        bad = replace(bad, code=2**40)
    else:
        bad = replace(bad, pending=True, expires_at=2**63)
    outcomes = env.run(
        env.journal("a", (env.buyer, 10), (env.merchant, -10)),
        bad,
        env.journal("c", (env.buyer, 20), (env.merchant, -20)),
    )
    assert [o.ok for o in outcomes] == [True, False, True]
    assert env.bal(env.buyer) == Balance(30, 1000, 0, 0)
    assert env.bal(env.merchant) == Balance(0, 30, 0, 0)


# -- the audit -------------------------------------------------------------------------------


def test_audit_counts(env: Env) -> None:
    env.fund(1000)
    env.one(env.journal("pay", (env.buyer, 100), (env.merchant, -95), (env.fees, -5)))
    env.one(env.journal("no", (env.buyer, 1000), (env.merchant, -1000)))
    report = env.ledger.audit()
    assert report.ok
    assert (report.accounts, report.journals, report.legs) == (7, 3, 5)
    assert report.totals == {"USD": (0, 0), "EUR": (0, 0)}


def test_audit_finds_a_corrupted_counter(env: Env) -> None:
    env.fund(1000)
    env.one(env.journal("pay", (env.buyer, 100), (env.merchant, -95), (env.fees, -5)))
    assert env.ledger.audit().ok
    env.corrupted = True
    with env.database.write_engine.begin() as conn:
        conn.execute(
            text("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = :id"),
            {"id": env.merchant},
        )
    report = env.ledger.audit()
    assert not report.ok
    assert report.mismatches == [
        CounterMismatch(env.merchant, Balance(0, 96, 0, 0), Balance(0, 95, 0, 0))
    ]
    assert report.totals["USD"] == (-1, 0)
    assert not report.conserved
    assert report.unbalanced == []


def test_audit_finds_an_unbalanced_journal(env: Env) -> None:
    env.fund(1000)
    pay = env.one(env.journal("pay", (env.buyer, 100), (env.merchant, -95), (env.fees, -5)))
    assert env.ledger.audit().ok
    env.corrupted = True
    with env.database.write_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger_legs (journal_id, idx, account_id, amount)"
                " VALUES (:j, 3, :a, 10), (:j, 4, :b, -3)"
            ),
            {"j": pay.journal_id, "a": env.bank, "b": env.merchant},
        )
    report = env.ledger.audit()
    assert not report.ok
    assert report.unbalanced == [UnbalancedJournal(pay.journal_id or 0, "USD", 7)]
    assert {m.account_id for m in report.mismatches} == {env.bank, env.merchant}


# -- group commit ----------------------------------------------------------------------------


def test_group_commit_of_500_concurrent_payments(env: Env) -> None:
    env.fund(60_000)
    merchants = env.ledger.create_accounts([AccountSpec("USD", PREPAID) for _ in range(5)])
    commands = [
        env.journal(
            f"pay-{i}", (env.buyer, 100), (merchants[i % 5], -97), (env.fees, -3), memo=str(i)
        )
        for i in range(500)
    ]

    async def main() -> tuple[list[Outcome], int, int]:
        async with GroupCommitter(env.ledger) as committer:
            outcomes = await asyncio.gather(*(committer.submit(c) for c in commands))
            return list(outcomes), committer.batches, committer.items

    outcomes, batches, items = asyncio.run(main())
    assert all(o.ok for o in outcomes), {o.code for o in outcomes}
    assert not any(o.replayed for o in outcomes)
    assert len({o.journal_id for o in outcomes}) == 500
    assert items == 500
    assert 1 <= batches < 500
    assert env.bal(env.buyer) == Balance(50_000, 60_000, 0, 0)
    assert env.bal(env.buyer).available_credit == 10_000
    assert env.bal(env.fees) == Balance(0, 1_500, 0, 0)
    for merchant in merchants:
        assert env.bal(merchant) == Balance(0, 9_700, 0, 0)
    row = env.ledger.journal(OWNER, "pay-321")
    assert row is not None
    assert row.memo == "321"
    assert row.legs[1] == Leg(merchants[1], -97, "USD")
    assert env.ledger.count_journals() == 501


def test_group_commit_retries_of_one_key_take_effect_once(env: Env) -> None:
    env.fund(1000)
    pay = env.journal("pay", (env.buyer, 250), (env.merchant, -250))
    conflicting = replace(pay, memo="changed")
    others = [env.journal(f"other-{i}", (env.buyer, 1), (env.fees, -1)) for i in range(10)]
    commands: list[Command] = [*([pay] * 20), conflicting, *others]

    async def main() -> list[Outcome]:
        async with GroupCommitter(env.ledger) as committer:
            return await committer.submit_many(commands)

    outcomes = asyncio.run(main())
    retries = outcomes[:20]
    assert len({o.journal_id for o in retries}) == 1
    assert all(o.ok for o in retries)
    assert sum(1 for o in retries if not o.replayed) == 1
    assert outcomes[20] == Outcome(ResultCode.duplicate_with_different_content, None)
    assert all(o.ok and not o.replayed for o in outcomes[21:])
    assert env.bal(env.buyer) == Balance(260, 1000, 0, 0)
    assert env.bal(env.merchant) == Balance(0, 250, 0, 0)
    assert env.bal(env.fees) == Balance(0, 10, 0, 0)
