"""IPN: the transactional outbox of notifications and their delivery attempts (issue #6).

``ipn_notifications`` holds one row per notification, written in the same database
transaction as the change it reports. A row is due when ``next_attempt_at`` has passed (NULL
once it is delivered or failed); a worker claims it by moving ``next_attempt_at`` to the end of
its lease and setting ``claim``, so a crashed worker's claim simply runs out.
``ipn_attempts`` keeps every attempt: when, how long, the HTTP status or the error.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ipn_notifications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claim", sa.String(32)),
        sa.Column("delivered_at", sa.BigInteger),
        sa.Column("last_error", sa.String(512)),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'failed')", name="ck_ipn_notifications_state"
        ),
    )
    op.create_index("ix_ipn_notifications_due", "ipn_notifications", ["next_attempt_at"])
    op.create_index(
        "ix_ipn_notifications_account", "ipn_notifications", ["account_id", "created_at"]
    )
    op.create_index("ix_ipn_notifications_state", "ipn_notifications", ["state", "created_at"])
    op.create_table(
        "ipn_attempts",
        sa.Column(
            "notification_id",
            sa.String(32),
            sa.ForeignKey("ipn_notifications.id"),
            primary_key=True,
        ),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("worker", sa.String(64), nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("duration_us", sa.BigInteger),
        sa.Column("http_status", sa.Integer),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.String(512)),
    )


def downgrade() -> None:
    op.drop_table("ipn_attempts")
    op.drop_index("ix_ipn_notifications_state", "ipn_notifications")
    op.drop_index("ix_ipn_notifications_account", "ipn_notifications")
    op.drop_index("ix_ipn_notifications_due", "ipn_notifications")
    op.drop_table("ipn_notifications")
