"""Co-Branded UI: buyer sign-in sessions and pipeline state (issue #5).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A browser's session: only the SHA-256 of its random cookie value is stored.
    op.create_table(
        "cbui_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("party_id", sa.String(32), nullable=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    # One buyer's pass through a pipeline, tied to the session that started it.
    op.create_table(
        "cbui_pipelines",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("session_hash", sa.String(64), nullable=False, index=True),
        sa.Column("caller_id", sa.String(32), nullable=False),
        sa.Column("pipeline_name", sa.String(32), nullable=False),
        # The validated start parameters (JSON), replayed on confirm.
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("payment_method_id", sa.String(32), nullable=True),
        # open, finished; result_url is the signed return URL once finished.
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("result_url", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    # Failed sign-ins, by email and by client address, for the rate limit.
    op.create_table(
        "cbui_signin_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_cbui_signin_failures_subject", "cbui_signin_failures", ["subject", "at"])


def downgrade() -> None:
    op.drop_index("ix_cbui_signin_failures_subject", "cbui_signin_failures")
    op.drop_table("cbui_signin_failures")
    op.drop_table("cbui_pipelines")
    op.drop_table("cbui_sessions")
