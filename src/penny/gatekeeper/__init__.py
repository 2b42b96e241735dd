"""GateKeeper: the Amazon FPS payment-instruction (policy) language.

A script is a set of ``;``-terminated statements that all hold at once: assertions
(``TransactionAmount <= 'USD 100' orSay 'Too much';``) and typed single-assignment
declarations (``string PaymentMethod := 'abt';``). See ``docs/gatekeeper.md`` for the
language reference and the decisions taken where the FPS documentation is lost.

Pipeline: :func:`parse` (lexer + recursive-descent parser → :class:`Script`),
:func:`check` / :func:`compile_script` (types → :class:`CompiledScript`),
:func:`evaluate` (against an :class:`Environment` → :class:`Allowed` or :class:`Refused`),
:func:`print_script` (tree → text). Every malformed input yields :class:`BadRule` with
FPS-style reason texts (``Parse errors: line 1:9: unexpected token: instruction``), never
another exception. Pure code: no I/O, no clock, no float.
"""

from penny.gatekeeper.ast import BadRule, GkError, Pos, Script
from penny.gatekeeper.checker import CompiledScript, UsageKind, UsageLimit, check, compile_script
from penny.gatekeeper.evaluator import (
    ALLOWED,
    NAME_TO_FIELD,
    Allowed,
    Environment,
    Outcome,
    Refusal,
    Refused,
    Role,
    Usage,
    evaluate,
)
from penny.gatekeeper.parser import parse
from penny.gatekeeper.printer import print_expr, print_script
from penny.gatekeeper.types import (
    Duration,
    GkType,
    Instant,
    format_datetime,
    parse_datetime,
    parse_duration,
)

__all__ = [
    "ALLOWED",
    "NAME_TO_FIELD",
    "Allowed",
    "BadRule",
    "CompiledScript",
    "Duration",
    "Environment",
    "GkError",
    "GkType",
    "Instant",
    "Outcome",
    "Pos",
    "Refusal",
    "Refused",
    "Role",
    "Script",
    "Usage",
    "UsageKind",
    "UsageLimit",
    "check",
    "compile_script",
    "evaluate",
    "format_datetime",
    "parse",
    "parse_datetime",
    "parse_duration",
    "print_expr",
    "print_script",
]
