"""Reserve on a SingleUse or MultiUse sender token (issue #19): a hold on the buyer's payment
method.

The checks are Pay's on these tokens (:mod:`.authorized`), in the same order, with the token's
script evaluated for a ``Reserve`` when the token is SingleUse (its pipeline's ``reserve=True``
wrote ``OperationType == 'Reserve'`` into it; a SingleUse token made for Pay is refused there
with ``wrong_token_type``) and for a ``Pay`` when it is MultiUse. A Recurring token pays a
fixed amount per period and cannot reserve. The payment method is asked at once: a decline —
now or, for a card, later — refuses the Reserve (``payment_method_declined``). The hold is
Pay's journal on these tokens, pending: from the card or bank (external funding) or the buyer's
balance (the ledger holds it there) to the merchant less the fee. The amount counts toward the
authorization's charged total until it is released.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from penny.domain import rules
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.funding import ChargeOutcome
from penny.domain.model import (
    Operation,
    Token,
    TokenKind,
    Transaction,
)
from penny.services import gatekeeper as gk
from penny.services.payments import authorized
from penny.services.payments.batch import Batch
from penny.services.payments.steps import book, refuse, reserved

if TYPE_CHECKING:
    from penny.services.payments.reserve import ReserveRequest


def decide(
    batch: Batch,
    request: ReserveRequest,
    print_: str,
    token: Token,
    recipient: gk.Slot | None,
    expires_at: int,
) -> Transaction:
    """The Reserve ``request`` on ``token``, held until ``expires_at``."""
    refuse(rules.check_token(token, token.kind, request.caller_id))
    if token.kind is TokenKind.recurring:
        raise PaymentsError(Refusal.wrong_token_type, "A Recurring token cannot reserve.")
    single = token.kind is TokenKind.single_use
    operation = Operation.reserve if single else Operation.pay
    checked = authorized.check(batch, request, token, recipient, operation)
    txn, fee, decision = authorized.charged(
        batch, request, print_, Operation.reserve, token, checked
    )
    if decision.outcome is ChargeOutcome.declined or not decision.completes_ok:
        raise PaymentsError(Refusal.payment_method_declined, decision.reason)
    legs = authorized.legs_of(batch, checked, request.amount, fee)
    journal_id = book(batch, txn.id, legs, pending=True)
    authorized.counted(batch, checked, request.amount)
    return reserved(txn, journal_id, expires_at)
