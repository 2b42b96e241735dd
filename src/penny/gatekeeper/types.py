"""GateKeeper types, runtime values, typed-literal parsing and the checked expression form.

Types (spec §5): ``boolean``, ``integer``, ``double``, ``string``, ``money``, ``datetime``,
``duration``. Runtime values, one Python type each, none of them float:

=========== ========================================================================
boolean     :class:`bool`
integer     :class:`int`
double      :class:`fractions.Fraction` (exact; decimal literals such as ``1.50``)
string      :class:`str`
money       :class:`penny.money.Money` (integer minor units)
datetime    :class:`Instant` (integer microseconds since the epoch, UTC)
duration    :class:`Duration` (calendar months plus exact microseconds)
=========== ========================================================================

Money, datetime and duration literals are written as quoted strings and take their type from
context (the declared type, or the other operand of a comparison); see :func:`parse_typed`.

The checker (:mod:`penny.gatekeeper.checker`) turns the syntax tree into the ``C*`` nodes
below: literals are already converted, names are resolved to lower-case keys, and string
comparisons know whether they fold case. :func:`eval_expr` evaluates them with bounded work:
the tree depth is capped by the parser and there are no loops.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from fractions import Fraction
from typing import Final

from penny.epoch import from_datetime, to_datetime
from penny.gatekeeper.ast import CompareOp, LogicOp, Pos
from penny.money import Money, MoneyError, parse_money

MICROS_PER_SECOND: Final = 1_000_000
MICROS_PER_HOUR: Final = 3600 * MICROS_PER_SECOND
MICROS_PER_DAY: Final = 24 * MICROS_PER_HOUR
#: Used only to *order* durations that mix calendar months with fixed lengths ('1 months' vs
#: '31 days'): a month counts as 30 days there. Adding durations to dates is calendar-exact.
MICROS_PER_MONTH_FOR_ORDERING: Final = 30 * MICROS_PER_DAY


class GkType(enum.Enum):
    BOOLEAN = "boolean"
    INTEGER = "integer"
    DOUBLE = "double"
    STRING = "string"
    MONEY = "money"
    DATETIME = "datetime"
    DURATION = "duration"


#: Types a quoted literal can take from its context.
LITERAL_TYPES: Final = frozenset({GkType.STRING, GkType.MONEY, GkType.DATETIME, GkType.DURATION})
NUMERIC: Final = frozenset({GkType.INTEGER, GkType.DOUBLE})
NEGATABLE: Final = frozenset({GkType.INTEGER, GkType.DOUBLE, GkType.MONEY, GkType.DURATION})
ORDERED: Final = frozenset(
    {GkType.INTEGER, GkType.DOUBLE, GkType.MONEY, GkType.DATETIME, GkType.DURATION}
)


@dataclass(frozen=True, slots=True, order=True)
class Instant:
    """A point in time: integer microseconds since 1970-01-01T00:00Z."""

    micros: int

    def __str__(self) -> str:
        try:
            moment = to_datetime(self.micros)
        except OverflowError:
            return f"{self.micros} microseconds since the epoch"
        return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True, slots=True)
class Duration:
    """A length of time: ``months`` (calendar; a year is 12) plus exact ``micros``."""

    months: int
    micros: int

    def ordering_key(self) -> int:
        return self.months * MICROS_PER_MONTH_FOR_ORDERING + self.micros

    def __neg__(self) -> Duration:
        return Duration(-self.months, -self.micros)


Value = bool | int | Fraction | str | Money | Instant | Duration


class LiteralError(ValueError):
    """A quoted literal does not read as the type its context requires."""


# -- typed literals ------------------------------------------------------------------------

_DATETIME_RE: Final = re.compile(
    r"\A(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2,3})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<F>\d{1,6}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?)?\Z",
    re.ASCII,
)
_DURATION_RE: Final = re.compile(r"\A(?P<n>\d{1,6}) ?(?P<unit>[A-Za-z]+)\Z", re.ASCII)
_DURATION_UNITS: Final = {
    "hour": (0, MICROS_PER_HOUR),
    "day": (0, MICROS_PER_DAY),
    "week": (0, 7 * MICROS_PER_DAY),
    "month": (1, 0),
    "year": (12, 0),
}


def format_datetime(moment: Instant) -> str:
    """The literal Penny writes for ``moment``: ISO 8601 in UTC, ``2008-10-15T17:41:00Z``, with
    the fraction of a second only when there is one (``…:00.000001Z``); reads back exactly."""
    at = to_datetime(moment.micros)
    fraction = f".{at.microsecond:06d}" if at.microsecond else ""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def parse_datetime(text: str) -> Instant:
    """``2008-10-15T10:41-0700`` (ISO 8601, offset ``Z``/``±HHMM``/``±HH:MM``, default UTC;
    seconds and up to six digits of fraction optional),
    ``2008-10-15`` (midnight UTC), and Amazon's generator bug ``2008-10-289T10:41-0700`` where a
    3-digit day is the day of the year; the month must then agree with it."""
    match = _DATETIME_RE.match(text.strip())
    if match is None:
        raise LiteralError(f"'{text}' is not a datetime such as '2008-10-15T10:41-0700'")
    year, month, day = int(match["y"]), int(match["m"]), int(match["d"])
    try:
        if len(match["d"]) == 3:
            day_one = date(year, 1, 1)
            on = day_one + timedelta(days=day - 1)
            if not 1 <= day <= 366 or on.year != year or on.month != month:
                raise LiteralError(f"'{text}': day of year {day} is not in month {month}")
        else:
            on = date(year, month, day)
        tz = UTC
        tz_text = match["tz"]
        if tz_text and tz_text != "Z":
            digits = tz_text[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            if offset >= timedelta(hours=24) or int(digits[2:]) >= 60:
                raise LiteralError(f"'{text}': bad UTC offset")
            tz = timezone(-offset if tz_text[0] == "-" else offset)
        moment = datetime(
            on.year,
            on.month,
            on.day,
            int(match["H"] or 0),
            int(match["M"] or 0),
            int(match["S"] or 0),
            int((match["F"] or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, LiteralError):
            raise
        raise LiteralError(f"'{text}' is not a valid datetime") from None
    return Instant(from_datetime(moment))


def parse_duration(text: str) -> Duration:
    """``'1 months'``, ``'2 Months'``, ``'7 Days'``, ``'1 hour'``: a count and a unit (hour,
    day, week, month, year; singular or plural; any case)."""
    match = _DURATION_RE.match(text.strip())
    unit = match["unit"].lower() if match else ""
    unit = unit.removesuffix("s")
    if match is None or unit not in _DURATION_UNITS:
        raise LiteralError(f"'{text}' is not a duration such as '1 months' or '7 days'")
    count = int(match["n"])
    months, micros = _DURATION_UNITS[unit]
    return Duration(count * months, count * micros)


def parse_typed(text: str, gk_type: GkType) -> Value:
    """Read a quoted literal as ``gk_type`` (one of :data:`LITERAL_TYPES`)."""
    if gk_type is GkType.STRING:
        return text
    if gk_type is GkType.MONEY:
        try:
            return parse_money(text.strip())
        except MoneyError as exc:
            raise LiteralError(f"'{text}' is not money such as 'USD 10.25' ({exc})") from None
    if gk_type is GkType.DATETIME:
        return parse_datetime(text)
    if gk_type is GkType.DURATION:
        return parse_duration(text)
    raise LiteralError(f"a quoted literal cannot be a {gk_type.value}")


def parse_decimal(text: str) -> Fraction:
    """``"1.50"`` → ``Fraction(3, 2)``, exactly (the parser only lets digits and a dot through)."""
    whole, _, frac = text.partition(".")
    return Fraction(int(whole + frac), 10 ** len(frac))


# -- built-in names ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Builtin:
    """A name the service binds from the transaction (see :mod:`penny.gatekeeper.evaluator`)."""

    name: str
    type: GkType
    fold_case: bool = False  # an enumeration: compared case-insensitively ('abt' == 'ABT')
    declarable: bool = False  # a script may bind it (``string PaymentMethod := 'abt';``)


BUILTINS: Final[dict[str, Builtin]] = {
    b.name.lower(): b
    for b in (
        Builtin("MyRole", GkType.STRING, fold_case=True),
        Builtin("TransactionAmount", GkType.MONEY),
        Builtin("TransactionTimestamp", GkType.DATETIME),
        Builtin("PaymentMethod", GkType.STRING, fold_case=True, declarable=True),
        Builtin("ChargeFeeTo", GkType.STRING, fold_case=True),
        Builtin("OperationType", GkType.STRING, fold_case=True),
        Builtin("SenderToken", GkType.STRING),
        Builtin("RecipientToken", GkType.STRING),
        Builtin("CallerToken", GkType.STRING),
        Builtin("SenderAccountId", GkType.STRING),
        Builtin("RecipientAccountId", GkType.STRING),
        Builtin("CallerAccountId", GkType.STRING),
    )
}

#: ``MyTokenUsageLimit<N>`` and its ``Type``/``Period``/``StartTime`` companions.
USAGE_NAME_RE: Final = re.compile(
    r"\Amytokenusagelimit(?P<n>[0-9]+)(?P<part>type|period|starttime)?\Z"
)
MAX_USAGE_LIMITS: Final = 3

# -- checked expressions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CConst:
    value: Value
    type: GkType


@dataclass(frozen=True, slots=True)
class CVar:
    key: str  # lower-case name
    name: str  # as written, for messages
    type: GkType
    pos: Pos


@dataclass(frozen=True, slots=True)
class CNot:
    operand: CExpr


@dataclass(frozen=True, slots=True)
class CNeg:
    operand: CExpr
    type: GkType


@dataclass(frozen=True, slots=True)
class CLogic:
    op: LogicOp
    left: CExpr
    right: CExpr


@dataclass(frozen=True, slots=True)
class CCompare:
    op: CompareOp
    left: CExpr
    right: CExpr
    fold_case: bool


@dataclass(frozen=True, slots=True)
class CIn:
    item: CExpr
    choices: tuple[CExpr, ...]
    negated: bool
    fold_case: bool


CExpr = CConst | CVar | CNot | CNeg | CLogic | CCompare | CIn


class UnboundName(Exception):  # noqa: N818 - a condition, not a bug
    """A name the script reads has no value in this transaction."""

    def __init__(self, var: CVar) -> None:
        super().__init__(var.name)
        self.var = var


Lookup = Callable[[CVar], Value]


def _equal(left: Value, right: Value, fold_case: bool) -> bool:
    if isinstance(left, Money) and isinstance(right, Money):
        return left.currency == right.currency and left.minor == right.minor
    if isinstance(left, Duration) and isinstance(right, Duration):
        return left.ordering_key() == right.ordering_key()
    if fold_case and isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    return left == right


def _order(left: Value, right: Value) -> int | None:
    """-1/0/1, or ``None`` when the values cannot be ordered (money in two currencies)."""
    a: int | Fraction
    b: int | Fraction
    if isinstance(left, Money) and isinstance(right, Money):
        if left.currency != right.currency:
            return None
        a, b = left.minor, right.minor
    elif isinstance(left, Instant) and isinstance(right, Instant):
        a, b = left.micros, right.micros
    elif isinstance(left, Duration) and isinstance(right, Duration):
        a, b = left.ordering_key(), right.ordering_key()
    elif isinstance(left, int | Fraction) and isinstance(right, int | Fraction):
        a, b = left, right
    else:
        raise AssertionError(f"checker let through {left!r} <> {right!r}")
    return (a > b) - (a < b)


def compare(op: CompareOp, left: Value, right: Value, fold_case: bool) -> bool:
    """Apply a comparison. Money in two different currencies is never equal and never
    ordered: ``==``, ``<``, ``<=``, ``>``, ``>=`` are false and ``!=`` is true."""
    if op is CompareOp.EQ:
        return _equal(left, right, fold_case)
    if op is CompareOp.NE:
        return not _equal(left, right, fold_case)
    sign = _order(left, right)
    if sign is None:
        return False
    if op is CompareOp.LT:
        return sign < 0
    if op is CompareOp.LE:
        return sign <= 0
    if op is CompareOp.GT:
        return sign > 0
    return sign >= 0


def negate(value: Value) -> Value:
    if isinstance(value, bool | str | Instant):
        raise AssertionError(f"checker let through negate {value!r}")
    return -value


def eval_expr(expr: CExpr, lookup: Lookup) -> Value:
    """Evaluate a checked expression; ``lookup`` may raise :class:`UnboundName`."""
    if isinstance(expr, CConst):
        return expr.value
    if isinstance(expr, CVar):
        return lookup(expr)
    if isinstance(expr, CNot):
        return not eval_expr(expr.operand, lookup)
    if isinstance(expr, CNeg):
        return negate(eval_expr(expr.operand, lookup))
    if isinstance(expr, CLogic):
        left = eval_expr(expr.left, lookup)
        if expr.op is LogicOp.AND and not left:
            return False
        if expr.op is LogicOp.OR and left:
            return True
        return bool(eval_expr(expr.right, lookup))
    if isinstance(expr, CCompare):
        return compare(
            expr.op, eval_expr(expr.left, lookup), eval_expr(expr.right, lookup), expr.fold_case
        )
    item = eval_expr(expr.item, lookup)
    found = any(_equal(item, eval_expr(choice, lookup), expr.fold_case) for choice in expr.choices)
    return found != expr.negated
