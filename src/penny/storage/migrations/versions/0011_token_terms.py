"""SingleUse, MultiUse and Recurring sender tokens (issue #19).

``token_terms``: per authorization token (a token on an instrument of kind ``authorization``),
what its kind adds to the instrument's terms: the transaction amount and how it bounds each
payment, the SingleUse ``reserve`` flag, the Recurring period, a MultiUse token's two usage
limits (type, value in minor units or a count, period as FPS writes it) and the token an
EditToken replaced. The instrument and the token themselves live in ``instruments`` and
``tokens`` as before (new ``kind`` values only: no change to those tables).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_terms",
        sa.Column("token_id", sa.String(64), sa.ForeignKey("tokens.id"), primary_key=True),
        sa.Column("transaction_amount", sa.BigInteger),
        sa.Column("amount_type", sa.String(8)),
        sa.Column("reserve", sa.Boolean, nullable=False),
        sa.Column("recurring_period", sa.String(32)),
        sa.Column("usage_limit1_type", sa.String(8)),
        sa.Column("usage_limit1_value", sa.BigInteger),
        sa.Column("usage_limit1_period", sa.String(32)),
        sa.Column("usage_limit2_type", sa.String(8)),
        sa.Column("usage_limit2_value", sa.BigInteger),
        sa.Column("usage_limit2_period", sa.String(32)),
        sa.Column("old_token_id", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("token_terms")
