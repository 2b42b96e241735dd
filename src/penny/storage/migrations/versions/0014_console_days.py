"""The merchant console's cache of finished days (issue #16).

``console_days``: per merchant and UTC day, the dashboard's figures of a day that can no longer
change (it ended more than five days ago: every transaction received or completed in it is
final): the successful transactions received that day by operation (amount, fees, count) and
the change of the prepaid liability and the outstanding debt made by those completed that day.
The dashboard reads finished days from here and computes only the recent ones from
``transactions``, so its cost does not grow with the merchant's volume over 90 days. A cache:
deleting its rows loses nothing. No index is added to ``transactions`` (no cost to a Pay).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_days",
        sa.Column("party_id", sa.String(32), sa.ForeignKey("parties.id"), primary_key=True),
        sa.Column("day", sa.BigInteger, primary_key=True),
        sa.Column("item", sa.String(16), primary_key=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("fees", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("console_days")
