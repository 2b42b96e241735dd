"""Result codes: the closed set of expected outcomes of a ledger command.

Expected outcomes (an insufficient balance, an unknown account, a replayed key with other
content) are values of :class:`ResultCode`, never exceptions; exceptions and asserts are for bugs.
The numeric value of each code is its *precedence*: when a command is wrong in several ways, the
check for the lowest code runs first and decides the result. Adapters translate codes to wire
errors in one table each (the FPS table lives with the FPS adapter).
"""

from __future__ import annotations

import enum


class ResultCode(enum.IntEnum):
    """What happened to one command. ``ok`` is the only success."""

    ok = 0

    # A command the store cannot hold at all: not run, not remembered (there is nothing to
    # remember it under, or it cannot be written down).
    key_invalid = 5
    memo_too_long = 6
    code_out_of_range = 7
    expiry_out_of_range = 8

    # Idempotency: decided before anything else, against what the key first did.
    duplicate_with_different_content = 10

    # The command itself, independent of any stored state.
    journal_needs_two_legs = 20
    amount_must_be_positive = 21
    amount_out_of_range = 22
    unsupported_currency = 23
    journal_must_balance = 24
    accounts_must_be_distinct = 25
    expiry_requires_pending = 26
    expiry_must_be_in_future = 27

    # The state the command refers to.
    account_not_found = 40
    currency_mismatch = 41
    account_closed = 42
    pending_not_found = 43
    pending_already_posted = 44
    pending_already_voided = 45
    pending_expired = 46
    post_must_match_pending = 47
    post_exceeds_pending = 48

    # Balance bounds, checked on the counters as the command would leave them.
    insufficient_balance = 60
    exceeds_debits = 61
    exceeds_limit = 62
    counter_overflow = 63

    # Infrastructure trouble: the command did not run; retrying the same key may succeed.
    storage_unavailable = 90

    @property
    def transient(self) -> bool:
        """True when the same command may succeed if simply retried (the store was busy)."""
        return self is ResultCode.storage_unavailable

    @property
    def remembered(self) -> bool:
        """True when the outcome is stored under the command's key.

        Every outcome is, success or refusal, and a retry with the same content gets it back
        even if the state has changed since (as TigerBeetle does) — except the transient one,
        an answer about the key (``duplicate_with_different_content``), and a command the
        store cannot hold at all (an invalid key, an over-long memo, an out-of-range code or
        expiry time).
        """
        return self not in _NOT_REMEMBERED

    @property
    def is_ok(self) -> bool:
        return self is ResultCode.ok


_NOT_REMEMBERED = frozenset(
    {
        ResultCode.key_invalid,
        ResultCode.memo_too_long,
        ResultCode.code_out_of_range,
        ResultCode.expiry_out_of_range,
        ResultCode.storage_unavailable,
        ResultCode.duplicate_with_different_content,
    }
)

#: What the store can hold (the schema's column sizes).
MAX_OWNER_LENGTH = 64
MAX_KEY_LENGTH = 128
MAX_MEMO_LENGTH = 256
CODE_RANGE = range(-(2**31), 2**31)
TIME_RANGE = range(-(2**63), 2**63)
