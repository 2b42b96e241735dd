"""GateKeeper type checker and compiler: a parsed script to a :class:`CompiledScript`.

Checks, each reported as a ``BadRule`` reason text ``Type errors: line L:C: …``:

* every name is a built-in (:data:`~penny.gatekeeper.types.BUILTINS`), a usage-limit name
  (``MyTokenUsageLimit1``, ``…1Type``, ``…1Period``, ``…1StartTime``; indexes 1 to 3) declared
  in the script, or a name the script declares itself; names are case-insensitive;
* a name is declared at most once (single assignment); only ``PaymentMethod`` and the
  usage-limit names among the built-ins may be declared, with their own types;
* a declaration's value is a constant expression (no names): declarations are facts, so they
  cannot form cycles, and they are evaluated once here;
* operand types: ``and``/``or``/``not`` take booleans; ``negate`` integer, double, money or
  duration; ``==``/``!=``/``in``/``notIn`` need the same type on both sides (integer and
  double mix); ``<``/``>``/``<=``/``>=`` also exclude string and boolean; an assertion is
  boolean;
* quoted literals are read as the type their context asks for (``TransactionAmount ==
  'USD 0.5'`` reads money), and must be well formed; two money constants in different
  currencies cannot be compared;
* usage limits are complete: a ``Type`` of ``'Amount'`` (limit is money) or ``'Count'``
  (limit is a positive integer), a period of at least one hour if given.

:func:`compile_script` parses and checks once; results (including :class:`BadRule`) are kept
in a small LRU cache keyed by the script text, since the same token scripts are evaluated on
every Pay.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Final

from penny.gatekeeper.ast import (
    Assertion,
    BadRule,
    Compare,
    CompareOp,
    DecimalLit,
    Declaration,
    Expr,
    GkError,
    IntLit,
    Logic,
    Membership,
    Name,
    Pos,
    Script,
    StringLit,
    TypeName,
    Unary,
    UnaryOp,
)
from penny.gatekeeper.parser import MAX_ERRORS, MAX_LIST_ITEMS, parse
from penny.gatekeeper.printer import print_expr
from penny.gatekeeper.types import (
    BUILTINS,
    LITERAL_TYPES,
    MAX_USAGE_LIMITS,
    MICROS_PER_HOUR,
    NEGATABLE,
    NUMERIC,
    ORDERED,
    USAGE_NAME_RE,
    CCompare,
    CConst,
    CExpr,
    CIn,
    CLogic,
    CNeg,
    CNot,
    CVar,
    Duration,
    GkType,
    Instant,
    LiteralError,
    Value,
    eval_expr,
    negate,
    parse_decimal,
    parse_typed,
)
from penny.money import Money

#: Scripts kept compiled by :func:`compile_script`.
CACHE_SIZE: Final = 256

_TYPE_OF_NAME: Final = {
    TypeName.STRING: GkType.STRING,
    TypeName.MONEY: GkType.MONEY,
    TypeName.DURATION: GkType.DURATION,
    TypeName.INTEGER: GkType.INTEGER,
    TypeName.DOUBLE: GkType.DOUBLE,
    TypeName.BOOLEAN: GkType.BOOLEAN,
    TypeName.DATETIME: GkType.DATETIME,
}


class UsageKind(enum.Enum):
    AMOUNT = "Amount"
    COUNT = "Count"


@dataclass(frozen=True, slots=True)
class UsageLimit:
    """Restriction ``index`` of a token: at most ``limit`` (money for AMOUNT, a count for
    COUNT) per ``period`` (``None``: over the token's whole life), windows starting at
    ``start`` if given."""

    index: int
    kind: UsageKind
    limit: Money | int
    period: Duration | None
    start: Instant | None


@dataclass(frozen=True, slots=True)
class CheckedDeclaration:
    key: str
    name: str
    type: GkType
    value: Value
    pos: Pos


@dataclass(frozen=True, slots=True)
class CheckedAssertion:
    expr: CExpr
    message: str | None
    source: str  # the expression, pretty-printed, for default refusal messages
    pos: Pos


@dataclass(frozen=True, slots=True)
class CompiledScript:
    """A parsed and type-checked script, ready to evaluate any number of times."""

    text: str
    script: Script
    declarations: tuple[CheckedDeclaration, ...]
    assertions: tuple[CheckedAssertion, ...]
    usage_limits: tuple[UsageLimit, ...]

    def declared(self, name: str) -> Value | None:
        """The value the script declares for ``name`` (case-insensitive), if any."""
        key = name.lower()
        return next((d.value for d in self.declarations if d.key == key), None)


class _TypeError(Exception):
    def __init__(self, message: str, pos: Pos) -> None:
        super().__init__(message)
        self.error = GkError("Type", message, pos)


def type_of(expr: CExpr) -> GkType:
    if isinstance(expr, CConst | CVar | CNeg):
        return expr.type
    return GkType.BOOLEAN


def _literal_like(expr: Expr) -> bool:
    """A quoted literal, possibly negated: its type comes from the other side."""
    while isinstance(expr, Unary) and expr.op is UnaryOp.NEG:
        expr = expr.operand
    return isinstance(expr, StringLit)


def _compatible(a: GkType, b: GkType) -> bool:
    return a is b or (a in NUMERIC and b in NUMERIC)


def _has_var(expr: CExpr) -> bool:
    if isinstance(expr, CVar):
        return True
    if isinstance(expr, CConst):
        return False
    if isinstance(expr, CNot | CNeg):
        return _has_var(expr.operand)
    if isinstance(expr, CLogic | CCompare):
        return _has_var(expr.left) or _has_var(expr.right)
    return _has_var(expr.item) or any(_has_var(c) for c in expr.choices)


def _no_lookup(var: CVar) -> Value:
    raise AssertionError(f"constant expression read {var.name}")


class _Checker:
    def __init__(self) -> None:
        self.names: dict[str, tuple[str, GkType, bool]] = {
            key: (b.name, b.type, b.fold_case) for key, b in BUILTINS.items()
        }

    # -- declarations ----------------------------------------------------------------------

    def declare(self, decl: Declaration, declared: dict[str, Declaration]) -> None:
        key = decl.name.lower()
        gk_type = _TYPE_OF_NAME[decl.type]
        where = decl.name_pos
        if key in declared:
            first = declared[key].name_pos
            raise _TypeError(f"{decl.name} is already declared at {first}", where)
        builtin = BUILTINS.get(key)
        usage = USAGE_NAME_RE.match(key)
        if builtin is not None:
            if not builtin.declarable:
                raise _TypeError(f"{builtin.name} is set by the transaction, not declared", where)
            if builtin.type is not gk_type:
                raise _TypeError(f"{builtin.name} is a {builtin.type.value}", where)
        elif usage is not None:
            index, part = int(usage["n"]), usage["part"]
            if not 1 <= index <= MAX_USAGE_LIMITS:
                raise _TypeError(
                    f"usage limit index must be 1 to {MAX_USAGE_LIMITS}, not {index}", where
                )
            wanted = {
                "type": (GkType.STRING,),
                "period": (GkType.DURATION,),
                "starttime": (GkType.DATETIME,),
                None: (GkType.MONEY, GkType.INTEGER),
            }[part]
            if gk_type not in wanted:
                kinds = " or ".join(t.value for t in wanted)
                raise _TypeError(f"{decl.name} must be declared {kinds}", where)
        declared[key] = decl
        self.names[key] = (decl.name, gk_type, builtin.fold_case if builtin else False)

    def declaration_value(self, decl: Declaration) -> CheckedDeclaration:
        gk_type = _TYPE_OF_NAME[decl.type]
        checked = self.expr(decl.value, gk_type)
        actual = type_of(checked)
        if not _compatible(actual, gk_type):
            raise _TypeError(
                f"{decl.name} is declared {gk_type.value} but its value is {actual.value}",
                decl.name_pos,
            )
        if _has_var(checked):
            raise _TypeError(f"the value of {decl.name} must be a constant", decl.name_pos)
        value = eval_expr(checked, _no_lookup)
        if gk_type is GkType.DOUBLE and isinstance(value, int):
            value = Fraction(value)
        if gk_type is GkType.INTEGER and isinstance(value, Fraction):
            raise _TypeError(f"{decl.name} is declared integer but its value is double", decl.pos)
        return CheckedDeclaration(decl.name.lower(), decl.name, gk_type, value, decl.pos)

    # -- expressions -----------------------------------------------------------------------

    def expr(self, expr: Expr, hint: GkType | None) -> CExpr:
        if isinstance(expr, StringLit):
            gk_type = hint if hint in LITERAL_TYPES else GkType.STRING
            assert gk_type is not None
            try:
                return CConst(parse_typed(expr.value, gk_type), gk_type)
            except LiteralError as exc:
                raise _TypeError(str(exc), expr.pos) from None
        if isinstance(expr, IntLit):
            return CConst(expr.value, GkType.INTEGER)
        if isinstance(expr, DecimalLit):
            return CConst(parse_decimal(expr.text), GkType.DOUBLE)
        if isinstance(expr, Name):
            entry = self.names.get(expr.name.lower())
            if entry is None:
                raise _TypeError(f"unknown name: {expr.name}", expr.pos)
            return CVar(expr.name.lower(), expr.name, entry[1], expr.pos)
        if isinstance(expr, Unary):
            return self.unary(expr, hint)
        if isinstance(expr, Logic):
            left = self.boolean(expr.left, expr.op.value)
            right = self.boolean(expr.right, expr.op.value)
            return CLogic(expr.op, left, right)
        if isinstance(expr, Compare):
            return self.compare(expr)
        return self.membership(expr)

    def boolean(self, expr: Expr, what: str) -> CExpr:
        checked = self.expr(expr, None)
        actual = type_of(checked)
        if actual is not GkType.BOOLEAN:
            raise _TypeError(f"'{what}' needs a boolean, not {actual.value}", _pos(expr))
        return checked

    def unary(self, expr: Unary, hint: GkType | None) -> CExpr:
        if expr.op is UnaryOp.NOT:
            return CNot(self.boolean(expr.operand, "not"))
        operand = self.expr(expr.operand, hint)
        gk_type = type_of(operand)
        if gk_type not in NEGATABLE:
            raise _TypeError(
                f"'negate' needs integer, double, money or duration, not {gk_type.value}",
                expr.pos,
            )
        if isinstance(operand, CConst):
            return CConst(negate(operand.value), gk_type)
        return CNeg(operand, gk_type)

    def fold(self, *exprs: CExpr) -> bool:
        return any(isinstance(e, CVar) and self.names[e.key][2] for e in exprs)

    def pair(self, left: Expr, right: Expr) -> tuple[CExpr, CExpr]:
        if _literal_like(left) and not _literal_like(right):
            r = self.expr(right, None)
            return self.expr(left, type_of(r)), r
        l_ = self.expr(left, None)
        return l_, self.expr(right, type_of(l_))

    def compare(self, expr: Compare) -> CExpr:
        left, right = self.pair(expr.left, expr.right)
        lt, rt = type_of(left), type_of(right)
        if not _compatible(lt, rt):
            raise _TypeError(f"cannot compare {lt.value} with {rt.value}", expr.pos)
        if expr.op not in (CompareOp.EQ, CompareOp.NE) and lt not in ORDERED:
            raise _TypeError(f"'{expr.op.value}' cannot order {lt.value} values", expr.pos)
        _same_currency(left, right, expr.pos)
        return CCompare(expr.op, left, right, self.fold(left, right))

    def membership(self, expr: Membership) -> CExpr:
        choices_ast = expr.choices
        if isinstance(choices_ast, StringLit):
            item = self.expr(expr.item, GkType.STRING)
            if type_of(item) is not GkType.STRING:
                raise _TypeError(
                    f"a quoted list needs a string on the left, not {type_of(item).value}",
                    expr.pos,
                )
            parts = [p.strip() for p in choices_ast.value.split(",")]
            if len(parts) > MAX_LIST_ITEMS:
                raise _TypeError(f"list longer than {MAX_LIST_ITEMS} items", choices_ast.pos)
            consts: tuple[CExpr, ...] = tuple(CConst(p, GkType.STRING) for p in parts)
            return CIn(item, consts, expr.negated, self.fold(item))
        if _literal_like(expr.item):
            typed = [c for c in choices_ast.items if not _literal_like(c)]
            hint = type_of(self.expr(typed[0], None)) if typed else None
            item = self.expr(expr.item, hint)
        else:
            item = self.expr(expr.item, None)
        item_type = type_of(item)
        checked: list[CExpr] = []
        for choice in choices_ast.items:
            c = self.expr(choice, item_type)
            if not _compatible(type_of(c), item_type):
                raise _TypeError(
                    f"list item is {type_of(c).value}, expected {item_type.value}", _pos(choice)
                )
            _same_currency(item, c, _pos(choice))
            checked.append(c)
        return CIn(item, tuple(checked), expr.negated, self.fold(item, *checked))

    # -- script ----------------------------------------------------------------------------

    def script(self, text: str, script: Script) -> CompiledScript:
        errors: list[GkError] = []
        declared: dict[str, Declaration] = {}
        for statement in script.statements:
            if isinstance(statement, Declaration):
                try:
                    self.declare(statement, declared)
                except _TypeError as exc:
                    errors.append(exc.error)
        declarations: list[CheckedDeclaration] = []
        assertions: list[CheckedAssertion] = []
        for statement in script.statements:
            try:
                if isinstance(statement, Declaration):
                    if declared.get(statement.name.lower()) is statement:
                        declarations.append(self.declaration_value(statement))
                else:
                    assertions.append(self.assertion(statement))
            except _TypeError as exc:
                errors.append(exc.error)
        limits: tuple[UsageLimit, ...] = ()
        if not errors:
            try:
                limits = _usage_limits(declarations)
            except _TypeError as exc:
                errors.append(exc.error)
        if errors:
            raise BadRule(tuple(sorted(errors, key=_error_order)[:MAX_ERRORS]))
        return CompiledScript(text, script, tuple(declarations), tuple(assertions), limits)

    def assertion(self, statement: Assertion) -> CheckedAssertion:
        checked = self.expr(statement.expr, None)
        actual = type_of(checked)
        if actual is not GkType.BOOLEAN:
            raise _TypeError(f"a statement must be boolean, not {actual.value}", statement.pos)
        return CheckedAssertion(
            checked, statement.message, print_expr(statement.expr), statement.pos
        )


def _error_order(error: GkError) -> tuple[int, int]:
    return (error.pos.line, error.pos.column) if error.pos else (0, 0)


def _pos(expr: Expr) -> Pos:
    return expr.pos


def _same_currency(left: CExpr, right: CExpr, pos: Pos) -> None:
    if (
        isinstance(left, CConst)
        and isinstance(right, CConst)
        and isinstance(left.value, Money)
        and isinstance(right.value, Money)
        and left.value.currency != right.value.currency
    ):
        raise _TypeError(f"cannot compare {left.value.currency} with {right.value.currency}", pos)


def _usage_limits(declarations: list[CheckedDeclaration]) -> tuple[UsageLimit, ...]:
    parts: dict[int, dict[str | None, CheckedDeclaration]] = {}
    for decl in declarations:
        match = USAGE_NAME_RE.match(decl.key)
        if match:
            parts.setdefault(int(match["n"]), {})[match["part"]] = decl
    limits: list[UsageLimit] = []
    for index in sorted(parts):
        group = parts[index]
        anchor = next(iter(group.values())).pos
        kind_decl, limit_decl = group.get("type"), group.get(None)
        if kind_decl is None:
            raise _TypeError(f"usage limit {index} has no MyTokenUsageLimit{index}Type", anchor)
        if limit_decl is None:
            raise _TypeError(f"usage limit {index} has no MyTokenUsageLimit{index}", anchor)
        kind_text = str(kind_decl.value).strip().lower()
        kinds = {k.value.lower(): k for k in UsageKind}
        if kind_text not in kinds:
            raise _TypeError(
                f"MyTokenUsageLimit{index}Type must be 'Amount' or 'Count'", kind_decl.pos
            )
        kind = kinds[kind_text]
        limit = limit_decl.value
        if kind is UsageKind.AMOUNT and not isinstance(limit, Money):
            raise _TypeError("an Amount limit must be money", limit_decl.pos)
        if kind is UsageKind.COUNT and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise _TypeError("a Count limit must be a positive integer", limit_decl.pos)
        if isinstance(limit, Money) and limit.minor < 0:
            raise _TypeError("an Amount limit cannot be negative", limit_decl.pos)
        period = group.get("period")
        period_value = period.value if period else None
        if period is not None and (
            not isinstance(period_value, Duration)
            or period_value.months < 0
            or period_value.micros < 0
            or period_value.ordering_key() < MICROS_PER_HOUR
        ):
            raise _TypeError("a usage period must be at least one hour", period.pos)
        start = group.get("starttime")
        start_value = start.value if start else None
        assert isinstance(limit, Money | int)
        assert period_value is None or isinstance(period_value, Duration)
        assert start_value is None or isinstance(start_value, Instant)
        limits.append(UsageLimit(index, kind, limit, period_value, start_value))
    return tuple(limits)


def check(text: str, script: Script) -> CompiledScript:
    """Type-check a parsed script (``text`` is its source), or raise :class:`BadRule`."""
    return _Checker().script(text, script)


@lru_cache(maxsize=CACHE_SIZE)
def compile_script(text: str) -> CompiledScript | BadRule:
    """Parse and check ``text`` once; returns the :class:`BadRule` rather than raising it.

    Cached by text (:data:`CACHE_SIZE` entries): both outcomes are immutable.
    """
    try:
        return check(text, parse(text))
    except BadRule as bad:
        return bad.with_traceback(None)  # cached: keep no parser frames alive
