"""The account site (issue #16): console sessions, the log of console actions, and the
indexes its pages read through.

* ``console_sessions``: a signed-in browser of the account site (``/account``): the party, who
  signed in (a merchant's access key id, a buyer's email), the CSRF token; the id is stored
  hashed, like the hosted pages' sessions;
* ``console_actions``: every change made from the console (a refund, a key created or
  revoked, a token cancelled): who, what, on which object, when;
* ``ix_transactions_caller_received_id``: a merchant's transactions newest first, for keyset
  pagination (``received_at`` then ``id``, so a page boundary inside one microsecond is exact).
  It replaces ``ix_transactions_caller_received`` (its prefix, which serves nothing the new one
  does not), so a Pay still writes as many index entries for its caller as before;
* ``ix_transactions_instrument_received``: an instrument's history, for the buyer's pages;
* ``ix_tokens_sender``: the authorizations a buyer gave.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("party_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_console_sessions_actor", "console_sessions", ["actor"])
    op.create_table(
        "console_actions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("party_id", sa.String(32), sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("detail", sa.String(512), nullable=False, server_default=""),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_console_actions_party", "console_actions", ["party_id", "id"])
    op.create_index(
        "ix_transactions_caller_received_id", "transactions", ["caller_id", "received_at", "id"]
    )
    op.drop_index("ix_transactions_caller_received", "transactions")
    op.create_index(
        "ix_transactions_instrument_received",
        "transactions",
        ["instrument_id", "received_at", "id"],
    )
    op.create_index("ix_tokens_sender", "tokens", ["sender_id"])


def downgrade() -> None:
    op.drop_index("ix_tokens_sender", "tokens")
    op.drop_index("ix_transactions_instrument_received", "transactions")
    op.create_index("ix_transactions_caller_received", "transactions", ["caller_id", "received_at"])
    op.drop_index("ix_transactions_caller_received_id", "transactions")
    op.drop_table("console_actions")
    op.drop_table("console_sessions")
