"""The marketplace (issue #19): recipient tokens and what a marketplace Pay records.

* ``recipient_tokens``: a merchant's consent (the Recipient pipeline) that a caller — a
  marketplace application — may name it as the recipient of Pays and take a marketplace fee of
  at most ``max_fixed_fee`` (minor units) plus ``max_variable_fee`` (hundredths of a percent);
  ``recipient_pays_fee`` records whether the merchant agreed to pay Penny's fee;
* ``transactions.recipient_token_id``: the RecipientTokenId a Pay named (a recipient token or
  an installed payment instruction), reported by GetTransaction and GetAccountActivity;
* ``transactions.marketplace_fee``: the caller's fee booked in the Pay's journal (FPS
  ``MarketplaceFees``), 0 when none; ``transactions.fees_paid_by``: who bore Penny's fee
  (FPS ``FPSFeesPaidBy``: ``Recipient`` or ``Caller``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recipient_tokens",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("caller_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("recipient_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("caller_reference", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("max_fixed_fee", sa.BigInteger, nullable=False),
        sa.Column("max_variable_fee", sa.Integer, nullable=False),
        sa.Column("recipient_pays_fee", sa.Boolean, nullable=False),
        sa.Column("refund_token_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False),
        sa.Column("valid_until", sa.BigInteger),
        sa.Column("payment_reason", sa.String(256), nullable=False, server_default=""),
        sa.Column("cancelled_at", sa.BigInteger),
        sa.UniqueConstraint(
            "caller_id", "caller_reference", name="uq_recipient_tokens_caller_reference"
        ),
    )
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("recipient_token_id", sa.String(64)))
        batch.add_column(
            sa.Column("marketplace_fee", sa.BigInteger, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("fees_paid_by", sa.String(9), nullable=False, server_default="Recipient")
        )


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("fees_paid_by")
        batch.drop_column("marketplace_fee")
        batch.drop_column("recipient_token_id")
    op.drop_table("recipient_tokens")
