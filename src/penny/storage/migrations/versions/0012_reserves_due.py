"""Reserves past their timeout, found by index (issue #19).

A Reserve is a transaction with status ``Reserved`` whose ``completes_at`` is when it expires
unless settled or cancelled first; ``Payments.complete_due`` looks them up as it looks up the
pending transactions whose money source has answered (``ix_transactions_due``), by a partial
index of their own. No table changes: Reserve, Settle and Cancel use the columns there are.

Revision ID: 0012
Revises: 0011 (0009 on its own; chained after fps-tokens' 0011 once merged)
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_transactions_reserved_due",
        "transactions",
        ["completes_at"],
        postgresql_where=sa.text("status = 'Reserved'"),
        sqlite_where=sa.text("status = 'Reserved'"),
    )


def downgrade() -> None:
    op.drop_index("ix_transactions_reserved_due", "transactions")
