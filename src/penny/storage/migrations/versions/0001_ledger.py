"""The ledger: accounts with balance counters, journals and their legs.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: A 64-bit id everywhere, but SQLite's own ``INTEGER PRIMARY KEY`` (the rowid) there.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("flags", sa.Integer, nullable=False, server_default="0"),
        sa.Column("debit_limit", sa.BigInteger),
        sa.Column("credit_limit", sa.BigInteger),
        sa.Column("closed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("code", sa.Integer, nullable=False, server_default="0"),
        sa.Column("debits_posted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credits_posted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("debits_pending", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credits_pending", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0"
            " AND debits_pending >= 0 AND credits_pending >= 0",
            name="ck_ledger_accounts_counters_non_negative",
        ),
    )
    op.create_table(
        "ledger_journals",
        sa.Column("id", ID, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(16), nullable=False),
        sa.Column("result", sa.SmallInteger, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("pending_id", sa.BigInteger, sa.ForeignKey("ledger_journals.id")),
        sa.Column("pending_state", sa.SmallInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("resolved_at", sa.BigInteger),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("memo", sa.String(256), nullable=False),
        sa.UniqueConstraint("key", "owner", name="uq_ledger_journals_key_owner"),
    )
    op.create_index(
        "ix_ledger_journals_pending_id",
        "ledger_journals",
        ["pending_id"],
        postgresql_where=sa.text("pending_id IS NOT NULL"),
        sqlite_where=sa.text("pending_id IS NOT NULL"),
    )
    op.create_index(
        "ix_ledger_journals_open_expiry",
        "ledger_journals",
        ["expires_at"],
        postgresql_where=sa.text("pending_state = 1 AND expires_at IS NOT NULL"),
        sqlite_where=sa.text("pending_state = 1 AND expires_at IS NOT NULL"),
    )
    op.create_table(
        "ledger_legs",
        sa.Column(
            "journal_id", sa.BigInteger, sa.ForeignKey("ledger_journals.id"), primary_key=True
        ),
        sa.Column("idx", sa.SmallInteger, primary_key=True),
        sa.Column("account_id", sa.BigInteger, sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount <> 0", name="ck_ledger_legs_amount_not_zero"),
    )
    op.create_index("ix_ledger_legs_account_id", "ledger_legs", ["account_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE ledger_journal_ids AS bigint CACHE 1")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE ledger_journal_ids")
    op.drop_table("ledger_legs")
    op.drop_index("ix_ledger_journals_open_expiry", "ledger_journals")
    op.drop_index("ix_ledger_journals_pending_id", "ledger_journals")
    op.drop_table("ledger_journals")
    op.drop_table("ledger_accounts")
