"""Reserve: hold an amount on the sender's instrument, to be charged later by Settle.

This module reserves on prepaid and postpaid sender tokens; a SingleUse or MultiUse token's
Reserve holds the amount on the buyer's payment method (:mod:`.reserve_authorized`).

A Reserve takes Pay's parameters and makes Pay's checks (the sender token and its
instrument, the amount, the GateKeeper scripts evaluated for a Pay, usage counted now), then
books Pay's journal as a *pending* journal: the prepaid balance or the credit line is held
(the ledger counts pending debits against what may be spent, so a hold cannot be spent twice)
and nothing reaches the merchant yet. A ``RecipientTokenId`` naming a recipient token makes
it a marketplace Reserve: Pay's marketplace legs are held in the same journal, and Settle
takes the caller's fee pro rata (docs/decisions.md, #19). The transaction is ``Reserved``
until Settle charges (part of) it, Cancel releases it, or its timeout passes
(``complete_due`` expires it: ``Cancelled`` with status code ``Expired``). The timeout is the
request's ``TransactionTimeoutInMins``, else :data:`RESERVE_TIMEOUT_DAYS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from penny.domain.model import (
    AUTHORIZATION_TOKEN_KINDS,
    Operation,
    Transaction,
)
from penny.epoch import MICROS_PER_DAY, MICROS_PER_SECOND
from penny.services.payments import reserve_authorized
from penny.services.payments.batch import Batch, OperationSpec
from penny.services.payments.pay import (
    PayRequest,
    authorise,
    marketplace_of,
    needs,
    spent,
    tokens_of,
)
from penny.services.payments.steps import reserved

#: How long an unsettled reserve holds its amount when the request names no timeout.
RESERVE_TIMEOUT_DAYS: Final = 7


@dataclass(frozen=True, slots=True)
class ReserveRequest(PayRequest):
    """Pay's request, plus the reserve's own timeout (``TransactionTimeoutInMins``)."""

    timeout_minutes: int | None = None


def expires_at(request: ReserveRequest, now: int) -> int:
    """When a reserve made ``now`` expires unless settled or cancelled first."""
    if request.timeout_minutes is None:
        return now + RESERVE_TIMEOUT_DAYS * MICROS_PER_DAY
    return now + request.timeout_minutes * 60 * MICROS_PER_SECOND


def decide(batch: Batch, request: ReserveRequest, print_: str) -> Transaction:
    merchant = marketplace_of(batch, request)
    recipient, token = tokens_of(batch, request, merchant)
    if token is not None and token.kind in AUTHORIZATION_TOKEN_KINDS:
        expiry = expires_at(request, batch.now)
        return reserve_authorized.decide(batch, request, print_, token, recipient, expiry, merchant)
    c = authorise(batch, request, recipient, token)
    txn, journal_id = spent(batch, request, print_, c, merchant, Operation.reserve)
    return reserved(txn, journal_id, expires_at(request, batch.now))


SPEC = OperationSpec(ReserveRequest, needs, decide)
