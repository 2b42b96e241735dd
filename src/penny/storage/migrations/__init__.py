"""Alembic migrations of Penny's schema (run by ``penny db upgrade`` and on start-up)."""
