"""``storage/schema.py`` describes exactly what the migrations make, on both stores (issue #15).

The migrations are the only DDL; the storage modules build their queries from
:mod:`penny.storage.schema`. This test runs every migration on a new store, reflects the tables
it made and compares them with the declarations: the same tables, the same columns in the same
order, the same type as the store spells it (``VARCHAR(32)``, ``BIGINT``, ``BYTEA``…: the
declared type compiled for the store's dialect against the reflected one), the same
nullability, primary key and foreign keys. A column added by a migration but not declared, or
declared with another type, fails here rather than in a query.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Table, inspect
from sqlalchemy.engine import Dialect

from penny import storage
from penny.storage import schema
from penny.storage.database import Database, open_database

#: Alembic's own table, not Penny's.
_ALEMBIC = "alembic_version"


@pytest.fixture
def migrated(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.dispose()


def _declared_column(column: Column[Any], dialect: Dialect) -> dict[str, Any]:
    return {
        "type": column.type.compile(dialect=dialect),
        "nullable": column.nullable,
    }


def _reflected_column(column: Any, dialect: Dialect) -> dict[str, Any]:
    return {"type": column["type"].compile(dialect=dialect), "nullable": column["nullable"]}


def _declared_foreign_keys(table: Table) -> set[tuple[tuple[str, ...], str, tuple[str, ...]]]:
    keys = set()
    for constraint in table.foreign_key_constraints:
        referred = {element.column.table.name for element in constraint.elements}
        assert len(referred) == 1
        keys.add(
            (
                tuple(constraint.column_keys),
                referred.pop(),
                tuple(element.column.name for element in constraint.elements),
            )
        )
    return keys


def test_schema_py_matches_the_migrated_store(migrated: Database) -> None:
    engine = migrated.write_engine
    dialect = engine.dialect
    with engine.connect() as conn:
        inspector = inspect(conn)
        stored = set(inspector.get_table_names()) - {_ALEMBIC}
        assert stored == set(schema.metadata.tables)
        for name, table in schema.metadata.tables.items():
            reflected = inspector.get_columns(name)
            assert [c["name"] for c in reflected] == [c.name for c in table.columns], name
            for column, found in zip(table.columns, reflected, strict=True):
                where = f"{name}.{column.name}"
                expected = _declared_column(column, dialect)
                assert _reflected_column(found, dialect) == expected, where
            primary = inspector.get_pk_constraint(name)["constrained_columns"]
            assert primary == [c.name for c in table.primary_key.columns], name
            foreign = {
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                )
                for fk in inspector.get_foreign_keys(name)
            }
            assert foreign == _declared_foreign_keys(table), name


def test_every_storage_module_uses_the_one_metadata() -> None:
    """The storage modules' tables are schema.py's objects, not copies of them."""
    found = [module.name for module in pkgutil.iter_modules(storage.__path__)]
    names = [name for name in found if name.endswith("_sql")]
    assert len(names) >= 15  # every *_sql module, found rather than listed by hand
    modules = [importlib.import_module(f"penny.storage.{name}") for name in names]
    seen: set[str] = set()
    for module in modules:
        tables = [value for value in vars(module).values() if isinstance(value, Table)]
        assert tables, module.__name__
        for table in tables:
            assert table.metadata is schema.metadata, f"{module.__name__}: {table.name}"
            assert schema.metadata.tables[table.name] is table
            seen.add(table.name)
    ledger = {schema.accounts.name, schema.journals.name, schema.legs.name}
    assert seen | ledger == set(schema.metadata.tables)
