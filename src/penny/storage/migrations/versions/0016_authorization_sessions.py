"""The JSON API's authorization sessions (issue #17).

``api_authorization_sessions``: a merchant's request, through ``POST
/v1/authorization_sessions``, to have a buyer authorize a prepaid or postpaid instrument on the
hosted pages: the signed start URL Penny made for it, the return URL and the two caller
references the pages will give the new tokens (by which the session finds them once the buyer
has completed the pages).

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_authorization_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("caller_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("return_url", sa.Text, nullable=False),
        sa.Column("sender_reference", sa.String(128), nullable=False),
        sa.Column("second_reference", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_authorization_sessions")
