"""The pure ledger core: :class:`penny.ledger.book.Book` on in-memory accounts, no database.

Worked examples with hand-computed counters. Conventions (see ``penny.ledger.model``): a leg's
positive amount debits its account, a negative one credits it; a prepaid balance is an account
with ``DEBITS_MUST_NOT_EXCEED_CREDITS`` that holds ``credits_posted - debits_posted``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import pytest

from penny.ledger.book import MAX_LEG_AMOUNT, Book
from penny.ledger.fingerprint import FINGERPRINT_SIZE, fingerprint
from penny.ledger.model import (
    Account,
    AccountFlags,
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
from penny.money import MAX_MINOR_UNITS

NOW = 1_700_000_000_000_000
SECOND = 1_000_000
OWNER = "caller-1"

PREPAID = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
POSTPAID = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS

# Account ids used by the worked examples.
BANK = 1  # where money enters from: no bounds
BUYER = 2  # a prepaid instrument
MERCHANT = 3  # a merchant's payable
FEES = 4  # the operator's fee income
CREDIT_LINE = 5  # a postpaid instrument with a $50.00 credit limit
EUR_BANK = 6
EUR_SHOP = 7


def account(
    account_id: int,
    currency: str = "USD",
    flags: AccountFlags = AccountFlags.NONE,
    *,
    debit_limit: int | None = None,
    credit_limit: int | None = None,
    closed: bool = False,
    debits_posted: int = 0,
    credits_posted: int = 0,
) -> Account:
    return Account(
        account_id,
        currency,
        flags,
        debit_limit,
        credit_limit,
        closed,
        debits_posted=debits_posted,
        credits_posted=credits_posted,
    )


def standard_accounts() -> list[Account]:
    return [
        account(BANK),
        account(BUYER, flags=PREPAID),
        account(MERCHANT, flags=PREPAID),
        account(FEES, flags=PREPAID),
        account(CREDIT_LINE, flags=POSTPAID, debit_limit=5000),
        account(EUR_BANK, "EUR"),
        account(EUR_SHOP, "EUR", PREPAID),
    ]


def make_book(accounts: list[Account] | None = None, now: int = NOW) -> Book:
    ids = itertools.count(1001)
    chosen = standard_accounts() if accounts is None else accounts
    return Book(
        accounts={a.id: a for a in chosen},
        pendings={},
        keys={},
        now=now,
        allocate_id=ids.__next__,
    )


def legs(*pairs: tuple[int, int], currency: str = "USD") -> tuple[Leg, ...]:
    return tuple(Leg(account_id, amount, currency) for account_id, amount in pairs)


def journal(
    key: str,
    *pairs: tuple[int, int],
    owner: str = OWNER,
    currency: str = "USD",
    pending: bool = False,
    expires_at: int | None = None,
    code: int = 0,
    memo: str = "",
) -> NewJournal:
    return NewJournal(
        owner,
        key,
        legs(*pairs, currency=currency),
        pending=pending,
        expires_at=expires_at,
        code=code,
        memo=memo,
    )


def fund(book: Book, amount: int, key: str = "fund", to: int = BUYER) -> Outcome:
    """Money comes in from the bank: debit the bank, credit ``to``."""
    outcome = book.apply(journal(key, (BANK, amount), (to, -amount)))
    assert outcome.ok, outcome
    return outcome


def bal(book: Book, account_id: int) -> Balance:
    return book.accounts[account_id].balance


def snapshot(book: Book) -> dict[int, Balance]:
    return {account_id: a.balance for account_id, a in book.accounts.items()}


def assert_refused(book: Book, command: Command, code: ResultCode) -> Outcome:
    """``command`` is refused with ``code``, changes no counter, and the refusal is remembered
    in a journal row without legs."""
    before = snapshot(book)
    changed_before = dict(book.changed_accounts)
    rows_before = len(book.new_journals)
    outcome = book.apply(command)
    assert outcome.code is code, outcome
    assert not outcome.ok
    assert snapshot(book) == before
    assert book.changed_accounts == changed_before
    assert len(book.new_journals) == rows_before + 1
    row = book.new_journals[-1]
    assert row.id == outcome.journal_id
    assert row.result == int(code)
    assert row.legs == ()
    assert row.pending_state is PendingState.none
    assert (row.owner, row.key) == (command.owner, command.key)
    return outcome


# -- worked examples -----------------------------------------------------------------------


def test_prepaid_funding_pay_with_fee_and_overspend() -> None:
    book = make_book()
    first = fund(book, 1000)  # $10.00
    assert first == Outcome(ResultCode.ok, 1001)
    assert bal(book, BANK) == Balance(1000, 0, 0, 0)
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)
    assert bal(book, BUYER).available_credit == 1000

    # Pay $1.00: the buyer pays 100, the merchant gets 95 and the operator 5.
    pay = journal("pay-1", (BUYER, 100), (MERCHANT, -95), (FEES, -5))
    assert book.apply(pay) == Outcome(ResultCode.ok, 1002)
    assert bal(book, BUYER) == Balance(100, 1000, 0, 0)
    assert bal(book, BUYER).available_credit == 900
    assert bal(book, BUYER).net_credit_posted == 900
    assert bal(book, MERCHANT) == Balance(0, 95, 0, 0)
    assert bal(book, MERCHANT).net_credit_posted == 95
    assert bal(book, FEES) == Balance(0, 5, 0, 0)
    assert bal(book, BANK).net_debit_posted == 1000

    # $9.01 is one cent more than is left: refused, nothing changes.
    assert_refused(
        book, journal("pay-2", (BUYER, 901), (MERCHANT, -901)), ResultCode.insufficient_balance
    )
    assert bal(book, BUYER) == Balance(100, 1000, 0, 0)
    assert bal(book, MERCHANT) == Balance(0, 95, 0, 0)

    # Exactly what is left is fine, and leaves nothing.
    assert book.apply(journal("pay-3", (BUYER, 900), (MERCHANT, -900))).ok
    assert bal(book, BUYER) == Balance(1000, 1000, 0, 0)
    assert bal(book, BUYER).available_credit == 0
    assert bal(book, MERCHANT) == Balance(0, 995, 0, 0)
    assert_refused(
        book, journal("pay-4", (BUYER, 1), (MERCHANT, -1)), ResultCode.insufficient_balance
    )

    # What the batch will write: five journal rows (three ok, two refused), changed accounts.
    assert [(r.key, r.result) for r in book.new_journals] == [
        ("fund", 0),
        ("pay-1", 0),
        ("pay-2", 60),
        ("pay-3", 0),
        ("pay-4", 60),
    ]
    assert book.new_journals[1].legs == legs((BUYER, 100), (MERCHANT, -95), (FEES, -5))
    assert book.new_journals[1].kind is JournalKind.posted
    assert book.new_journals[1].created_at == NOW
    assert set(book.changed_accounts) == {BANK, BUYER, MERCHANT, FEES}


def test_postpaid_charged_up_to_the_limit_then_settled() -> None:
    book = make_book()
    # Charge $30.00 and then $20.00 on a $50.00 credit line: exactly at the limit.
    assert book.apply(journal("c1", (CREDIT_LINE, 3000), (MERCHANT, -3000))).ok
    assert book.apply(journal("c2", (CREDIT_LINE, 2000), (MERCHANT, -2000))).ok
    assert bal(book, CREDIT_LINE) == Balance(5000, 0, 0, 0)
    assert bal(book, CREDIT_LINE).net_debit_posted == 5000
    assert bal(book, MERCHANT) == Balance(0, 5000, 0, 0)
    # One more cent is past the limit.
    assert_refused(book, journal("c3", (CREDIT_LINE, 1), (MERCHANT, -1)), ResultCode.exceeds_limit)
    # Settling more than the debt is refused ...
    assert_refused(
        book, journal("s1", (BANK, 5001), (CREDIT_LINE, -5001)), ResultCode.exceeds_debits
    )
    # ... settling part of it frees that much of the line ...
    assert book.apply(journal("s2", (BANK, 1500), (CREDIT_LINE, -1500))).ok
    assert bal(book, CREDIT_LINE) == Balance(5000, 1500, 0, 0)
    assert book.apply(journal("c4", (CREDIT_LINE, 1500), (MERCHANT, -1500))).ok
    assert bal(book, CREDIT_LINE) == Balance(6500, 1500, 0, 0)
    assert_refused(book, journal("c5", (CREDIT_LINE, 1), (MERCHANT, -1)), ResultCode.exceeds_limit)
    # ... and settling all of it exactly is fine.
    assert book.apply(journal("s3", (BANK, 5000), (CREDIT_LINE, -5000))).ok
    assert bal(book, CREDIT_LINE) == Balance(6500, 6500, 0, 0)
    assert_refused(book, journal("s4", (BANK, 1), (CREDIT_LINE, -1)), ResultCode.exceeds_debits)
    assert bal(book, BANK) == Balance(6500, 0, 0, 0)
    assert bal(book, MERCHANT) == Balance(0, 6500, 0, 0)


def test_a_refusal_in_the_middle_leaves_its_neighbours_alone() -> None:
    book = make_book()
    outcomes = [
        book.apply(journal("a", (BANK, 500), (BUYER, -500))),
        book.apply(journal("b", (BUYER, 501), (MERCHANT, -501))),
        book.apply(journal("c", (BUYER, 200), (MERCHANT, -200))),
    ]
    assert [o.code for o in outcomes] == [
        ResultCode.ok,
        ResultCode.insufficient_balance,
        ResultCode.ok,
    ]
    assert [o.journal_id for o in outcomes] == [1001, 1002, 1003]
    assert bal(book, BUYER) == Balance(200, 500, 0, 0)
    assert bal(book, MERCHANT) == Balance(0, 200, 0, 0)


def test_each_command_sees_the_state_the_previous_one_left() -> None:
    book = make_book()
    # Spending before funding fails; funding then spending works.
    assert book.apply(journal("spend-early", (BUYER, 300), (MERCHANT, -300))).code is (
        ResultCode.insufficient_balance
    )
    fund(book, 300)
    assert book.apply(journal("spend", (BUYER, 300), (MERCHANT, -300))).ok
    assert bal(book, BUYER) == Balance(300, 300, 0, 0)


def test_multi_currency_journal_balances_per_currency() -> None:
    book = make_book()
    both = NewJournal(
        OWNER,
        "fx",
        (
            Leg(BANK, 1000, "USD"),
            Leg(BUYER, -1000, "USD"),
            Leg(EUR_BANK, 900, "EUR"),
            Leg(EUR_SHOP, -900, "EUR"),
        ),
    )
    assert book.apply(both).ok
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)
    assert bal(book, EUR_BANK) == Balance(900, 0, 0, 0)
    assert bal(book, EUR_SHOP) == Balance(0, 900, 0, 0)
    # 1000 USD against 1000 EUR is not balanced: each currency must sum to zero on its own.
    cross = NewJournal(OWNER, "cross", (Leg(BANK, 1000, "USD"), Leg(EUR_SHOP, -1000, "EUR")))
    assert_refused(book, cross, ResultCode.journal_must_balance)


def test_limits_at_the_largest_leg_amount() -> None:
    book = make_book()
    assert book.apply(journal("max", (BANK, MAX_LEG_AMOUNT), (MERCHANT, -MAX_LEG_AMOUNT))).ok
    assert bal(book, MERCHANT) == Balance(0, 10**15, 0, 0)
    assert_refused(
        book,
        journal("over", (BANK, MAX_LEG_AMOUNT + 1), (MERCHANT, -MAX_LEG_AMOUNT - 1)),
        ResultCode.amount_out_of_range,
    )


# -- every result code, each on its own ----------------------------------------------------


def _dup(book: Book) -> Outcome:
    fund(book, 1000, key="k")
    return book.apply(journal("k", (BANK, 999), (BUYER, -999)))


def _pending_book(state: PendingState | None = None) -> tuple[Book, int]:
    """A book where the buyer, funded $10.00, holds $3.00 for the merchant (with a fee)."""
    book = make_book()
    fund(book, 1000)
    hold = book.apply(journal("hold", (BUYER, 300), (MERCHANT, -290), (FEES, -10), pending=True))
    assert hold.ok
    assert hold.journal_id is not None
    if state is PendingState.posted:
        assert book.apply(PostPending(OWNER, "post-first", hold.journal_id)).ok
    elif state is PendingState.voided:
        assert book.apply(VoidPending(OWNER, "void-first", hold.journal_id)).ok
    return book, hold.journal_id


def _expiring_book() -> tuple[Book, int]:
    book = make_book()
    fund(book, 1000)
    hold = book.apply(
        journal("hold", (BUYER, 300), (MERCHANT, -300), pending=True, expires_at=NOW + SECOND)
    )
    assert hold.ok
    assert hold.journal_id is not None
    return book, hold.journal_id


def case_duplicate_with_different_content() -> tuple[Book, Command]:
    book = make_book()
    fund(book, 1000, key="k")
    return book, journal("k", (BANK, 999), (BUYER, -999))


def case_key_invalid() -> tuple[Book, Command]:
    return make_book(), journal("k" * 129, (BANK, 100), (BUYER, -100))


def case_memo_too_long() -> tuple[Book, Command]:
    command = journal("j", (BANK, 100), (BUYER, -100))
    return make_book(), NewJournal(command.owner, command.key, command.legs, memo="m" * 257)


def case_code_out_of_range() -> tuple[Book, Command]:
    command = journal("j", (BANK, 100), (BUYER, -100))
    return make_book(), NewJournal(command.owner, command.key, command.legs, code=2**31)


def case_expiry_out_of_range() -> tuple[Book, Command]:
    legs = journal("j", (BANK, 100), (BUYER, -100)).legs
    return make_book(), NewJournal(OWNER, "j", legs, pending=True, expires_at=2**63)


def case_journal_needs_two_legs() -> tuple[Book, Command]:
    return make_book(), journal("j", (BANK, 100))


def case_amount_must_be_positive() -> tuple[Book, Command]:
    return make_book(), journal("j", (BANK, 100), (BUYER, -100), (MERCHANT, 0))


def case_amount_out_of_range() -> tuple[Book, Command]:
    big = MAX_LEG_AMOUNT + 1
    return make_book(), journal("j", (BANK, big), (BUYER, -big))


def case_unsupported_currency() -> tuple[Book, Command]:
    return make_book(), journal("j", (BANK, 100), (BUYER, -100), currency="XXX")


def case_journal_must_balance() -> tuple[Book, Command]:
    return make_book(), journal("j", (BANK, 100), (BUYER, -99))


def case_accounts_must_be_distinct() -> tuple[Book, Command]:
    return make_book(), journal("j", (BANK, 100), (BANK, -100))


def case_expiry_requires_pending() -> tuple[Book, Command]:
    return make_book(), journal("j", (BANK, 100), (BUYER, -100), expires_at=NOW + SECOND)


def case_expiry_must_be_in_future() -> tuple[Book, Command]:
    # "Now" itself is not in the future.
    return make_book(), journal("j", (BANK, 100), (BUYER, -100), pending=True, expires_at=NOW)


def case_account_not_found() -> tuple[Book, Command]:
    return make_book(), journal("j", (BANK, 100), (99, -100))


def case_currency_mismatch() -> tuple[Book, Command]:
    return make_book(), journal("j", (BANK, 100), (EUR_SHOP, -100))


def case_account_closed() -> tuple[Book, Command]:
    book = make_book()
    book.accounts[MERCHANT].closed = True
    return book, journal("j", (BANK, 100), (MERCHANT, -100))


def case_pending_not_found() -> tuple[Book, Command]:
    return make_book(), PostPending(OWNER, "p", 4242)


def case_pending_already_posted() -> tuple[Book, Command]:
    book, pending_id = _pending_book(PendingState.posted)
    return book, PostPending(OWNER, "again", pending_id)


def case_pending_already_voided() -> tuple[Book, Command]:
    book, pending_id = _pending_book(PendingState.voided)
    return book, PostPending(OWNER, "again", pending_id)


def case_pending_expired() -> tuple[Book, Command]:
    book, pending_id = _expiring_book()
    book.now = NOW + SECOND
    assert book.expire(pending_id)
    return book, PostPending(OWNER, "late", pending_id)


def case_post_must_match_pending() -> tuple[Book, Command]:
    book, pending_id = _pending_book()
    wrong = legs((BUYER, 300), (MERCHANT, -300))  # two legs for a hold of three
    return book, PostPending(OWNER, "p", pending_id, wrong)


def case_post_exceeds_pending() -> tuple[Book, Command]:
    book, pending_id = _pending_book()
    more = legs((BUYER, 301), (MERCHANT, -291), (FEES, -10))
    return book, PostPending(OWNER, "p", pending_id, more)


def case_insufficient_balance() -> tuple[Book, Command]:
    book = make_book()
    fund(book, 100)
    return book, journal("j", (BUYER, 101), (MERCHANT, -101))


def case_exceeds_debits() -> tuple[Book, Command]:
    return make_book(), journal("j", (BANK, 1), (CREDIT_LINE, -1))


def case_exceeds_limit() -> tuple[Book, Command]:
    return make_book(), journal("j", (CREDIT_LINE, 5001), (MERCHANT, -5001))


def case_counter_overflow() -> tuple[Book, Command]:
    full = account(BANK, credits_posted=MAX_MINOR_UNITS - 10)
    book = make_book([full, account(MERCHANT)])
    return book, journal("j", (MERCHANT, 11), (BANK, -11))


CASES: dict[ResultCode, Callable[[], tuple[Book, Command]]] = {
    ResultCode.key_invalid: case_key_invalid,
    ResultCode.memo_too_long: case_memo_too_long,
    ResultCode.code_out_of_range: case_code_out_of_range,
    ResultCode.expiry_out_of_range: case_expiry_out_of_range,
    ResultCode.duplicate_with_different_content: case_duplicate_with_different_content,
    ResultCode.journal_needs_two_legs: case_journal_needs_two_legs,
    ResultCode.amount_must_be_positive: case_amount_must_be_positive,
    ResultCode.amount_out_of_range: case_amount_out_of_range,
    ResultCode.unsupported_currency: case_unsupported_currency,
    ResultCode.journal_must_balance: case_journal_must_balance,
    ResultCode.accounts_must_be_distinct: case_accounts_must_be_distinct,
    ResultCode.expiry_requires_pending: case_expiry_requires_pending,
    ResultCode.expiry_must_be_in_future: case_expiry_must_be_in_future,
    ResultCode.account_not_found: case_account_not_found,
    ResultCode.currency_mismatch: case_currency_mismatch,
    ResultCode.account_closed: case_account_closed,
    ResultCode.pending_not_found: case_pending_not_found,
    ResultCode.pending_already_posted: case_pending_already_posted,
    ResultCode.pending_already_voided: case_pending_already_voided,
    ResultCode.pending_expired: case_pending_expired,
    ResultCode.post_must_match_pending: case_post_must_match_pending,
    ResultCode.post_exceeds_pending: case_post_exceeds_pending,
    ResultCode.insufficient_balance: case_insufficient_balance,
    ResultCode.exceeds_debits: case_exceeds_debits,
    ResultCode.exceeds_limit: case_exceeds_limit,
    ResultCode.counter_overflow: case_counter_overflow,
}


def test_every_code_the_book_can_produce_has_a_case() -> None:
    # ok is produced all over this file; storage_unavailable comes from the engine, never
    # from the pure core.
    assert set(CASES) == set(ResultCode) - {ResultCode.ok, ResultCode.storage_unavailable}


@pytest.mark.parametrize("code", sorted(CASES), ids=lambda code: code.name)
def test_result_code(code: ResultCode) -> None:
    book, command = CASES[code]()
    if not code.remembered:  # answered, not stored: nothing changes
        before, rows = snapshot(book), len(book.new_journals)
        assert book.apply(command) == Outcome(code, None)
        assert snapshot(book) == before
        assert len(book.new_journals) == rows
        return
    outcome = assert_refused(book, command, code)
    # The refusal is remembered: the same command again gets the same answer, replayed.
    assert book.apply(command) == Outcome(code, outcome.journal_id, replayed=True)


def test_result_code_properties() -> None:
    assert ResultCode.ok.is_ok
    assert not ResultCode.insufficient_balance.is_ok
    assert {code for code in ResultCode if code.transient} == {ResultCode.storage_unavailable}
    forgotten = {code for code in ResultCode if not code.remembered}
    assert forgotten == {
        ResultCode.key_invalid,
        ResultCode.memo_too_long,
        ResultCode.code_out_of_range,
        ResultCode.expiry_out_of_range,
        ResultCode.storage_unavailable,
        ResultCode.duplicate_with_different_content,
    }
    assert Outcome(ResultCode.ok, 1).ok
    assert not Outcome(ResultCode.exceeds_limit, 1).ok


def test_zero_and_one_leg_journals() -> None:
    book = make_book()
    assert_refused(book, NewJournal(OWNER, "none", ()), ResultCode.journal_needs_two_legs)
    assert_refused(book, journal("one", (BANK, 0)), ResultCode.journal_needs_two_legs)


def test_credit_limit_bounds_net_credit() -> None:
    capped = account(MERCHANT, credit_limit=1000)
    book = make_book([account(BANK), capped])
    assert book.apply(journal("a", (BANK, 1000), (MERCHANT, -1000))).ok
    assert_refused(book, journal("b", (BANK, 1), (MERCHANT, -1)), ResultCode.exceeds_limit)
    # Debiting the account makes room again.
    assert book.apply(journal("c", (MERCHANT, 400), (BANK, -400))).ok
    assert book.apply(journal("d", (BANK, 400), (MERCHANT, -400))).ok
    assert bal(book, MERCHANT) == Balance(400, 1400, 0, 0)


def test_pending_not_found_for_another_owner_or_a_posted_journal() -> None:
    book, pending_id = _pending_book()
    assert_refused(book, PostPending("someone-else", "p", pending_id), ResultCode.pending_not_found)
    assert_refused(book, VoidPending("someone-else", "v", pending_id), ResultCode.pending_not_found)
    posted = fund(book, 5, key="posted")
    assert posted.journal_id is not None
    assert_refused(book, PostPending(OWNER, "p2", posted.journal_id), ResultCode.pending_not_found)
    # The hold is still there for its owner.
    assert book.apply(VoidPending(OWNER, "v2", pending_id)).ok


@pytest.mark.parametrize(
    ("posted", "expected"),
    [
        # the same legs in another order
        (((BUYER, 300), (FEES, -10), (MERCHANT, -290)), ResultCode.post_must_match_pending),
        # another account instead of the fee account
        (((BUYER, 300), (MERCHANT, -290), (BANK, -10)), ResultCode.post_must_match_pending),
        # a leg fewer
        (((BUYER, 300), (MERCHANT, -300)), ResultCode.post_must_match_pending),
        # a leg more (balanced, on a fourth account)
        (
            ((BUYER, 300), (MERCHANT, -290), (FEES, -9), (BANK, -1)),
            ResultCode.post_must_match_pending,
        ),
        # a zero leg where the fee was: the command's own fault comes first
        (((BUYER, 300), (MERCHANT, -300), (FEES, 0)), ResultCode.amount_must_be_positive),
    ],
)
def test_post_must_mirror_the_hold(
    posted: tuple[tuple[int, int], ...], expected: ResultCode
) -> None:
    book, pending_id = _pending_book()
    assert_refused(book, PostPending(OWNER, "p", pending_id, legs(*posted)), expected)
    assert bal(book, BUYER) == Balance(0, 1000, 300, 0)


def test_post_with_flipped_signs_must_match() -> None:
    book = make_book()
    fund(book, 1000)
    fund(book, 1000, key="fund-m", to=MERCHANT)
    hold = book.apply(journal("hold", (BUYER, 300), (MERCHANT, -300), pending=True))
    assert hold.journal_id is not None
    flipped = legs((BUYER, -300), (MERCHANT, 300))
    assert_refused(
        book, PostPending(OWNER, "p", hold.journal_id, flipped), ResultCode.post_must_match_pending
    )


# -- precedence: the lowest code wins --------------------------------------------------------


def test_precedence_idempotency_comes_first() -> None:
    book = make_book()
    fund(book, 100, key="k")
    # Same key, other content, and the content is invalid in several ways.
    assert book.apply(journal("k", (BANK, 0))) == Outcome(
        ResultCode.duplicate_with_different_content, None
    )


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        # two legs needed (20) and unbalanced (24)
        (((BANK, 100),), ResultCode.journal_needs_two_legs),
        # zero amount (21) and unbalanced (24)
        (((BANK, 100), (BUYER, 0)), ResultCode.amount_must_be_positive),
        # unbalanced (24) and the same account twice (25)
        (((BANK, 100), (BANK, -99)), ResultCode.journal_must_balance),
        # unbalanced (24) and an unknown account (40)
        (((BANK, 100), (99, -99)), ResultCode.journal_must_balance),
        # closed (42) before unknown (40) in leg order: still account_not_found
        (((MERCHANT, 100), (99, -100)), ResultCode.account_not_found),
        # closed (42) and currency mismatch (41), whatever the leg order
        (((MERCHANT, 100), (EUR_SHOP, -100)), ResultCode.currency_mismatch),
        (((EUR_SHOP, 100), (MERCHANT, -100)), ResultCode.currency_mismatch),
        # closed (42) and insufficient balance (60)
        (((MERCHANT, 100), (BUYER, -100)), ResultCode.account_closed),
    ],
)
def test_precedence_between_two_faults(
    pairs: tuple[tuple[int, int], ...], expected: ResultCode
) -> None:
    book = make_book()
    book.accounts[MERCHANT].closed = True
    assert book.apply(journal("j", *pairs)).code is expected


def test_precedence_expiry_before_accounts() -> None:
    book = make_book()
    # not pending with an expiry (26) that is also in the past (27)
    assert book.apply(journal("a", (BANK, 1), (BUYER, -1), expires_at=NOW - 1)).code is (
        ResultCode.expiry_requires_pending
    )
    # expiry in the past (27) and an unknown account (40)
    assert book.apply(journal("b", (BANK, 1), (99, -1), pending=True, expires_at=NOW)).code is (
        ResultCode.expiry_must_be_in_future
    )


def test_precedence_between_bounds_of_two_accounts() -> None:
    book = make_book()
    # The buyer has nothing (insufficient_balance, 60) and the credit line is credited beyond
    # its debits (exceeds_debits, 61), in either leg order.
    one = journal("one", (BUYER, 10), (CREDIT_LINE, -10))
    two = NewJournal(OWNER, "two", tuple(reversed(one.legs)))
    assert book.apply(one).code is ResultCode.insufficient_balance
    assert book.apply(two).code is ResultCode.insufficient_balance


def test_precedence_between_bounds_of_one_account() -> None:
    both = account(BUYER, flags=PREPAID, debit_limit=50, credits_posted=100)
    book = make_book([account(BANK), both])
    # A net debit of 100 is beyond the balance (60) and beyond the debit limit of 50 (62).
    assert book.apply(journal("j", (BUYER, 200), (BANK, -200))).code is (
        ResultCode.insufficient_balance
    )
    # Without the prepaid flag, only the limit is left: a net debit of 50 is fine, 51 is not.
    limited = account(BUYER, debit_limit=50, credits_posted=100)
    book = make_book([account(BANK), limited])
    assert book.apply(journal("k", (BUYER, 151), (BANK, -151))).code is ResultCode.exceeds_limit
    assert book.apply(journal("l", (BUYER, 150), (BANK, -150))).ok
    assert bal(book, BUYER) == Balance(150, 100, 0, 0)


@pytest.mark.parametrize(
    "given",
    [
        # leg 1 out of range (22), leg 3 zero (21)
        (
            Leg(BANK, 2 * MAX_LEG_AMOUNT, "USD"),
            Leg(BUYER, -2 * MAX_LEG_AMOUNT, "USD"),
            Leg(MERCHANT, 0, "USD"),
        ),
        # leg 1 in an unsupported currency (23), leg 2 zero (21)
        (Leg(BANK, 100, "XXX"), Leg(BUYER, 0, "USD"), Leg(MERCHANT, -100, "XXX")),
    ],
    ids=["out_of_range_then_zero", "unsupported_currency_then_zero"],
)
def test_precedence_does_not_depend_on_leg_order(given: tuple[Leg, ...]) -> None:
    for order in (given, tuple(reversed(given))):
        book = make_book()
        assert book.apply(NewJournal(OWNER, "j", order)).code is (
            ResultCode.amount_must_be_positive
        ), order


def test_precedence_insufficient_balance_before_counter_overflow() -> None:
    # The buyer has spent all it had; counters are at the top of the 64-bit range. Debiting
    # it again is both beyond its balance (60) and beyond the counter range (63).
    top = MAX_MINOR_UNITS - 5
    buyer = account(BUYER, flags=PREPAID, debits_posted=top, credits_posted=top)
    book = make_book([account(BANK), buyer])
    assert book.apply(journal("j", (BUYER, 10), (BANK, -10))).code is (
        ResultCode.insufficient_balance
    )


def test_precedence_account_closed_before_post_exceeds_pending() -> None:
    book, pending_id = _pending_book()
    book.accounts[MERCHANT].closed = True
    more = legs((BUYER, 400), (MERCHANT, -390), (FEES, -10))  # exceeds the hold (48)
    assert book.apply(PostPending(OWNER, "p", pending_id, more)).code is (ResultCode.account_closed)


def test_precedence_post_must_match_before_post_exceeds_pending() -> None:
    book, pending_id = _pending_book()
    # Leg 1 posts more than held (48); leg 3 names the bank instead of the fee account (47).
    posted = legs((BUYER, 310), (MERCHANT, -300), (BANK, -10))
    assert book.apply(PostPending(OWNER, "p", pending_id, posted)).code is (
        ResultCode.post_must_match_pending
    )


def test_precedence_malformed_post_legs_before_pending_state() -> None:
    book, pending_id = _pending_book(PendingState.voided)
    zero = legs((BUYER, 300), (MERCHANT, -300), (FEES, 0))  # a zero leg (21) on a void (45)
    assert book.apply(PostPending(OWNER, "p", pending_id, zero)).code is (
        ResultCode.amount_must_be_positive
    )


# -- idempotency ---------------------------------------------------------------------------


def test_same_key_same_content_replays_without_a_second_effect() -> None:
    book = make_book()
    first = fund(book, 1000)
    again = book.apply(journal("fund", (BANK, 1000), (BUYER, -1000)))
    assert again == Outcome(ResultCode.ok, first.journal_id, replayed=True)
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)
    assert bal(book, BANK) == Balance(1000, 0, 0, 0)
    assert len(book.new_journals) == 1


def test_same_key_different_content_changes_nothing() -> None:
    book = make_book()
    first = fund(book, 1000)
    before, rows = snapshot(book), len(book.new_journals)
    for different in (
        journal("fund", (BANK, 1001), (BUYER, -1001)),
        journal("fund", (BANK, 1000), (BUYER, -1000), memo="other"),
        journal("fund", (BANK, 1000), (BUYER, -1000), code=7),
        journal("fund", (BANK, 1000), (BUYER, -1000), pending=True),
        VoidPending(OWNER, "fund", 1),
    ):
        assert book.apply(different) == Outcome(ResultCode.duplicate_with_different_content, None)
    assert snapshot(book) == before
    assert len(book.new_journals) == rows
    # The key still answers with what it did first.
    assert book.apply(journal("fund", (BANK, 1000), (BUYER, -1000))) == Outcome(
        ResultCode.ok, first.journal_id, replayed=True
    )


def test_keys_are_per_owner() -> None:
    book = make_book()
    fund(book, 1000)
    other = book.apply(journal("fund", (BANK, 1000), (BUYER, -1000), owner="caller-2"))
    assert other == Outcome(ResultCode.ok, 1002)
    assert bal(book, BUYER) == Balance(0, 2000, 0, 0)


def test_a_remembered_failure_replays_after_the_state_changed() -> None:
    book = make_book()
    pay = journal("pay", (BUYER, 500), (MERCHANT, -500))
    failed = book.apply(pay)
    assert failed == Outcome(ResultCode.insufficient_balance, 1001)
    fund(book, 1000)
    # The buyer could pay now, but this key already failed: the same answer, no effect.
    assert book.apply(pay) == Outcome(ResultCode.insufficient_balance, 1001, replayed=True)
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)
    assert bal(book, MERCHANT) == Balance(0, 0, 0, 0)
    # A new key is a new payment.
    assert book.apply(replace(pay, key="pay-2")) == Outcome(ResultCode.ok, 1003)
    assert bal(book, BUYER) == Balance(500, 1000, 0, 0)


def test_keys_known_from_earlier_batches_replay() -> None:
    book = make_book()
    first = fund(book, 1000)
    # A later batch starts from the keys the store remembers.
    later = Book(
        accounts=book.accounts,
        pendings={},
        keys=dict(book.keys),
        now=NOW + SECOND,
        allocate_id=itertools.count(5000).__next__,
    )
    assert later.apply(journal("fund", (BANK, 1000), (BUYER, -1000))) == Outcome(
        ResultCode.ok, first.journal_id, replayed=True
    )
    assert later.new_journals == []
    assert later.changed_accounts == {}


# -- pending journals ----------------------------------------------------------------------


def test_hold_reserves_funds() -> None:
    book, pending_id = _pending_book()
    assert pending_id == 1002
    assert bal(book, BUYER) == Balance(0, 1000, 300, 0)
    assert bal(book, BUYER).available_credit == 700
    assert bal(book, MERCHANT) == Balance(0, 0, 0, 290)
    assert bal(book, FEES) == Balance(0, 0, 0, 10)
    row = book.new_journals[-1]
    assert (row.kind, row.pending_state) == (JournalKind.pending, PendingState.open)
    assert row.legs == legs((BUYER, 300), (MERCHANT, -290), (FEES, -10))
    assert book.pendings[pending_id].state is PendingState.open
    # The held $3.00 cannot be spent: $7.01 is too much, $7.00 is fine.
    assert_refused(
        book, journal("x", (BUYER, 701), (MERCHANT, -701)), ResultCode.insufficient_balance
    )
    assert book.apply(journal("y", (BUYER, 700), (MERCHANT, -700))).ok
    assert bal(book, BUYER) == Balance(700, 1000, 300, 0)
    assert bal(book, BUYER).available_credit == 0


def test_pending_credits_are_not_spendable() -> None:
    book, _pending_id = _pending_book()
    # The merchant has 290 pending credit and nothing posted: it cannot pay anything out.
    assert_refused(book, journal("x", (MERCHANT, 1), (BANK, -1)), ResultCode.insufficient_balance)


def test_post_in_full() -> None:
    book, pending_id = _pending_book()
    outcome = book.apply(PostPending(OWNER, "post", pending_id))
    assert outcome == Outcome(ResultCode.ok, 1003)
    assert bal(book, BUYER) == Balance(300, 1000, 0, 0)
    assert bal(book, MERCHANT) == Balance(0, 290, 0, 0)
    assert bal(book, FEES) == Balance(0, 10, 0, 0)
    row = book.new_journals[-1]
    assert (row.kind, row.pending_id, row.result) == (JournalKind.post_pending, pending_id, 0)
    assert row.legs == legs((BUYER, 300), (MERCHANT, -290), (FEES, -10))
    assert book.pendings[pending_id].state is PendingState.posted
    assert book.pending_changes == {pending_id: PendingState.posted}


def test_post_partially_releases_the_rest() -> None:
    book, pending_id = _pending_book()
    part = legs((BUYER, 120), (MERCHANT, -116), (FEES, -4))
    assert book.apply(PostPending(OWNER, "post", pending_id, part)).ok
    assert bal(book, BUYER) == Balance(120, 1000, 0, 0)
    assert bal(book, BUYER).available_credit == 880
    assert bal(book, MERCHANT) == Balance(0, 116, 0, 0)
    assert bal(book, FEES) == Balance(0, 4, 0, 0)
    assert book.new_journals[-1].legs == part
    assert book.pendings[pending_id].state is PendingState.posted


def test_post_partial_must_balance() -> None:
    book, pending_id = _pending_book()
    part = legs((BUYER, 120), (MERCHANT, -116), (FEES, -5))
    assert_refused(book, PostPending(OWNER, "p", pending_id, part), ResultCode.journal_must_balance)
    assert bal(book, BUYER) == Balance(0, 1000, 300, 0)


def test_void_releases_everything() -> None:
    book, pending_id = _pending_book()
    outcome = book.apply(VoidPending(OWNER, "void", pending_id, memo="customer cancelled"))
    assert outcome == Outcome(ResultCode.ok, 1003)
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)
    assert bal(book, MERCHANT) == Balance(0, 0, 0, 0)
    assert bal(book, FEES) == Balance(0, 0, 0, 0)
    row = book.new_journals[-1]
    assert (row.kind, row.pending_id, row.legs) == (JournalKind.void_pending, pending_id, ())
    assert row.memo == "customer cancelled"
    assert book.pending_changes == {pending_id: PendingState.voided}


@pytest.mark.parametrize(
    ("first", "then", "expected"),
    [
        ("post", "post", ResultCode.pending_already_posted),
        ("post", "void", ResultCode.pending_already_posted),
        ("void", "post", ResultCode.pending_already_voided),
        ("void", "void", ResultCode.pending_already_voided),
    ],
)
def test_a_pending_journal_is_resolved_once(first: str, then: str, expected: ResultCode) -> None:
    book, pending_id = _pending_book()

    def command(kind: str, key: str) -> Command:
        if kind == "post":
            return PostPending(OWNER, key, pending_id)
        return VoidPending(OWNER, key, pending_id)

    assert book.apply(command(first, "first")).ok
    after_first = snapshot(book)
    outcome = assert_refused(book, command(then, "second"), expected)
    assert snapshot(book) == after_first
    assert book.new_journals[-1].pending_id == pending_id
    assert outcome.journal_id == 1004


def test_expire_only_when_due() -> None:
    book, pending_id = _expiring_book()
    assert bal(book, BUYER) == Balance(0, 1000, 300, 0)
    book.now = NOW + SECOND - 1
    assert not book.expire(pending_id)
    assert bal(book, BUYER) == Balance(0, 1000, 300, 0)
    assert book.pending_changes == {}
    book.now = NOW + SECOND  # expires_at itself is due
    assert book.expire(pending_id)
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)
    assert bal(book, MERCHANT) == Balance(0, 0, 0, 0)
    assert book.pendings[pending_id].state is PendingState.expired
    assert book.pending_changes == {pending_id: PendingState.expired}
    assert not book.expire(pending_id)  # only once
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)


def test_expire_ignores_unknown_resolved_and_non_expiring_pendings() -> None:
    book, pending_id = _pending_book()  # no expiry
    book.now = NOW + 10**12
    assert not book.expire(pending_id)
    assert not book.expire(4242)
    assert book.apply(VoidPending(OWNER, "v", pending_id)).ok
    assert not book.expire(pending_id)
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)


def test_post_after_expiry() -> None:
    book, pending_id = _expiring_book()
    # Due but not yet expired by the sweeper: posting is refused and the hold stays.
    book.now = NOW + SECOND
    assert_refused(book, PostPending(OWNER, "late", pending_id), ResultCode.pending_expired)
    assert_refused(book, VoidPending(OWNER, "late-void", pending_id), ResultCode.pending_expired)
    assert bal(book, BUYER) == Balance(0, 1000, 300, 0)
    assert book.expire(pending_id)
    assert_refused(book, PostPending(OWNER, "later", pending_id), ResultCode.pending_expired)
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)


def test_post_just_before_expiry() -> None:
    book, pending_id = _expiring_book()
    book.now = NOW + SECOND - 1
    assert book.apply(PostPending(OWNER, "in-time", pending_id)).ok
    assert bal(book, BUYER) == Balance(300, 1000, 0, 0)
    assert not book.expire(pending_id)


def test_a_refused_hold_is_not_a_pending_journal() -> None:
    book = make_book()
    hold = book.apply(journal("hold", (BUYER, 300), (MERCHANT, -300), pending=True))
    assert hold == Outcome(ResultCode.insufficient_balance, 1001)
    assert 1001 not in book.pendings
    assert book.new_journals[-1].kind is JournalKind.pending
    assert book.new_journals[-1].pending_state is PendingState.none
    assert_refused(book, PostPending(OWNER, "p", 1001), ResultCode.pending_not_found)


def test_post_pending_replay() -> None:
    book, pending_id = _pending_book()
    post = PostPending(OWNER, "post", pending_id, legs((BUYER, 100), (MERCHANT, -90), (FEES, -10)))
    first = book.apply(post)
    assert first.ok
    assert book.apply(post) == Outcome(ResultCode.ok, first.journal_id, replayed=True)
    other = replace(post, legs=legs((BUYER, 100), (MERCHANT, -95), (FEES, -5)))
    assert book.apply(other) == Outcome(ResultCode.duplicate_with_different_content, None)
    assert bal(book, BUYER) == Balance(100, 1000, 0, 0)
    assert bal(book, MERCHANT) == Balance(0, 90, 0, 0)


# -- closed accounts -----------------------------------------------------------------------


def test_closed_accounts_take_no_new_journals_but_holds_can_be_released() -> None:
    book, pending_id = _pending_book()
    book.accounts[MERCHANT].closed = True
    assert_refused(book, journal("in", (BANK, 1), (MERCHANT, -1)), ResultCode.account_closed)
    assert_refused(book, journal("out", (MERCHANT, 1), (BANK, -1)), ResultCode.account_closed)
    assert_refused(book, PostPending(OWNER, "post", pending_id), ResultCode.account_closed)
    assert bal(book, BUYER) == Balance(0, 1000, 300, 0)
    assert book.apply(VoidPending(OWNER, "void", pending_id)).ok
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)
    assert bal(book, MERCHANT) == Balance(0, 0, 0, 0)


def test_a_hold_on_a_closed_account_still_expires() -> None:
    book, pending_id = _expiring_book()
    book.accounts[BUYER].closed = True
    book.now = NOW + SECOND
    assert book.expire(pending_id)
    assert bal(book, BUYER) == Balance(0, 1000, 0, 0)


# -- fingerprints --------------------------------------------------------------------------

BASE = NewJournal(OWNER, "key", legs((1, 100), (2, -100)), code=3, memo="m")


@pytest.mark.parametrize(
    "variant",
    [
        replace(BASE, owner="caller-2"),
        replace(BASE, legs=legs((1, 101), (2, -101))),
        replace(BASE, legs=legs((1, 100), (3, -100))),
        replace(BASE, legs=legs((2, -100), (1, 100))),
        replace(BASE, legs=legs((1, 100), (2, -100), currency="EUR")),
        replace(BASE, legs=legs((1, 100), (2, -50), (3, -50))),
        replace(BASE, pending=True),
        replace(BASE, pending=True, expires_at=NOW),
        replace(BASE, expires_at=NOW),
        replace(BASE, code=4),
        replace(BASE, memo="n"),
        replace(BASE, memo=""),
        PostPending(OWNER, "key", 7),
        VoidPending(OWNER, "key", 7),
    ],
)
def test_fingerprint_distinguishes_every_field(variant: Command) -> None:
    assert fingerprint(variant) != fingerprint(BASE)


def test_fingerprint_ignores_the_key_and_is_16_bytes() -> None:
    assert fingerprint(replace(BASE, key="another")) == fingerprint(BASE)
    assert len(fingerprint(BASE)) == FINGERPRINT_SIZE == 16
    post = PostPending(OWNER, "a", 7, legs((1, 10), (2, -10)), code=1, memo="x")
    assert fingerprint(replace(post, key="b")) == fingerprint(post)
    void = VoidPending(OWNER, "a", 7, code=1, memo="x")
    assert fingerprint(replace(void, key="b")) == fingerprint(void)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (PostPending(OWNER, "k", 7), PostPending(OWNER, "k", 8)),
        (PostPending(OWNER, "k", 7), PostPending("caller-2", "k", 7)),
        (PostPending(OWNER, "k", 7), PostPending(OWNER, "k", 7, legs=())),
        (PostPending(OWNER, "k", 7), PostPending(OWNER, "k", 7, legs((1, 1), (2, -1)))),
        (PostPending(OWNER, "k", 7), PostPending(OWNER, "k", 7, code=1)),
        (PostPending(OWNER, "k", 7), PostPending(OWNER, "k", 7, memo="m")),
        (VoidPending(OWNER, "k", 7), VoidPending(OWNER, "k", 8)),
        (VoidPending(OWNER, "k", 7), VoidPending("caller-2", "k", 7)),
        (VoidPending(OWNER, "k", 7), VoidPending(OWNER, "k", 7, code=1)),
        (VoidPending(OWNER, "k", 7), VoidPending(OWNER, "k", 7, memo="m")),
        # Field boundaries are unambiguous: moving text between fields changes the print.
        (NewJournal("ab", "k", (), memo="c"), NewJournal("a", "k", (), memo="bc")),
        (NewJournal("a|1:b", "k", ()), NewJournal("a", "k", (), memo="b")),
    ],
)
def test_fingerprint_distinguishes_post_and_void_fields(left: Command, right: Command) -> None:
    assert fingerprint(left) != fingerprint(right)


def test_fingerprint_leg_encoding_is_unambiguous() -> None:
    # One leg whose currency text contains the leg separators must not print like two legs.
    one = NewJournal(OWNER, "k", (Leg(1, 5, "USD;2,-5,USD"),))
    two = NewJournal(OWNER, "k", (Leg(1, 5, "USD"), Leg(2, -5, "USD")))
    assert fingerprint(one) != fingerprint(two)
