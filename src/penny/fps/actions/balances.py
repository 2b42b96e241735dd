"""The balance actions: GetPrepaidBalance and GetDebtBalance (batched reads of one
instrument), GetTotalPrepaidLiability, GetOutstandingDebtBalance and GetAccountBalance."""

from __future__ import annotations

from typing import Final

from penny.domain.model import InstrumentKind
from penny.fps.actions.call import Call
from penny.fps.actions.spec import QueryAction, ReadAction, names
from penny.fps.wire import Xml, amount_element, element
from penny.services.payment_queries import BalanceQuery, TwoBalances


def _prepaid_query(call: Call) -> BalanceQuery:
    instrument_id = call.required("PrepaidInstrumentId")
    return BalanceQuery(InstrumentKind.prepaid, call.caller_id, instrument_id)


def _prepaid_balance(balance: TwoBalances) -> Xml:
    return element(
        "PrepaidBalance",
        amount_element("AvailableBalance", balance.main),
        amount_element("PendingInBalance", balance.pending),
    )


def _debt_query(call: Call) -> BalanceQuery:
    instrument_id = call.required("CreditInstrumentId")
    return BalanceQuery(InstrumentKind.credit, call.caller_id, instrument_id)


def _debt_balance(balance: TwoBalances) -> Xml:
    return element(
        "DebtBalance",
        amount_element("AvailableBalance", balance.main),
        amount_element("PendingOutBalance", balance.pending),
    )


def _get_total_prepaid_liability(call: Call) -> Xml | None:
    balance = call.payments.total_prepaid_liability(call.caller_id)
    return element(
        "OutstandingPrepaidLiability",
        amount_element("OutstandingBalance", balance.main),
        amount_element("PendingInBalance", balance.pending),
    )


def _get_outstanding_debt_balance(call: Call) -> Xml | None:
    balance = call.payments.outstanding_debt(call.caller_id)
    return element(
        "OutstandingDebt",
        amount_element("OutstandingBalance", balance.main),
        amount_element("PendingOutBalance", balance.pending),
    )


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


GET_PREPAID_BALANCE: Final = ReadAction(
    validate=_prepaid_query, render=_prepaid_balance, parameters=names("PrepaidInstrumentId")
)
GET_DEBT_BALANCE: Final = ReadAction(
    validate=_debt_query, render=_debt_balance, parameters=names("CreditInstrumentId")
)
GET_TOTAL_PREPAID_LIABILITY: Final = QueryAction(
    handler=_get_total_prepaid_liability, parameters=names()
)
GET_OUTSTANDING_DEBT_BALANCE: Final = QueryAction(
    handler=_get_outstanding_debt_balance, parameters=names()
)
GET_ACCOUNT_BALANCE: Final = QueryAction(handler=_get_account_balance, parameters=names())
