"""Each payments operation's checks, in the order they decide, and where each is enforced.

:data:`CHECKS` is the one list per operation: its checks in precedence order (the first that
fails decides the refusal), each with the refusals it may give and the layer that enforces it:

* ``service`` — the operation's own code (``penny.services.payments.<operation>``, the batch
  runner for the two every request shares);
* ``rules`` — a check function of :mod:`penny.domain.rules`;
* ``script`` — the tokens' GateKeeper scripts: the rules Penny generates for a pipeline token
  (:data:`penny.gatekeeper.generate.CHECKS`) and the scripts a caller installed;
* ``ledger`` — the bounds of the ledger accounts the journal moves, set when the instrument
  (or the party) was set up: a prepaid balance may not go negative, a debt may not pass the
  credit limit (the account's debit limit) nor be repaid beyond itself.

A check with two layers is enforced twice, deliberately (docs/decisions.md, issue #15): the
instrument's validity is a rule of the domain (so it precedes the amount, and holds when
scripts are not evaluated) and a statement of the token's script (which is what the buyer
agreed to and what GetPaymentInstruction shows).

The list is verified against the code: ``tests/test_operation_checks.py`` checks that the
refusals listed per operation are exactly those its code can give, and drives Pay through every
combination of broken checks (with scripts evaluated and not) to check the order and layers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from penny.domain.errors import LEDGER_REFUSALS, Refusal
from penny.domain.model import Operation


class Layer(enum.Enum):
    """Where a check is enforced (see the module docstring)."""

    service = "service"
    rules = "rules"
    script = "script"
    ledger = "ledger"


@dataclass(frozen=True, slots=True)
class Check:
    """One check of an operation: the refusals it may give and where it is enforced."""

    name: str
    refusals: tuple[Refusal, ...]
    layers: tuple[Layer, ...]
    #: The code that enforces it.
    where: str


_SERVICE, _RULES, _SCRIPT, _LEDGER = Layer.service, Layer.rules, Layer.script, Layer.ledger
R = Refusal

#: What every request is checked for first (the batch runner, before its operation).
_REQUEST: Final = (
    Check("caller_reference", (R.invalid_params,), (_SERVICE,), "payments.runner.decide"),
    Check("retry", (R.duplicate_request,), (_SERVICE,), "payments.runner.decide"),
)
_TOKEN: Final = (R.unknown_token, R.wrong_token_type, R.token_not_active)
_VALIDITY: Final = (R.unknown_instrument, R.instrument_not_yet_valid, R.instrument_expired)
_AMOUNT: Final = Check(
    "amount",
    (R.invalid_currency, R.invalid_amount, R.amount_out_of_range),
    (_RULES,),
    "rules.check_amount",
)
#: What a token's script may refuse: its generated rules' codes, and the language's own.
_SCRIPTS: Final = (
    R.token_used_already,
    R.bad_rule,
    R.incompatible_instructions,
    R.wrong_token_type,
    R.unknown_instrument,
    R.instrument_access_denied,
    R.instrument_not_yet_valid,
    R.instrument_expired,
    R.amount_below_minimum,
    R.amount_above_maximum,
    R.gatekeeper_denied,
    R.token_usage_exceeded,
)
#: Whatever the ledger refuses a journal for (penny.domain.errors.LEDGER_REFUSALS).
_FUNDS: Final = tuple(dict.fromkeys(LEDGER_REFUSALS.values()))
_METHOD: Final = Check(
    "payment_method", (R.invalid_params,), (_SERVICE,), "payments.steps.charge (method gone)"
)
_MISMATCH: Final = Check(
    "token_instrument", (R.token_instrument_mismatch,), (_SERVICE,), "the operation's decide"
)
_CREDIT_INSTRUMENT: Final = Check(
    "instrument", (R.unknown_instrument,), (_SERVICE,), "the operation's decide (any validity)"
)


def _funds(where: str) -> Check:
    return Check("funds", _FUNDS, (_LEDGER,), where)


#: Pay's checks; Reserve makes the same ones, in the same order (payments.pay.authorise).
_PAY: Final = (
    *_REQUEST,
    Check(
        "recipient_token",
        (R.unknown_recipient_token, R.recipient_token_not_active),
        (_SERVICE,),
        "payments.pay._recipient_slot",
    ),
    Check("sender_token", _TOKEN, (_RULES,), "rules.check_token"),
    Check(
        "instrument",
        _VALIDITY,
        (_RULES, _SCRIPT),
        "rules.check_instrument; generated rules not_yet_valid and expired",
    ),
    _AMOUNT,
    Check("scripts", _SCRIPTS, (_SCRIPT,), "services.gatekeeper.Guard.check (both tokens)"),
    Check(
        "global_amount_limit",
        (R.exceeds_instrument_limits, R.token_usage_exceeded),
        (_RULES,),
        "rules.check_global_amount_limit (credit); rules.check_authorized_total (MultiUse)",
    ),
    Check(
        "payment_method",
        (R.invalid_params, R.payment_method_declined),
        (_SERVICE,),
        "payments.authorized (SingleUse, MultiUse, Recurring: the token's payment method"
        " is gone, or declined at once)",
    ),
    _funds(
        "prepaid: balance may not go negative; credit: debit limit = credit limit;"
        " an authorization on the balance: the buyer's balance"
    ),
)

#: Every operation's checks in precedence order (see the module docstring).
CHECKS: Final[Mapping[Operation, tuple[Check, ...]]] = {
    Operation.pay: _PAY,
    Operation.reserve: _PAY,
    Operation.settle: (
        *_REQUEST,
        Check(
            "reserve",
            (R.unknown_transaction, R.invalid_transaction_state),
            (_SERVICE,),
            "payments.settle_reserve (Reserved, not past its timeout)",
        ),
        _AMOUNT,
        Check(
            "reserve_amount",
            (R.settle_exceeds_reserve,),
            (_SERVICE,),
            "payments.settle_reserve (the hold always posts)",
        ),
    ),
    Operation.fund_prepaid: (
        *_REQUEST,
        Check("funding_token", _TOKEN, (_RULES,), "rules.check_token"),
        Check(
            "instrument",
            _VALIDITY,
            (_RULES, _SCRIPT),
            "rules.check_instrument; generated rules not_yet_valid and expired",
        ),
        _MISMATCH,
        _AMOUNT,
        Check("funding_limit", (R.funding_limit_exceeded,), (_RULES,), "rules.check_funding_limit"),
        Check("script", _SCRIPTS, (_SCRIPT,), "payments.steps.check_pipeline_token"),
        _METHOD,
        _funds("the payment method's source account"),
    ),
    Operation.settle_debt: (
        *_REQUEST,
        Check("settlement_token", _TOKEN, (_RULES,), "rules.check_token"),
        _CREDIT_INSTRUMENT,
        _MISMATCH,
        _AMOUNT,
        Check("script", _SCRIPTS, (_SCRIPT,), "payments.steps.check_pipeline_token"),
        _METHOD,
        _funds("the debt may not be repaid beyond itself"),
    ),
    Operation.write_off_debt: (
        *_REQUEST,
        _CREDIT_INSTRUMENT,
        _AMOUNT,
        _funds("the debt may not be written off beyond itself"),
    ),
    Operation.refund: (
        *_REQUEST,
        Check(
            "original",
            (
                R.unknown_transaction,
                R.invalid_transaction_state,
                R.not_refundable,
                R.original_not_complete,
                R.original_failed,
                R.fully_refunded,
            ),
            (_SERVICE,),
            "payments.refund._refundable",
        ),
        _AMOUNT,
        Check("refund_left", (R.refund_exceeds_original,), (_SERVICE,), "payments.refund"),
        Check(
            "debt_settled",
            (R.debt_already_settled,),
            (_SERVICE, _LEDGER),
            "payments.refund (a later SettleDebt); the debt's bound",
        ),
        _funds("the prepaid value or debt being given back"),
    ),
    Operation.withdraw: (
        *_REQUEST,
        Check("account", (R.invalid_params,), (_SERVICE,), "payments.withdraw (business only)"),
        _AMOUNT,
        _funds("the merchant's payable balance may not go negative"),
    ),
}


def refusals_of(operation: Operation) -> frozenset[Refusal]:
    """Every refusal ``operation`` may give."""
    return frozenset(r for check in CHECKS[operation] for r in check.refusals)
