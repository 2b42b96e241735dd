"""GateKeeper: scripts on tokens and instruments, installed payment instructions (issue #7).

* ``tokens.script``: the GateKeeper text of a pipeline token (NULL for tokens issued before
  this revision; their script is derived from the instrument when needed);
* ``payment_instructions``: tokens installed with ``InstallPaymentInstruction`` (a script and
  FPS's token metadata, no instrument);
* ``gatekeeper_usage``: per token and usage limit, the amount and count used in the current
  window and in the previous one, updated in the same transaction as the payment.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("script", sa.Text))
    op.create_table(
        "payment_instructions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("caller_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("caller_reference", sa.String(128), nullable=False),
        sa.Column("token_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("script", sa.Text, nullable=False),
        sa.Column("friendly_name", sa.String(128), nullable=False, server_default=""),
        sa.Column("payment_reason", sa.String(256), nullable=False, server_default=""),
        sa.Column("cancelled_at", sa.BigInteger),
        sa.UniqueConstraint(
            "caller_id", "caller_reference", name="uq_payment_instructions_caller_reference"
        ),
    )
    op.create_table(
        "gatekeeper_usage",
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("limit_index", sa.Integer, primary_key=True),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("last_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("currency", sa.String(3), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gatekeeper_usage")
    op.drop_table("payment_instructions")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("script")
