"""Penny's outbound signing keys (RSA) for Co-Branded UI return URLs and IPNs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        # 'current' on the key Penny signs with; NULL on retired keys (still verifiable).
        sa.Column("slot", sa.String(16), nullable=True, unique=True),
        # The PKCS#8 PEM private key sealed with the server key (AES-GCM).
        sa.Column("private_key", sa.LargeBinary, nullable=False),
        sa.Column("certificate_pem", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
