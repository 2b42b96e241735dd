"""Aggregated Payments: instruments, tokens, transactions, system accounts, sandbox settings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create_system_accounts()
    _create_settings()
    _create_instruments()
    _create_tokens()
    _create_transactions()


def _create_system_accounts() -> None:
    """The ledger account behind each named system account, per currency."""
    op.create_table(
        "system_accounts",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column(
            "ledger_account_id",
            sa.BigInteger,
            sa.ForeignKey("ledger_accounts.id"),
            nullable=False,
        ),
    )


def _create_settings() -> None:
    """Name/value settings (the sandbox settings among them)."""
    op.create_table(
        "settings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def _create_instruments() -> None:
    """Payment instruments and their indexes by recipient and sender."""
    op.create_table(
        "instruments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sender_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("recipient_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column(
            "ledger_account_id",
            sa.BigInteger,
            sa.ForeignKey("ledger_accounts.id"),
            nullable=False,
        ),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False),
        sa.Column("valid_until", sa.BigInteger),
        sa.Column("funding_limit", sa.BigInteger),
        sa.Column("funded_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credit_limit", sa.BigInteger),
        sa.Column("global_amount_limit", sa.BigInteger),
        sa.Column("charged_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("min_charge", sa.BigInteger),
        sa.Column("max_charge", sa.BigInteger),
        sa.Column("settlement_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("payment_reason", sa.String(256), nullable=False, server_default=""),
    )
    op.create_index("ix_instruments_recipient", "instruments", ["recipient_id"])
    op.create_index("ix_instruments_sender", "instruments", ["sender_id"])


def _create_tokens() -> None:
    """Tokens and their index by instrument."""
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("instrument_id", sa.String(64), sa.ForeignKey("instruments.id"), nullable=False),
        sa.Column("caller_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("sender_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("caller_reference", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("payment_method_id", sa.String(32)),
        sa.Column("friendly_name", sa.String(128), nullable=False, server_default=""),
        sa.Column("payment_reason", sa.String(256), nullable=False, server_default=""),
        sa.Column("cancelled_at", sa.BigInteger),
        sa.UniqueConstraint("caller_id", "caller_reference", name="uq_tokens_caller_reference"),
    )
    op.create_index("ix_tokens_instrument", "tokens", ["instrument_id"])


def _create_transactions() -> None:
    """Transactions and their indexes (by party and time, parent, due Pending ones)."""
    op.create_table(
        "transactions",
        sa.Column("id", sa.String(35), primary_key=True),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("caller_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("caller_reference", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("sender_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("recipient_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("fees", sa.BigInteger, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("status_code", sa.String(64), nullable=False),
        sa.Column("status_message", sa.String(512), nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("completed_at", sa.BigInteger),
        sa.Column("instrument_id", sa.String(64), sa.ForeignKey("instruments.id")),
        sa.Column("sender_token_id", sa.String(64), sa.ForeignKey("tokens.id")),
        sa.Column("parent_id", sa.String(35), sa.ForeignKey("transactions.id")),
        sa.Column("refunded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("journal_id", sa.BigInteger, sa.ForeignKey("ledger_journals.id")),
        sa.Column("pending_journal_id", sa.BigInteger, sa.ForeignKey("ledger_journals.id")),
        sa.Column("completes_at", sa.BigInteger),
        sa.Column("completes_ok", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("settlements_before", sa.Integer),
        sa.Column("sender_description", sa.String(160), nullable=False, server_default=""),
        sa.Column("caller_description", sa.String(160), nullable=False, server_default=""),
        sa.Column("ipn_url", sa.String(2048)),
        sa.UniqueConstraint(
            "caller_id", "caller_reference", name="uq_transactions_caller_reference"
        ),
    )
    op.create_index("ix_transactions_caller_received", "transactions", ["caller_id", "received_at"])
    op.create_index("ix_transactions_sender_received", "transactions", ["sender_id", "received_at"])
    op.create_index(
        "ix_transactions_recipient_received", "transactions", ["recipient_id", "received_at"]
    )
    op.create_index("ix_transactions_parent", "transactions", ["parent_id"])
    op.create_index(
        "ix_transactions_due",
        "transactions",
        ["completes_at"],
        postgresql_where=sa.text("status = 'Pending'"),
        sqlite_where=sa.text("status = 'Pending'"),
    )


def downgrade() -> None:
    op.drop_table("transactions")
    op.drop_table("tokens")
    op.drop_table("instruments")
    op.drop_table("settings")
    op.drop_table("system_accounts")
