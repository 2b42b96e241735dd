"""Alembic environment: runs migrations on the connection Penny hands over.

Penny never lets Alembic open its own connection: :func:`penny.storage.database.upgrade`
passes one in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from penny.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
