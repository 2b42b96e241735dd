"""The IPN outbox: the payments service's :class:`~penny.services.payments.ChangeListener`.

Told of every change inside the database transaction that makes it, :class:`IpnOutbox` writes
the notifications FPS sent for it into ``ipn_notifications`` through the same connection, so a
change and its notification commit together or not at all (a transactional outbox). When the
batch is re-run after a conflict, only the last run's rows commit; each run draws new ids.

Which changes notify (docs/ipn.md, docs/decisions.md):

* every new transaction, with its first status (``PENDING`` for a bank transfer, ``SUCCESS``
  for an immediate one, ``FAILURE`` for a declined card), as FPS notified every status;
* every later change of status (a pending one completing, ``RESERVED``, ``CANCELLED``);
* refunds are new transactions, so they notify with ``parentTransactionId``; the original's
  refunded amount changing does not;
* a token cancelled by ``CancelToken`` (``TokenCancellation``).

Destination: the transaction's ``OverrideIPNURL``, else the caller's configured IPN URL
(``penny accounts set-ipn-url``); with neither, nothing is written (FPS only e-mailed). A URL
that is not absolute http(s) is stored as ``failed`` at once, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from penny.domain.model import PaymentInstruction, Token, Transaction
from penny.domain.parties import Party, random_id
from penny.engine.ledger import LedgerSession
from penny.fps.outbound import Endpoint, OutboundError
from penny.ipn.params import (
    TOKEN_CANCELLATION,
    TRANSACTION_STATUS,
    notifies,
    token_cancellation_params,
    transaction_params,
)
from penny.services.payments import Known, TransactionChange
from penny.storage import ipn_sql, parties_sql
from penny.storage import payments_sql as sql

NOTIFICATION_ID_LENGTH = 24


def refusal_of(url: str) -> str | None:
    """Why ``url`` can never receive a notification (``None``: it can be tried)."""
    try:
        Endpoint.parse(url)
    except OutboundError as error:
        return f"not deliverable: {error}"
    return None


class IpnOutbox:
    """Writes notifications in the transaction of the change (a ``ChangeListener``)."""

    def __init__(self, new_id: Callable[[], str] | None = None) -> None:
        self.new_id = new_id or (lambda: random_id(NOTIFICATION_ID_LENGTH))

    def transactions_changed(
        self,
        session: LedgerSession,
        changes: Sequence[TransactionChange],
        known: Known | None = None,
    ) -> None:
        notable = [c.transaction for c in changes if notifies(c.before, c.transaction)]
        if not notable:
            return
        conn = session.conn
        parties = dict(known.parties) if known is not None else {}
        instruments = dict(known.instruments) if known is not None else {}
        # The callers first: a change whose request named no URL notifies only when its
        # caller has one (most merchants have none; then nothing more is read).
        callers = {t.caller_id for t in notable if not t.ipn_url} - parties.keys()
        parties.update(parties_sql.load_parties(conn, callers))
        addressed = [(t, url) for t in notable if (url := t.ipn_url or _caller_url(parties, t))]
        if not addressed:
            return
        party_ids = {t.sender_id for t, _ in addressed} | {t.recipient_id for t, _ in addressed}
        parties.update(parties_sql.load_parties(conn, party_ids - parties.keys()))
        instrument_ids = {t.instrument_id for t, _ in addressed if t.instrument_id}
        instruments.update(sql.load_instruments(conn, instrument_ids - instruments.keys()))
        rows: list[ipn_sql.NewNotification] = []
        for txn, url in addressed:
            notification_id = self.new_id()
            params = transaction_params(
                notification_id,
                txn,
                sender=parties.get(txn.sender_id),
                recipient=parties.get(txn.recipient_id),
                instrument=instruments.get(txn.instrument_id or ""),
            )
            rows.append(
                ipn_sql.NewNotification(
                    notification_id,
                    TRANSACTION_STATUS,
                    txn.id,
                    txn.caller_id,
                    url,
                    params,
                    session.now,
                    refused=refusal_of(url),
                )
            )
        ipn_sql.insert_notifications(conn, rows)

    def token_cancelled(
        self,
        session: LedgerSession,
        token: Token | PaymentInstruction,
        ipn_url: str | None = None,
    ) -> None:
        conn = session.conn
        # An installed payment instruction belongs to the caller alone: it has no sender.
        sender_id = token.sender_id if isinstance(token, Token) else None
        parties = parties_sql.load_parties(conn, {token.caller_id, *filter(None, [sender_id])})
        caller = parties.get(token.caller_id)
        url = ipn_url or (caller.ipn_url if caller is not None else None)
        if not url:
            return
        notification_id = self.new_id()
        sender = None if sender_id is None else parties.get(sender_id)
        params = token_cancellation_params(notification_id, token, sender=sender)
        ipn_sql.insert_notifications(
            conn,
            [
                ipn_sql.NewNotification(
                    notification_id,
                    TOKEN_CANCELLATION,
                    token.id,
                    token.caller_id,
                    url,
                    params,
                    session.now,
                    refused=refusal_of(url),
                )
            ],
        )


def _caller_url(parties: Mapping[str, Party], txn: Transaction) -> str | None:
    caller = parties.get(txn.caller_id)
    return caller.ipn_url if caller is not None else None
