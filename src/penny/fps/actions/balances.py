"""The balance actions: GetPrepaidBalance and GetDebtBalance (batched reads of one
instrument), GetTotalPrepaidLiability, GetOutstandingDebtBalance and GetAccountBalance.

The four two-amount answers differ only in their element names: each is one row of a table
(:func:`_two_amounts`), and the one-instrument reads one row of :func:`_instrument_read`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from penny.domain.model import InstrumentKind
from penny.fps.actions.call import Call
from penny.fps.actions.spec import QueryAction, ReadAction, names
from penny.fps.wire import Xml, amount_element, element
from penny.services.payment_queries import BalanceQuery, TwoBalances


def _two_amounts(result: str, main: str, pending: str) -> Callable[[TwoBalances], Xml]:
    """The renderer of ``<result><main>…</main><pending>…</pending></result>``."""

    def render(balance: TwoBalances) -> Xml:
        return element(
            result, amount_element(main, balance.main), amount_element(pending, balance.pending)
        )

    return render


def _instrument_read(kind: InstrumentKind, parameter: str, result: str, pending: str) -> ReadAction:
    """GetPrepaidBalance or GetDebtBalance: one instrument, named by ``parameter``, read."""

    def query(call: Call) -> BalanceQuery:
        return BalanceQuery(kind, call.caller_id, call.required(parameter))

    render = _two_amounts(result, "AvailableBalance", pending)
    return ReadAction(validate=query, render=render, parameters=names(parameter))


def _caller_total(read: Callable[[Call], TwoBalances], result: str, pending: str) -> QueryAction:
    """GetTotalPrepaidLiability or GetOutstandingDebtBalance: a total over the caller's books."""
    render = _two_amounts(result, "OutstandingBalance", pending)

    def handler(call: Call) -> Xml | None:
        return render(read(call))

    return QueryAction(handler=handler, parameters=names())


def _get_account_balance(call: Call) -> Xml | None:
    balance = call.payments.account_balance(call.caller_id)
    return element(
        "AccountBalance",
        amount_element("TotalBalance", balance.total),
        amount_element("PendingInBalance", balance.pending_in),
        amount_element("PendingOutBalance", balance.pending_out),
        element(
            "AvailableBalances",
            amount_element("DisburseBalance", balance.disburse),
            amount_element("RefundBalance", balance.refund),
        ),
    )


GET_PREPAID_BALANCE: Final = _instrument_read(
    InstrumentKind.prepaid, "PrepaidInstrumentId", "PrepaidBalance", "PendingInBalance"
)
GET_DEBT_BALANCE: Final = _instrument_read(
    InstrumentKind.credit, "CreditInstrumentId", "DebtBalance", "PendingOutBalance"
)
GET_TOTAL_PREPAID_LIABILITY: Final = _caller_total(
    lambda call: call.payments.total_prepaid_liability(call.caller_id),
    "OutstandingPrepaidLiability",
    "PendingInBalance",
)
GET_OUTSTANDING_DEBT_BALANCE: Final = _caller_total(
    lambda call: call.payments.outstanding_debt(call.caller_id),
    "OutstandingDebt",
    "PendingOutBalance",
)
GET_ACCOUNT_BALANCE: Final = QueryAction(handler=_get_account_balance, parameters=names())
