"""Table descriptions used to build queries. The DDL itself lives in the Alembic migrations.

Amounts and times are 64-bit integers (minor units; microseconds since the epoch). A leg's
``amount`` is signed: positive debits, negative credits.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
)

metadata = MetaData()

accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("flags", Integer, nullable=False),
    Column("debit_limit", BigInteger),
    Column("credit_limit", BigInteger),
    Column("closed", Boolean, nullable=False),
    Column("code", Integer, nullable=False),
    Column("debits_posted", BigInteger, nullable=False),
    Column("credits_posted", BigInteger, nullable=False),
    Column("debits_pending", BigInteger, nullable=False),
    Column("credits_pending", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

journals = Table(
    "ledger_journals",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner", String(64), nullable=False),
    Column("key", String(128), nullable=False),
    Column("fingerprint", LargeBinary(16), nullable=False),
    Column("result", SmallInteger, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("pending_id", BigInteger, ForeignKey("ledger_journals.id")),
    Column("pending_state", SmallInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("resolved_at", BigInteger),
    Column("code", Integer, nullable=False),
    Column("memo", String(256), nullable=False),
)

legs = Table(
    "ledger_legs",
    metadata,
    Column("journal_id", BigInteger, ForeignKey("ledger_journals.id"), primary_key=True),
    Column("idx", SmallInteger, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
)
