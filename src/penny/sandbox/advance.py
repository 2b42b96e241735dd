"""What follows a move of the sandbox clock: every pending transaction that has come due is
finished (bank transfers after four days, late-failing cards after one) and expired holds are
released. ``penny sandbox advance`` and the console's sandbox page both call :func:`finish_due`.
"""

from __future__ import annotations

from penny.domain.model import Transaction
from penny.services.payments import Payments


def finish_due(payments: Payments) -> tuple[list[Transaction], int]:
    """Finish what has come due on ``payments``' clock: the transactions finished, and how
    many holds expired."""
    finished: list[Transaction] = []
    while batch := payments.complete_due():
        finished.extend(batch)
    return finished, payments.ledger.expire_due()
