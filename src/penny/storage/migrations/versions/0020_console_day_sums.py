"""The merchant console's daily sums, kept by every write (issue #16).

``console_days`` was a cache of finished days, filled the first time a dashboard read them: a
period's first render aggregated every transaction of its days. From this revision on the same
rows (per merchant, UTC day and item: an operation's successful transactions received that day,
``Δliability`` and ``Δdebt``) are kept up to date by each insert and update of
``transactions`` (:mod:`penny.storage.console_days_sql`), for every day. The upgrade drops the
old cache rows (their ``""`` markers mean nothing now) and computes every day's sums from
``transactions``; the downgrade empties the table (a cache again: nothing is lost).

Revision ID: 0020
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from penny.storage.console_days_sql import rebuild

revision = "0020"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    rebuild(op.get_bind())


def downgrade() -> None:
    op.execute("DELETE FROM console_days")
