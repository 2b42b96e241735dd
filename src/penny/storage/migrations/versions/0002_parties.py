"""Parties (business and personal accounts), their API keys and payment methods.

Emails are stored trimmed and lower-cased, so the unique constraint is case-insensitive. API
secrets are stored only AES-GCM encrypted; card and bank account numbers only as last four
digits and a keyed fingerprint.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: A business has its three merchant ledger accounts; a person a balance and a password.
_KIND_SHAPE = (
    "(kind = 'business' AND payable_account_id IS NOT NULL"
    " AND prepaid_issued_account_id IS NOT NULL AND credit_extended_account_id IS NOT NULL)"
    " OR (kind = 'personal' AND balance_account_id IS NOT NULL AND password_hash IS NOT NULL)"
)


def _ledger_account(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, sa.ForeignKey("ledger_accounts.id"))


def upgrade() -> None:
    op.create_table(
        "parties",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(256)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("ipn_url", sa.String(2048)),
        _ledger_account("payable_account_id"),
        _ledger_account("prepaid_issued_account_id"),
        _ledger_account("credit_extended_account_id"),
        _ledger_account("balance_account_id"),
        sa.UniqueConstraint("email", name="uq_parties_email"),
        sa.CheckConstraint("kind IN ('business', 'personal')", name="ck_parties_kind"),
        sa.CheckConstraint(_KIND_SHAPE, name="ck_parties_kind_shape"),
    )
    op.create_table(
        "api_keys",
        sa.Column("access_key_id", sa.String(32), primary_key=True),
        sa.Column("party_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("secret_ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
    )
    op.create_index("ix_api_keys_party_id", "api_keys", ["party_id"])
    op.create_table(
        "payment_methods",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("party_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("brand", sa.String(16)),
        sa.Column("last4", sa.String(4)),
        sa.Column("exp_month", sa.SmallInteger),
        sa.Column("exp_year", sa.SmallInteger),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("behaviour", sa.String(16), nullable=False),
        sa.Column("routing_last4", sa.String(4)),
        sa.Column("holder_name", sa.String(128)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("party_id", "fingerprint", name="uq_payment_methods_fingerprint"),
        sa.CheckConstraint("kind IN ('card', 'bank', 'balance')", name="ck_payment_methods_kind"),
        sa.CheckConstraint(
            "behaviour IN ('succeed', 'decline', 'fail_later')",
            name="ck_payment_methods_behaviour",
        ),
    )
    op.create_index("ix_payment_methods_party_id", "payment_methods", ["party_id"])


def downgrade() -> None:
    op.drop_index("ix_payment_methods_party_id", "payment_methods")
    op.drop_table("payment_methods")
    op.drop_index("ix_api_keys_party_id", "api_keys")
    op.drop_table("api_keys")
    op.drop_table("parties")
