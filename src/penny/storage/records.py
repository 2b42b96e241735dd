"""How a domain record (a frozen dataclass of :mod:`penny.domain`) is stored as a table row.

One rule for every ``*_sql`` module: a row holds the record's fields by name; an enum field
is stored as its value (``None`` stays ``None``), and a bool field is read back as a bool
(SQLite answers 0/1). :class:`Stored` says which fields of a record are enums and bools, and
reads and writes its rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from enum import Enum
from typing import Any, Generic, TypeVar

R = TypeVar("R")


class Stored(Generic[R]):
    """The rows of ``record``: ``enums`` (field name → its enum) and ``flags`` (bool fields)."""

    __slots__ = ("_flags", "_members", "_names", "_record")

    def __init__(
        self,
        record: type[R],
        *,
        enums: Mapping[str, type[Enum]],
        flags: Sequence[str] = (),
    ) -> None:
        self._record = record
        self._names = tuple(f.name for f in fields(record))  # type: ignore[arg-type]
        # Members by stored value: a dict lookup, not an Enum call (~1 µs each, per loaded row).
        self._members: dict[str, dict[Any, Any]] = {
            name: {member.value: member for member in enum} | {None: None}
            for name, enum in enums.items()
        }
        self._flags = tuple(flags)

    def record(self, row: Mapping[Any, Any]) -> R:
        """The record a row (column name → value) holds."""
        values = dict(row)
        for name, members in self._members.items():
            values[name] = members[values[name]]
        for name in self._flags:
            values[name] = bool(values[name])
        return self._record(**values)

    def row(self, record: R) -> dict[str, Any]:
        """The row (column name → value) that stores ``record``. Shallow: every field is a
        scalar or an enum (``dataclasses.asdict`` deep-copies, ~250 µs a transaction)."""
        row = {name: getattr(record, name) for name in self._names}
        for name in self._members:
            value = row[name]
            row[name] = None if value is None else value.value
        return row
