"""The JSON API's idempotency keys (issue #17).

``api_idempotency_keys``: per caller and ``Idempotency-Key``, the hash of the first request's
method, path and decoded body and the HTTP status and body of its response, so a retry with the
same key and body is answered with the same response (errors included) and a retry with
another body is refused. Rows are kept at least 24 hours (purged by age, ``created_at``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_idempotency_keys",
        # The key first: a batch looks its keys up by key alone (the index's first column).
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("caller_id", sa.String(32), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_api_idempotency_keys_created_at", "api_idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_api_idempotency_keys_created_at", "api_idempotency_keys")
    op.drop_table("api_idempotency_keys")
