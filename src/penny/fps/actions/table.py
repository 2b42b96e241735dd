"""The table of FPS actions, and the two steps every request takes through it.

:func:`validate` checks a request that has already been decoded, authenticated and given a
known ``Version``/``Action`` against its action's schema (an unknown parameter name is
``InvalidRequest`` with the wording real FPS used, §4.3) and turns it into the
:data:`~penny.fps.actions.spec.Work` to do. The work is then executed — by the server in
batches (:mod:`penny.web.commit`), or directly by :func:`run_action` — and its outcome becomes
the content of the ``<{Action}Result>`` element in schema order (spec §4.4, §5), ``None`` for
CancelToken (which has no Result), or a :class:`~penny.fps.wire.WireFault`:
:func:`committed_result`, :func:`read_result`, :func:`query_result`.

Every action of the 2010-08-28 WSDL is served since #19 (:data:`NOT_SUPPORTED` is empty); one
not in :data:`ACTIONS` would answer ``InvalidAction`` with a message saying so (HTTP 400): the
standard AWS code for an action a service does not offer, which every client handles as a
non-retriable error. Domain refusals come from
:data:`penny.domain.errors.FPS_ERRORS` through :func:`~penny.fps.wire.refusal_error`; another
merchant's ids are refused exactly like unknown ones (the payments service checks ownership).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from penny.domain.errors import PaymentsError
from penny.domain.model import Transaction
from penny.fps.actions import (
    balances,
    instructions,
    marketplace,
    payments,
    signatures,
    subscriptions,
    tokens,
    transactions,
)
from penny.fps.actions.call import COMMON_PARAMETERS, Call, ParameterError
from penny.fps.actions.spec import (
    ActionSpec,
    CommitAction,
    CommitWork,
    QueryAction,
    QueryWork,
    ReadAction,
    ReadWork,
    Work,
)
from penny.fps.wire import (
    INVALID_ACTION,
    INVALID_REQUEST,
    WireFault,
    Xml,
    namespace_for,
    refusal_error,
)
from penny.parties import Directory
from penny.services.payment_queries import TwoBalances
from penny.services.payments import Payments

if TYPE_CHECKING:
    from penny.signing import Signer

#: Every action Penny serves: the one place to add one.
ACTIONS: Final[Mapping[str, ActionSpec]] = {
    "Pay": payments.PAY,
    "FundPrepaid": payments.FUND_PREPAID,
    "SettleDebt": payments.SETTLE_DEBT,
    "WriteOffDebt": payments.WRITE_OFF_DEBT,
    "Refund": payments.REFUND,
    "CancelToken": tokens.CANCEL_TOKEN,
    "GetPrepaidBalance": balances.GET_PREPAID_BALANCE,
    "GetTotalPrepaidLiability": balances.GET_TOTAL_PREPAID_LIABILITY,
    "GetDebtBalance": balances.GET_DEBT_BALANCE,
    "GetOutstandingDebtBalance": balances.GET_OUTSTANDING_DEBT_BALANCE,
    "GetAccountBalance": balances.GET_ACCOUNT_BALANCE,
    "GetTransaction": transactions.GET_TRANSACTION,
    "GetTransactionStatus": transactions.GET_TRANSACTION_STATUS,
    "GetTokenByCaller": tokens.GET_TOKEN_BY_CALLER,
    "GetTokens": tokens.GET_TOKENS,
    "GetTokenUsage": tokens.GET_TOKEN_USAGE,
    "VerifySignature": signatures.VERIFY_SIGNATURE,
    "InstallPaymentInstruction": instructions.INSTALL_PAYMENT_INSTRUCTION,
    "GetPaymentInstruction": instructions.GET_PAYMENT_INSTRUCTION,
    "GetAccountActivity": transactions.GET_ACCOUNT_ACTIVITY,
    "Reserve": payments.RESERVE,
    "Settle": payments.SETTLE,
    "Cancel": payments.CANCEL,
    "GetRecipientVerificationStatus": marketplace.GET_RECIPIENT_VERIFICATION_STATUS,
    "GetSubscriptionDetails": subscriptions.GET_SUBSCRIPTION_DETAILS,
    "GetTransactionsForSubscription": subscriptions.GET_TRANSACTIONS_FOR_SUBSCRIPTION,
    "CancelSubscriptionAndRefund": subscriptions.CANCEL_SUBSCRIPTION_AND_REFUND,
}

#: The actions of the 2010-08-28 WSDL Penny does not serve yet: none since #19.
NOT_SUPPORTED: Final[frozenset[str]] = frozenset()


def _unknown_parameter(
    spec: ActionSpec, params: Mapping[str, str], version: str
) -> WireFault | None:
    for name in sorted(params):
        if name in COMMON_PARAMETERS or name in spec.parameters:
            continue
        if spec.pattern is not None and spec.pattern.fullmatch(name):
            continue
        return WireFault(
            INVALID_REQUEST,
            "The request doesn't conform to the interface specification in the WSDL. "
            f'Element/Parameter "{namespace_for(version)}:{name}" in request is either '
            "invalid or is found at unexpected location",
        )
    return None


def _not_served(action: str) -> WireFault:
    served = ", ".join(sorted(ACTIONS))
    return WireFault(
        INVALID_ACTION,
        f"The action {action} is not supported by this server yet. Supported actions: {served}.",
    )


def validate(call: Call, action: str) -> Work | WireFault:
    """The work ``call`` asks for, or why it is refused before any work."""
    spec = ACTIONS.get(action)
    if spec is None:
        return _not_served(action)
    if not spec.parameters.issuperset(call.params.keys() - COMMON_PARAMETERS):
        unknown = _unknown_parameter(spec, call.params, call.version)
        if unknown is not None:
            return unknown
    try:
        if isinstance(spec, CommitAction):
            return CommitWork(spec.validate(call))
        if isinstance(spec, ReadAction):
            return ReadWork(spec.validate(call), spec.render)
    except ParameterError as fault:
        return fault.fault
    assert isinstance(spec, QueryAction)
    return QueryWork(call, spec.handler)


def committed_result(outcome: Transaction | PaymentsError) -> Xml | WireFault:
    """What a money-moving request answers once it was decided (and committed)."""
    return payments.decided_result(outcome)


def read_result(work: ReadWork, outcome: TwoBalances | PaymentsError) -> Xml | WireFault:
    """What a balance read answers once it was read."""
    if isinstance(outcome, PaymentsError):
        return refusal_error(outcome.refusal, outcome.detail)
    return work.render(outcome)


def query_result(work: QueryWork) -> Xml | WireFault | None:
    """Run a query's handler (it reads the store: blocking) and answer."""
    try:
        return work.handler(work.call)
    except ParameterError as fault:
        return fault.fault
    except PaymentsError as error:
        return refusal_error(error.refusal, error.detail)


def run_action(
    payments_service: Payments,
    directory: Directory,
    caller_id: str,
    action: str,
    version: str,
    params: Mapping[str, str],
    signer: Signer | None = None,
) -> Xml | WireFault | None:
    """Serve one authenticated request of a known ``action`` directly: its Result content or
    a fault. ``None`` is a success without a Result element (CancelToken)."""
    call = Call(payments_service, directory, caller_id, version, params, signer)
    work = validate(call, action)
    if isinstance(work, WireFault):
        return work
    return execute(payments_service, work)


def execute(payments_service: Payments, work: Work) -> Xml | WireFault | None:
    """Do ``work`` now with ``payments_service``, without batching, and answer."""
    if isinstance(work, QueryWork):
        return query_result(work)
    if isinstance(work, CommitWork):
        return committed_result(payments_service.submit([work.request])[0])
    try:
        balance: TwoBalances | PaymentsError = payments_service.balance(work.query)
    except PaymentsError as refused:
        balance = refused
    return read_result(work, balance)
