"""Events and webhook endpoints (issue #17).

``events`` holds one row per event (``payment.succeeded``, ``refund.succeeded``,
``token.cancelled``, …; ``seq`` orders them), written in the same database transaction as the
change it reports; ``body`` is the event's JSON exactly as it is served at
``/v1/events/{id}`` and POSTed to endpoints. ``webhook_endpoints`` holds each merchant's
endpoints: URL, the ``whsec_`` secret sealed with the server key, the event types it takes (a
JSON list; empty: all) and whether it is enabled. Deliveries are rows of ``ipn_notifications``
of kind ``webhook`` (the same outbox and retries as IPN).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        # The order they were written in (the list's order and its cursor), then the id.
        sa.Column("seq", ID, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_events_account", "events", ["account_id", "seq"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.LargeBinary, nullable=False),
        sa.Column("event_types", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("description", sa.String(160), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_webhook_endpoints_account", "webhook_endpoints", ["account_id"])
    op.create_index(
        "ix_ipn_notifications_subject", "ipn_notifications", ["subject_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_ipn_notifications_subject", "ipn_notifications")
    op.drop_index("ix_webhook_endpoints_account", "webhook_endpoints")
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_events_account", "events")
    op.drop_table("events")
