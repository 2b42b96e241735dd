"""Who is told of the payments service's changes, inside the transaction that makes them.

The IPN outbox (:class:`penny.ipn.outbox.IpnOutbox`) is the listener in production: what it
writes through the batch's connection commits or rolls back with the change.
:func:`cancel_found` is CancelToken's change of a pipeline or an installed token, of which the
listener is told.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from sqlalchemy import Connection

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import Instrument, PaymentInstruction, Token, TokenStatus, Transaction
from penny.domain.parties import Party
from penny.engine.ledger import LedgerSession


@dataclass(frozen=True, slots=True)
class Known:
    """Rows the batch already loaded in this transaction (current), for a listener to reuse
    rather than read again; what is missing from them it loads itself."""

    parties: Mapping[str, Party]
    instruments: Mapping[str, Instrument]


@dataclass(frozen=True, slots=True)
class TransactionChange:
    """A transaction as it is now, and as it was before this change (None: it is new)."""

    transaction: Transaction
    before: Transaction | None


class ChangeListener(Protocol):
    """Told of every change FPS notifies, inside the database transaction that makes it.

    Whatever it writes through ``session.conn`` commits or rolls back with the change (the IPN
    outbox, docs/ipn.md). It may be called again for the same change when the transaction is
    re-run after a conflict; only the last call's writes commit.
    """

    def transactions_changed(
        self,
        session: LedgerSession,
        changes: Sequence[TransactionChange],
        known: Known | None = None,
    ) -> None: ...

    def token_cancelled(
        self,
        session: LedgerSession,
        token: Token | PaymentInstruction,
        ipn_url: str | None = None,
    ) -> None: ...


Cancellable = TypeVar("Cancellable", Token, PaymentInstruction)


def cancel_found(
    session: LedgerSession,
    found: Cancellable | None,
    caller_id: str,
    save: Callable[[Connection, Cancellable], None],
    listener: ChangeListener | None,
    ipn_url: str | None,
) -> Cancellable:
    """CancelToken of ``found`` (a pipeline token or an installed one) in ``session``'s
    transaction: refused unless it is ``caller_id``'s; cancelling twice is harmless; else it is
    inactive from now, saved with ``save``, and ``listener`` is told (with ``ipn_url``)."""
    if found is None or found.caller_id != caller_id:
        raise PaymentsError(Refusal.unknown_token)
    if not found.active:
        return found
    cancelled = replace(found, status=TokenStatus.inactive, cancelled_at=session.now)
    save(session.conn, cancelled)
    if listener is not None:
        listener.token_cancelled(session, cancelled, ipn_url)
    return cancelled
