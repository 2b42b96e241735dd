"""SQL for the marketplace (issue #19): the recipient tokens merchants give marketplace callers.

Table ``recipient_tokens`` (migration 0013): one row per token the Recipient pipeline issued,
unique per caller and caller reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sqlalchemy import Connection, insert, update

from penny.domain.model import RecipientToken, TokenStatus
from penny.storage import payments_sql, schema
from penny.storage.records import Stored

recipient_tokens = schema.recipient_tokens


_TOKEN: Final = Stored(RecipientToken, enums={"status": TokenStatus}, flags=("recipient_pays_fee",))
_TOKENS: Final = payments_sql.CallerRecords(recipient_tokens, _TOKEN.record)


def insert_recipient_token(conn: Connection, token: RecipientToken) -> None:
    conn.execute(insert(recipient_tokens).values(**_TOKEN.row(token)))


def load_recipient_tokens(conn: Connection, ids: Iterable[str]) -> dict[str, RecipientToken]:
    return _TOKENS.with_ids(conn, ids)


def recipient_token_by_reference(
    conn: Connection, caller_id: str, reference: str
) -> RecipientToken | None:
    return _TOKENS.by_reference(conn, caller_id, reference)


def cancel_recipient_token(conn: Connection, token_id: str, now: int) -> None:
    conn.execute(
        update(recipient_tokens)
        .where(recipient_tokens.c.id == token_id)
        .values(status=TokenStatus.inactive.value, cancelled_at=now)
    )
