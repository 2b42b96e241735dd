"""GateKeeper pretty-printer: a syntax tree back to script text.

The output uses the symbol spellings (``==``, ``<=``, ``and``, ``not``, ``-``), one statement
per line, and only the parentheses precedence needs, so that for every tree ``t`` the parser
gives back ``t`` again: ``parse(print_script(t)) == t`` (positions are not compared).

Precedence, loosest first: ``or``, ``and``, ``not``, comparisons and ``in`` (non-associative),
``-``, primaries. ``and``/``or`` associate to the left, so a right operand of the same operator
is parenthesised.
"""

from __future__ import annotations

from typing import Final

from penny.gatekeeper.ast import (
    Assertion,
    Compare,
    DecimalLit,
    Expr,
    IntLit,
    ListExpr,
    Logic,
    LogicOp,
    Membership,
    Name,
    Script,
    Statement,
    StringLit,
    Unary,
    UnaryOp,
)

_OR: Final = 1
_AND: Final = 2
_NOT: Final = 3
_RELATION: Final = 4
_NEG: Final = 5
_PRIMARY: Final = 6


def _level(expr: Expr) -> int:
    if isinstance(expr, Logic):
        return _OR if expr.op is LogicOp.OR else _AND
    if isinstance(expr, Unary):
        return _NOT if expr.op is UnaryOp.NOT else _NEG
    if isinstance(expr, Compare | Membership):
        return _RELATION
    return _PRIMARY


def _at(expr: Expr, minimum: int) -> str:
    text = print_expr(expr)
    return f"({text})" if _level(expr) < minimum else text


def _string(value: str) -> str:
    assert "'" not in value, "GateKeeper strings cannot contain a quote"
    return f"'{value}'"


def print_expr(expr: Expr) -> str:
    """Render one expression."""
    if isinstance(expr, StringLit):
        return _string(expr.value)
    if isinstance(expr, IntLit):
        return str(expr.value)
    if isinstance(expr, DecimalLit):
        return expr.text
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Unary):
        if expr.op is UnaryOp.NOT:
            return f"not {_at(expr.operand, _NOT)}"
        return f"-{_at(expr.operand, _NEG)}"
    if isinstance(expr, Logic):
        level = _level(expr)
        return f"{_at(expr.left, level)} {expr.op.value} {_at(expr.right, level + 1)}"
    if isinstance(expr, Compare):
        return f"{_at(expr.left, _NEG)} {expr.op.value} {_at(expr.right, _NEG)}"
    word = "notIn" if expr.negated else "in"
    choices = expr.choices
    if isinstance(choices, ListExpr):
        listed = f"({', '.join(print_expr(item) for item in choices.items)})"
    else:
        listed = _string(choices.value)
    return f"{_at(expr.item, _NEG)} {word} {listed}"


def print_statement(statement: Statement) -> str:
    """Render one statement with its ``;``."""
    if isinstance(statement, Assertion):
        said = f" orSay {_string(statement.message)}" if statement.message is not None else ""
        return f"{print_expr(statement.expr)}{said};"
    return f"{statement.type.value} {statement.name} := {print_expr(statement.value)};"


def print_script(script: Script) -> str:
    """Render a script, one statement per line."""
    return "".join(f"{print_statement(s)}\n" for s in script.statements)
