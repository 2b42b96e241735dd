"""SQL for GateKeeper: installed payment instructions and per-token usage counters.

Tables (created by migration 0007): ``payment_instructions`` (tokens installed with
``InstallPaymentInstruction``) and ``gatekeeper_usage`` (one row per token and usage limit:
the current window's amount and count and the previous window's). Usage rows are read under
the payments batch's key lock on the token (``LedgerSession.lock_keys``), so two processes
never add to the same counter from the same old value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from sqlalchemy import (
    Connection,
    and_,
    insert,
    select,
    update,
)

from penny.domain.model import PaymentInstruction, TokenFilter, TokenStatus
from penny.gatekeeper.usage import UsageRecord
from penny.storage import payments_sql, schema
from penny.storage.records import Stored

payment_instructions = schema.payment_instructions
gatekeeper_usage = schema.gatekeeper_usage


_INSTRUCTION: Final = Stored(PaymentInstruction, enums={"status": TokenStatus})
_INSTRUCTIONS: Final = payments_sql.CallerRecords(payment_instructions, _INSTRUCTION.record)


# -- payment instructions ------------------------------------------------------------------


def insert_instruction(conn: Connection, instruction: PaymentInstruction) -> None:
    conn.execute(insert(payment_instructions).values(**_INSTRUCTION.row(instruction)))


def load_instructions(
    conn: Connection, ids: Iterable[str], *, lock: bool = False
) -> dict[str, PaymentInstruction]:
    return _INSTRUCTIONS.with_ids(conn, ids, lock=lock)


def instruction_by_reference(
    conn: Connection, caller_id: str, reference: str
) -> PaymentInstruction | None:
    return _INSTRUCTIONS.by_reference(conn, caller_id, reference)


def find_instructions(
    conn: Connection, caller_id: str, only: TokenFilter
) -> list[PaymentInstruction]:
    rows = payments_sql.find_owned(conn, payment_instructions, caller_id, only)
    return [_INSTRUCTION.record(row) for row in rows]


def set_instruction_status(conn: Connection, instruction: PaymentInstruction) -> None:
    conn.execute(
        update(payment_instructions)
        .where(payment_instructions.c.id == instruction.id)
        .values(status=instruction.status.value, cancelled_at=instruction.cancelled_at)
    )


# -- usage ---------------------------------------------------------------------------------

UsageKey = tuple[str, int]


def load_usage(conn: Connection, token_ids: Iterable[str]) -> dict[UsageKey, UsageRecord]:
    wanted = sorted(set(token_ids))
    if not wanted:
        return {}
    rows = conn.execute(select(gatekeeper_usage).where(gatekeeper_usage.c.token_id.in_(wanted)))
    return {
        (row.token_id, int(row.limit_index)): UsageRecord(
            int(row.window_start),
            int(row.amount),
            int(row._mapping["count"]),
            int(row.last_amount),
            int(row.last_count),
            str(row.currency),
        )
        for row in rows
    }


def save_usage(
    conn: Connection, changed: Mapping[UsageKey, UsageRecord], existing: Iterable[UsageKey]
) -> None:
    """Write the changed records: update the rows that existed when loaded, insert the rest."""
    if not changed:
        return
    had = set(existing)
    fresh = []
    for (token_id, index), record in sorted(changed.items()):
        values = {
            "window_start": record.window_start,
            "amount": record.amount,
            "count": record.count,
            "last_amount": record.last_amount,
            "last_count": record.last_count,
            "currency": record.currency,
        }
        if (token_id, index) in had:
            conn.execute(
                update(gatekeeper_usage)
                .where(
                    and_(
                        gatekeeper_usage.c.token_id == token_id,
                        gatekeeper_usage.c.limit_index == index,
                    )
                )
                .values(**values)
            )
        else:
            fresh.append({"token_id": token_id, "limit_index": index, **values})
    if fresh:
        conn.execute(insert(gatekeeper_usage), fresh)
