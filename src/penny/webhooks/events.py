"""Events: what they are called, and the outbox that writes them with the change.

An event is written for every change the IPN outbox would notify (a new transaction, whatever
its first status, or a change of status; a token cancelled by ``CancelToken``) of a merchant
that has a webhook endpoint (enabled or not); for a merchant with none, nothing is rendered or
written — one indexed read per batch, as the IPN outbox writes nothing for a merchant without
an IPN URL (docs/decisions.md, #17 webhooks: always storing them cost ~30–45 µs a Pay). Its
type is ``<resource>.<status>`` (:func:`event_type`) and its body the /v1 rendering of the
transaction or token (``data``), encoded once, stored, served by ``/v1/events`` and POSTed
unchanged.

:class:`EventOutbox` is the IPN outbox extended: in the same database transaction as the
change (and the IPN rows) it inserts the events and, for each enabled endpoint of the
merchant that takes the event's type, a delivery: an ``ipn_notifications`` row of kind
``webhook``, delivered and retried by the IPN deliverer. A batch re-run after a conflict
writes its events again with new ids and only the last run commits; a retried request that
is answered from its first transaction changes nothing, so it writes no event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from penny import epoch
from penny.api import models as m
from penny.api.resources import token_out, transaction_out
from penny.domain.model import Operation, PaymentInstruction, Status, Token, Transaction
from penny.domain.parties import random_id
from penny.engine.ledger import LedgerSession
from penny.ipn.outbox import IpnOutbox, refusal_of
from penny.ipn.params import notifies
from penny.services.payments import Known, TransactionChange
from penny.storage import ipn_sql, webhooks_sql
from penny.storage.webhooks_sql import WEBHOOK, StoredEvent

RESOURCES: Final = {
    Operation.pay: "payment",
    Operation.fund_prepaid: "funding",
    Operation.settle_debt: "settlement",
    Operation.write_off_debt: "write_off",
    Operation.refund: "refund",
    Operation.withdraw: "withdrawal",
    # #19's reserves: the hold (reserved, then succeeded once settled, or cancelled) and the
    # charge that settles it (a transaction of its own).
    Operation.reserve: "reserve",
    Operation.settle: "reserve_settlement",
}
OUTCOMES: Final = {
    Status.pending: "pending",
    Status.success: "succeeded",
    Status.failure: "failed",
    Status.reserved: "reserved",
    Status.cancelled: "cancelled",
}
TOKEN_CANCELLED: Final = "token.cancelled"  # noqa: S105  # an event type, not a secret
EVENT_PREFIX: Final = "evt_"
DELIVERY_PREFIX: Final = "whd_"
ID_LENGTH: Final = 24

_ENCODER: Final = msgspec.json.Encoder()


def event_type(txn: Transaction) -> str:
    """``payment.succeeded``, ``refund.failed``, …"""
    return f"{RESOURCES[txn.operation]}.{OUTCOMES[txn.status]}"


def event_body(event_id: str, kind: str, at: int, data: m.Transaction | m.Token) -> bytes:
    """The event's JSON, as stored, served and POSTed."""
    event = m.Event(id=event_id, type=kind, created_at=epoch.to_datetime(at), data=data)  # type: ignore[arg-type]
    return _ENCODER.encode(event)


class EventOutbox(IpnOutbox):
    """The IPN outbox that also writes events and their webhook deliveries."""

    @staticmethod
    def new_event_id() -> str:
        return EVENT_PREFIX + random_id(ID_LENGTH)

    @staticmethod
    def new_delivery_id() -> str:
        return DELIVERY_PREFIX + random_id(ID_LENGTH)

    def transactions_changed(
        self,
        session: LedgerSession,
        changes: Sequence[TransactionChange],
        known: Known | None = None,
    ) -> None:
        super().transactions_changed(session, changes, known)
        notable = [c.transaction for c in changes if notifies(c.before, c.transaction)]
        found = _endpoints(session, {t.caller_id for t in notable})
        if found:
            hooked, now, new = {e.account_id for e in found}, session.now, self.new_event_id
            written = [
                _event(new(), event_type(t), t, now, transaction_out(t))
                for t in notable
                if t.caller_id in hooked
            ]
            self._store(session, written, found)

    def token_cancelled(
        self,
        session: LedgerSession,
        token: Token | PaymentInstruction,
        ipn_url: str | None = None,
    ) -> None:
        super().token_cancelled(session, token, ipn_url)
        # An installed payment instruction has no /v1 resource: only tokens have an event.
        found = _endpoints(session, {token.caller_id}) if isinstance(token, Token) else []
        if found and isinstance(token, Token):
            event = _event(
                self.new_event_id(), TOKEN_CANCELLED, token, session.now, token_out(token)
            )
            self._store(session, [event], found)

    def _store(
        self,
        session: LedgerSession,
        written: list[StoredEvent],
        found: list[webhooks_sql.Endpoint],
    ) -> None:
        """Insert the events, and a delivery for each enabled endpoint that takes one."""
        conn = session.conn
        webhooks_sql.insert_events(conn, written)
        rows = [
            ipn_sql.NewNotification(
                self.new_delivery_id(),
                WEBHOOK,
                event.id,
                event.account_id,
                endpoint.url,
                (("endpoint", endpoint.id), ("event", event.id)),
                session.now,
                refused=refusal_of(endpoint.url),
            )
            for event in written
            for endpoint in found
            if endpoint.account_id == event.account_id and endpoint.takes(event.type)
        ]
        ipn_sql.insert_notifications(conn, rows)


def _endpoints(session: LedgerSession, account_ids: set[str]) -> list[webhooks_sql.Endpoint]:
    """The endpoints of these merchants (none: no query)."""
    return webhooks_sql.endpoints_of(session.conn, account_ids) if account_ids else []


def _event(
    event_id: str, kind: str, subject: Transaction | Token, at: int, data: m.Transaction | m.Token
) -> StoredEvent:
    body = event_body(event_id, kind, at, data)
    return StoredEvent(event_id, subject.caller_id, kind, subject.id, at, body)
