"""GateKeeper syntax tree: typed, frozen dataclasses, plus the :class:`BadRule` error.

Every node carries its source position (1-based line and column) in a ``pos`` field that is
excluded from equality, so two trees that differ only in layout compare equal: this is what
``parse(print_script(tree)) == tree`` relies on.

Spellings are not recorded: ``==`` and ``equals`` both become :attr:`CompareOp.EQ`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class Pos:
    """A 1-based source position."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}:{self.column}"


NO_POS = Pos(0, 0)


@dataclass(frozen=True, slots=True)
class GkError:
    """One error: ``kind`` is ``"Parse"`` or ``"Type"``; ``pos`` is ``None`` at end of input
    errors that FPS reported without a position."""

    kind: str
    message: str
    pos: Pos | None

    def reason_text(self) -> str:
        """FPS's reason-text form: ``Parse errors: line 1:9: unexpected token: instruction``."""
        where = f"{self.pos}: " if self.pos is not None else ""
        return f"{self.kind} errors: {where}{self.message}"


class BadRule(Exception):  # noqa: N818 - the name is FPS's error code
    """A script that is not well formed or not well typed (FPS error code ``BadRule``).

    Carries one or more :class:`GkError`; :attr:`reason_texts` renders one FPS ``ReasonText``
    per error, as the service returned one ``BadRule`` error element per parser message.
    """

    def __init__(self, errors: tuple[GkError, ...]) -> None:
        assert errors, "a BadRule has at least one error"
        self.errors = errors
        super().__init__("; ".join(e.reason_text() for e in errors))

    @property
    def reason_texts(self) -> tuple[str, ...]:
        return tuple(e.reason_text() for e in self.errors)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BadRule) and other.errors == self.errors

    def __hash__(self) -> int:
        return hash(self.errors)


class TypeName(enum.Enum):
    """The declaration types of GateKeeper (keyword spelling as value)."""

    STRING = "string"
    MONEY = "money"
    DURATION = "duration"
    INTEGER = "integer"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    DATETIME = "datetime"


class CompareOp(enum.Enum):
    EQ = "=="
    NE = "!="
    LT = "<"
    GT = ">"
    LE = "<="
    GE = ">="


class LogicOp(enum.Enum):
    AND = "and"
    OR = "or"


class UnaryOp(enum.Enum):
    NOT = "not"
    NEG = "-"


@dataclass(frozen=True, slots=True)
class StringLit:
    """A single-quoted literal; its type (string, money, datetime, duration) comes from context."""

    value: str
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True, slots=True)
class IntLit:
    value: int
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True, slots=True)
class DecimalLit:
    """A ``double`` literal kept as written (``"1.50"``): its value is exact, never a float."""

    text: str
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True, slots=True)
class Name:
    """A variable reference, spelled as written (names are matched case-insensitively)."""

    name: str
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True, slots=True)
class Unary:
    op: UnaryOp
    operand: Expr
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True, slots=True)
class Logic:
    op: LogicOp
    left: Expr
    right: Expr
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    op: CompareOp
    left: Expr
    right: Expr
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True, slots=True)
class ListExpr:
    """``(a, b, c)`` after ``in``/``notIn``."""

    items: tuple[Expr, ...]
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True, slots=True)
class Membership:
    """``item in (…)`` / ``item notIn (…)``; ``choices`` may also be the string form
    ``'abt, ach, cc'`` seen once in an Amazon use-case page."""

    item: Expr
    negated: bool
    choices: ListExpr | StringLit
    pos: Pos = field(default=NO_POS, compare=False)


Expr = StringLit | IntLit | DecimalLit | Name | Unary | Logic | Compare | Membership


@dataclass(frozen=True, slots=True)
class Assertion:
    """``expression [orSay 'message'];``"""

    expr: Expr
    message: str | None
    pos: Pos = field(default=NO_POS, compare=False)


@dataclass(frozen=True, slots=True)
class Declaration:
    """``type Name := expression;``"""

    type: TypeName
    name: str
    value: Expr
    pos: Pos = field(default=NO_POS, compare=False)
    name_pos: Pos = field(default=NO_POS, compare=False)


Statement = Assertion | Declaration


@dataclass(frozen=True, slots=True)
class Script:
    statements: tuple[Statement, ...]
