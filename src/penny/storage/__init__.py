"""Storage adapters: SQLite and PostgreSQL through SQLAlchemy Core, with Alembic migrations.

``database`` opens a store from a URL and hands out read and write transactions; ``schema``
describes the tables for queries; ``migrations`` creates and evolves them; ``ledger_sql`` loads
a batch's working set and writes back what the ledger core decided.
"""
