"""The one refusal → FPS error table (penny.domain.errors.FPS_ERRORS) is complete and is the
only place error codes live (issue #15); transaction status codes are one enum."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from penny.domain.errors import (
    FPS_ERRORS,
    HTTP_BAD_REQUEST,
    HTTP_SERVICE_UNAVAILABLE,
    LEDGER_REFUSALS,
    PaymentsError,
    Refusal,
)
from penny.domain.fees import Method
from penny.domain.model import Operation, StatusCode, Transaction
from penny.domain.model import Status as TransactionStatus
from penny.fps import wire
from penny.fps.actions.call import invalid
from penny.ledger.results import ResultCode
from penny.storage import payments_sql
from penny.web.cobranded.params import Status
from penny.web.cobranded.returns import REFUSAL_STATUS
from penny.web.endpoint import INTERNAL_ERROR

SRC = Path(__file__).resolve().parents[1] / "src" / "penny"

#: The request-level codes of the FPS front end, named once in penny.fps.wire.
FRONT_END_CODES = {
    wire.MISSING_PARAMETER,
    wire.INVALID_PARAMETER_VALUE,
    wire.INVALID_PARAMETER_COMBINATION,
    wire.INVALID_REQUEST,
    wire.INVALID_ACTION,
    wire.REQUEST_EXPIRED,
    wire.INVALID_CLIENT_TOKEN_ID,
    wire.SIGNATURE_DOES_NOT_MATCH,
}
TABLE_CODES = {error.code for error in FPS_ERRORS.values()}


def test_every_refusal_has_an_entry_with_every_field() -> None:
    assert set(FPS_ERRORS) == set(Refusal)
    for refusal, error in FPS_ERRORS.items():
        assert error.code, refusal
        assert error.message, refusal
        assert error.http_status in (HTTP_BAD_REQUEST, HTTP_SERVICE_UNAVAILABLE), refusal
        # Transient (nothing ran; retry the same request) exactly when clients retry by status.
        assert error.transient == (error.http_status == HTTP_SERVICE_UNAVAILABLE), refusal
        assert Status(error.cbui_status) in set(Status), refusal


def test_ledger_refusals_keep_transience_and_bounds_codes() -> None:
    """The ledger's balance and bound codes are refusals; its transient code stays transient."""
    for code in (
        ResultCode.insufficient_balance,
        ResultCode.exceeds_debits,
        ResultCode.exceeds_limit,
        ResultCode.counter_overflow,
        ResultCode.account_closed,
    ):
        assert not FPS_ERRORS[LEDGER_REFUSALS[code]].transient, code
    for code, refusal in LEDGER_REFUSALS.items():
        assert FPS_ERRORS[refusal].transient == code.transient, code


def test_front_end_codes_are_not_domain_codes() -> None:
    assert not FRONT_END_CODES & TABLE_CODES


def test_the_internal_error_and_invalid_params_are_the_tables() -> None:
    internal = FPS_ERRORS[Refusal.internal_error]
    assert (INTERNAL_ERROR.code, INTERNAL_ERROR.message, INTERNAL_ERROR.http_status) == (
        "InternalError",
        "The server could not serve the request; retry it with the same CallerReference.",
        503,
    )
    assert (internal.code, internal.http_status, internal.transient) == ("InternalError", 503, True)
    fault = invalid("X is wrong.").fault
    assert (fault.code, fault.message, fault.http_status) == ("InvalidParams", "X is wrong.", 400)


def test_cbui_statuses_are_the_tables_and_complete() -> None:
    assert set(REFUSAL_STATUS) == set(Refusal)
    assert {r: s for r, s in REFUSAL_STATUS.items() if s is not Status.system_error} == {
        Refusal.instrument_access_denied: Status.not_marketplace,
        Refusal.duplicate_request: Status.not_permitted,
        Refusal.invalid_params: Status.caller_exception,
    }


def test_payments_error_carries_its_entry() -> None:
    error = PaymentsError(Refusal.busy)
    assert error.fps is FPS_ERRORS[Refusal.busy]
    assert wire.refusal_error(Refusal.busy).http_status == 503


# -- no code outside the table -------------------------------------------------------------------


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    # ``__all__`` lists names, not codes (``BadRule`` is also the GateKeeper's class).
    exports = {
        id(constant)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        for constant in ast.walk(node.value)
    }
    skipped = docstrings | exports
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skipped
    ]


#: Where a code may be written as a literal: the table, the front end's constants, and the
#: transaction status enum (TransactionDenied is also a StatusCode).
HOMES = {
    "domain/errors.py": TABLE_CODES,
    "fps/wire.py": FRONT_END_CODES,
    "domain/model.py": {code.value for code in StatusCode},
}


def test_no_error_code_is_written_outside_its_one_home() -> None:
    codes = TABLE_CODES | FRONT_END_CODES
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        allowed = HOMES.get(relative, set())
        for line, text in _strings(ast.parse(path.read_text())):
            if text in codes and text not in allowed:
                found.append(f"{relative}:{line}: {text!r}")
    assert found == []


def test_front_end_constants_are_each_named_once() -> None:
    literals = [text for _line, text in _strings(ast.parse((SRC / "fps/wire.py").read_text()))]
    assert all(literals.count(code) == 1 for code in FRONT_END_CODES)


def test_faults_are_built_from_named_codes_only() -> None:
    """``WireFault(...)`` and ``render_error(...)`` never take a literal code."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            first = node.args[0]
            if name in ("WireFault", "render_error") and isinstance(first, ast.Constant):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []


# -- transaction status codes ---------------------------------------------------------------------


@pytest.mark.parametrize("code", list(StatusCode), ids=lambda c: c.name)
def test_status_codes_round_trip_through_their_stored_text(code: StatusCode) -> None:
    assert StatusCode(code.value) is code
    assert str(code) == code.value  # a StrEnum: written as its value on every wire
    txn = Transaction(
        "t", Operation.pay, "c", "r", "f", "s", "c", 1, "USD", 0, Method.card,
        TransactionStatus.success, code, "", 0, None,
    )  # fmt: skip
    row = payments_sql._TRANSACTION.row(txn)
    assert row["status_code"] == code.value
    assert payments_sql._TRANSACTION.record(row) == txn


def test_status_codes_are_the_ones_fps_reported() -> None:
    assert [code.value for code in StatusCode] == [
        "",
        "Success",
        "PendingNetworkResponse",
        "TransactionDenied",
        "Canceled",
        "Expired",
    ]
