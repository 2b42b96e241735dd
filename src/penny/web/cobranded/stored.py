"""A start request as its pipeline's row keeps it: JSON under short stored keys, one codec for
:class:`~penny.web.cobranded.params.PipelineRequest` and
:class:`~penny.web.cobranded.recipient_params.RecipientRequest`.

Each record names the short key some of its fields are stored under (``renamed``); every other
field is stored under its own name, and the keys come in field order. A
value is stored as plain JSON: an amount as its minor units (these pages take USD only), an
enum as its value, a tuple as a list, a record inside (a usage limit) as the list of its
fields. Reading back turns each value into its field's type; a key an older row lacks leaves
the field's default.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from penny.money import Money

R = TypeVar("R")


def dumps(record: Any, renamed: Mapping[str, str], **head: str) -> str:
    """``record``'s fields under their stored keys, after ``head`` (constant entries)."""
    values = {
        renamed.get(f.name, f.name): _plain(getattr(record, f.name))
        for f in dataclasses.fields(record)
    }
    return json.dumps({**head, **values})


def loads(cls: type[R], renamed: Mapping[str, str], text: str) -> R:
    """The ``cls`` record :func:`dumps` stored as ``text``."""
    data = json.loads(text)
    make: Any = cls
    hints = _hints(make)
    keys = {f.name: renamed.get(f.name, f.name) for f in dataclasses.fields(make)}
    found = {name: _typed(hints[name], data[key]) for name, key in keys.items() if key in data}
    return typing.cast(R, make(**found))


def _plain(value: object) -> object:
    if isinstance(value, Money):
        return value.minor
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [_plain(getattr(value, f.name)) for f in dataclasses.fields(value)]
    return value


def _typed(hint: Any, value: Any) -> Any:
    """``value`` as stored by :func:`_plain`, back as the type ``hint`` names."""
    if value is None:
        return None
    if isinstance(hint, types.UnionType):  # X | None: the value is an X
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if hint is Money:
        return Money(value, "USD")
    if typing.get_origin(hint) is tuple:
        return tuple(_typed(typing.get_args(hint)[0], item) for item in value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        inner = _hints(hint)
        fields = dataclasses.fields(hint)
        return hint(*(_typed(inner[f.name], item) for f, item in zip(fields, value, strict=True)))
    return value


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    """``cls``'s fields' types (its annotations are strings: ``from __future__``)."""
    return typing.get_type_hints(cls)
