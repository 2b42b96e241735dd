"""The ledger core: double-entry accounts, journals and their rules, with no I/O at all.

``model`` holds the data, ``book`` applies commands to a batch's working set, ``fingerprint``
tells retries from conflicting commands, ``audit`` checks stored counters against the journal,
and ``results`` is the closed set of expected outcomes. Nothing here imports SQL, HTTP or a
clock; the storage and engine adapters around it do.
"""

from penny.ledger.book import Book
from penny.ledger.model import (
    Account,
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

__all__ = [
    "Account",
    "AccountFlags",
    "AccountSpec",
    "Balance",
    "Book",
    "Command",
    "JournalKind",
    "Leg",
    "NewJournal",
    "Outcome",
    "PendingState",
    "PostPending",
    "ResultCode",
    "VoidPending",
]
