"""Every table Penny stores, declared once for building queries; the DDL lives in the migrations.

The Alembic versions (``storage/migrations/versions``) are the only source of DDL: they create
and change the tables. This module describes the tables the migrations leave, column by column
(type, nullability, primary key, foreign keys), and every ``*_sql`` module builds its queries
from these :class:`~sqlalchemy.Table` objects; there is no other ``MetaData``.
``tests/test_storage_schema.py`` runs the migrations on both stores, reflects the result and
fails when it and this module disagree. Indexes, unique and check constraints and server
defaults are the migrations' alone: queries do not need them.

Amounts and times are 64-bit integers (minor units; microseconds since the epoch). A leg's
``amount`` is signed: positive debits, negative credits.
"""

from __future__ import annotations

from typing import Final

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
    Text,
)

metadata: Final = MetaData()

#: A 64-bit id the store assigns; SQLite assigns only to an ``INTEGER PRIMARY KEY``.
_ID: Final = BigInteger().with_variant(Integer(), "sqlite")


def _ledger_account(name: str, *, nullable: bool = True) -> Column[int]:
    return Column(name, BigInteger, ForeignKey("ledger_accounts.id"), nullable=nullable)


def _party(name: str) -> Column[str]:
    return Column(name, String(32), ForeignKey("parties.id"), nullable=False)


# -- the ledger (migration 0001) ---------------------------------------------------------------

accounts: Final = Table(
    "ledger_accounts",
    metadata,
    Column("id", _ID, primary_key=True),
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

journals: Final = Table(
    "ledger_journals",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=False),
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

legs: Final = Table(
    "ledger_legs",
    metadata,
    Column("journal_id", BigInteger, ForeignKey("ledger_journals.id"), primary_key=True),
    Column("idx", SmallInteger, primary_key=True),
    _ledger_account("account_id", nullable=False),
    Column("amount", BigInteger, nullable=False),
)

# -- parties, API keys, payment methods (migration 0002) ---------------------------------------

parties: Final = Table(
    "parties",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    Column("email", String(254), nullable=False),
    Column("password_hash", String(256)),
    Column("created_at", BigInteger, nullable=False),
    Column("ipn_url", String(2048)),
    _ledger_account("payable_account_id"),
    _ledger_account("prepaid_issued_account_id"),
    _ledger_account("credit_extended_account_id"),
    _ledger_account("balance_account_id"),
)

api_keys: Final = Table(
    "api_keys",
    metadata,
    Column("access_key_id", String(32), primary_key=True),
    _party("party_id"),
    Column("secret_ciphertext", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
)

payment_methods: Final = Table(
    "payment_methods",
    metadata,
    Column("id", String(32), primary_key=True),
    _party("party_id"),
    Column("kind", String(16), nullable=False),
    Column("brand", String(16)),
    Column("last4", String(4)),
    Column("exp_month", SmallInteger),
    Column("exp_year", SmallInteger),
    Column("fingerprint", String(64)),
    Column("behaviour", String(16), nullable=False),
    Column("routing_last4", String(4)),
    Column("holder_name", String(128)),
    Column("created_at", BigInteger, nullable=False),
)

# -- payments (migration 0003; tokens.script from 0007) ----------------------------------------

system_accounts: Final = Table(
    "system_accounts",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("currency", String(3), primary_key=True),
    _ledger_account("ledger_account_id", nullable=False),
)

settings: Final = Table(
    "settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

instruments: Final = Table(
    "instruments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    _party("sender_id"),
    _party("recipient_id"),
    Column("currency", String(3), nullable=False),
    _ledger_account("ledger_account_id", nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_until", BigInteger),
    Column("funding_limit", BigInteger),
    Column("funded_total", BigInteger, nullable=False),
    Column("credit_limit", BigInteger),
    Column("global_amount_limit", BigInteger),
    Column("charged_total", BigInteger, nullable=False),
    Column("min_charge", BigInteger),
    Column("max_charge", BigInteger),
    Column("settlement_count", Integer, nullable=False),
    Column("payment_reason", String(256), nullable=False),
)

tokens: Final = Table(
    "tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("instrument_id", String(64), ForeignKey("instruments.id"), nullable=False),
    _party("caller_id"),
    _party("sender_id"),
    Column("caller_reference", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("payment_method_id", String(32)),
    Column("friendly_name", String(128), nullable=False),
    Column("payment_reason", String(256), nullable=False),
    Column("cancelled_at", BigInteger),
    Column("script", Text),
)

transactions: Final = Table(
    "transactions",
    metadata,
    Column("id", String(35), primary_key=True),
    Column("operation", String(16), nullable=False),
    _party("caller_id"),
    Column("caller_reference", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    _party("sender_id"),
    _party("recipient_id"),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fees", BigInteger, nullable=False),
    Column("method", String(8), nullable=False),
    Column("status", String(12), nullable=False),
    Column("status_code", String(64), nullable=False),
    Column("status_message", String(512), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger),
    Column("instrument_id", String(64), ForeignKey("instruments.id")),
    Column("sender_token_id", String(64), ForeignKey("tokens.id")),
    Column("parent_id", String(35), ForeignKey("transactions.id")),
    Column("refunded", BigInteger, nullable=False),
    Column("journal_id", BigInteger, ForeignKey("ledger_journals.id")),
    Column("pending_journal_id", BigInteger, ForeignKey("ledger_journals.id")),
    Column("completes_at", BigInteger),
    Column("completes_ok", Boolean, nullable=False),
    Column("settlements_before", Integer),
    Column("sender_description", String(160), nullable=False),
    Column("caller_description", String(160), nullable=False),
    Column("ipn_url", String(2048)),
    # the marketplace (migration 0013)
    Column("recipient_token_id", String(64)),
    Column("marketplace_fee", BigInteger, nullable=False),
    Column("fees_paid_by", String(9), nullable=False),
)

# -- outbound signing keys (migration 0004) ----------------------------------------------------

signing_keys: Final = Table(
    "signing_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("slot", String(16)),
    Column("private_key", LargeBinary, nullable=False),
    Column("certificate_pem", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# -- the Co-Branded UI (migration 0005) --------------------------------------------------------

cbui_sessions: Final = Table(
    "cbui_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("party_id", String(32)),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

cbui_pipelines: Final = Table(
    "cbui_pipelines",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("session_hash", String(64), nullable=False),
    Column("caller_id", String(32), nullable=False),
    Column("pipeline_name", String(32), nullable=False),
    Column("params", Text, nullable=False),
    Column("payment_method_id", String(32)),
    Column("state", String(16), nullable=False),
    Column("result_url", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

cbui_signin_failures: Final = Table(
    "cbui_signin_failures",
    metadata,
    Column("id", _ID, primary_key=True),
    Column("subject", String(300), nullable=False),
    Column("at", BigInteger, nullable=False),
)

# -- the IPN outbox (migration 0006) -----------------------------------------------------------

ipn_notifications: Final = Table(
    "ipn_notifications",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("account_id", String(32), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("params", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("next_attempt_at", BigInteger),
    Column("attempts", Integer, nullable=False),
    Column("claim", String(32)),
    Column("delivered_at", BigInteger),
    Column("last_error", String(512)),
)

ipn_attempts: Final = Table(
    "ipn_attempts",
    metadata,
    Column("notification_id", String(32), ForeignKey("ipn_notifications.id"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("worker", String(64), nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger),
    Column("duration_us", BigInteger),
    Column("http_status", Integer),
    Column("outcome", String(16), nullable=False),
    Column("error", String(512)),
)

# -- GateKeeper (migration 0007) ---------------------------------------------------------------

payment_instructions: Final = Table(
    "payment_instructions",
    metadata,
    Column("id", String(64), primary_key=True),
    _party("caller_id"),
    Column("caller_reference", String(128), nullable=False),
    Column("token_type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("script", Text, nullable=False),
    Column("friendly_name", String(128), nullable=False),
    Column("payment_reason", String(256), nullable=False),
    Column("cancelled_at", BigInteger),
)

gatekeeper_usage: Final = Table(
    "gatekeeper_usage",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("limit_index", Integer, primary_key=True),
    Column("window_start", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("last_amount", BigInteger, nullable=False),
    Column("last_count", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
)

# -- the account site (migration 0008) ------------------------------------------------------------

console_sessions: Final = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    _party("party_id"),
    Column("actor", String(254), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

console_actions: Final = Table(
    "console_actions",
    metadata,
    Column("id", _ID, primary_key=True),
    _party("party_id"),
    Column("actor", String(254), nullable=False),
    Column("action", String(32), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("detail", String(512), nullable=False, server_default=""),
    Column("at", BigInteger, nullable=False),
)

# -- the JSON API (migration 0009) ------------------------------------------------------------

api_idempotency_keys: Final = Table(
    "api_idempotency_keys",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("caller_id", String(32), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# -- SingleUse, MultiUse and Recurring sender tokens (migration 0011, issue #19) -----------------

token_terms: Final = Table(
    "token_terms",
    metadata,
    Column("token_id", String(64), ForeignKey("tokens.id"), primary_key=True),
    Column("transaction_amount", BigInteger),
    Column("amount_type", String(8)),
    Column("reserve", Boolean, nullable=False),
    Column("recurring_period", String(32)),
    Column("usage_limit1_type", String(8)),
    Column("usage_limit1_value", BigInteger),
    Column("usage_limit1_period", String(32)),
    Column("usage_limit2_type", String(8)),
    Column("usage_limit2_value", BigInteger),
    Column("usage_limit2_period", String(32)),
    Column("old_token_id", String(64)),
)

# -- the console's daily sums (migration 0014; kept by every write since 0020) ----------------

console_days: Final = Table(
    "console_days",
    metadata,
    Column("party_id", String(32), ForeignKey("parties.id"), primary_key=True),
    Column("day", BigInteger, primary_key=True),
    #: An operation (its successful transactions received that day), ``Δliability`` or
    #: ``Δdebt`` (the change made by transactions completed that day); see
    #: :mod:`penny.storage.console_days_sql`.
    Column("item", String(16), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Column("fees", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
)

# -- the JSON API's authorization sessions (migration 0016) -----------------------------------

api_authorization_sessions: Final = Table(
    "api_authorization_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("caller_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("url", Text, nullable=False),
    Column("return_url", Text, nullable=False),
    Column("sender_reference", String(128), nullable=False),
    Column("second_reference", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# -- the marketplace (migration 0013) ----------------------------------------------------------

recipient_tokens: Final = Table(
    "recipient_tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    _party("caller_id"),
    _party("recipient_id"),
    Column("caller_reference", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("max_fixed_fee", BigInteger, nullable=False),
    Column("max_variable_fee", Integer, nullable=False),
    Column("recipient_pays_fee", Boolean, nullable=False),
    Column("refund_token_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_until", BigInteger),
    Column("payment_reason", String(256), nullable=False),
    Column("cancelled_at", BigInteger),
)

# -- events and webhook endpoints (migration 0017) ------------------------------------------------

events: Final = Table(
    "events",
    metadata,
    Column("seq", _ID, primary_key=True),
    Column("id", String(32), nullable=False),
    Column("account_id", String(32), nullable=False),
    Column("type", String(40), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
)

webhook_endpoints: Final = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    _party("account_id"),
    Column("url", String(2048), nullable=False),
    Column("secret", LargeBinary, nullable=False),
    Column("event_types", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("description", String(160), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
