"""Cancel: release a Reserved transaction (or a pending charge) without moving money.

The transaction keeps its id and becomes ``Cancelled`` (status code ``Canceled``); its hold
is voided (:mod:`.holds`). Cancel creates no transaction of its own, so it is idempotent by
nature: cancelling a cancelled (or expired) transaction answers it as it is. Anything else —
a Success, a Failure — is ``InvalidTransactionState``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.model import CANCELED_MESSAGE, Status, StatusCode, Transaction
from penny.services.payments.batch import Batch, Needs, OperationSpec
from penny.services.payments.holds import releasable, release
from penny.services.payments.requests import PaymentRequest
from penny.services.payments.steps import own_transaction


@dataclass(frozen=True, slots=True)
class CancelRequest(PaymentRequest):
    transaction_id: str
    description: str = ""
    ipn_url: str | None = None


def cancel_request(
    caller_id: str, transaction_id: str, description: str = "", ipn_url: str | None = None
) -> CancelRequest:
    """A Cancel keyed by the transaction it cancels (FPS's Cancel has no CallerReference)."""
    reference = f"Cancel {transaction_id}"
    return CancelRequest(caller_id, reference, transaction_id, description, ipn_url)


def needs(request: CancelRequest) -> Needs:
    return Needs(transactions=(request.transaction_id,))


def decide(batch: Batch, request: CancelRequest, _print: str) -> Transaction:
    txn = own_transaction(batch, request.caller_id, request.transaction_id)
    if txn.status is Status.cancelled:
        return txn
    if not releasable(txn):
        raise PaymentsError(Refusal.invalid_transaction_state)
    instrument = batch.instruments.get(txn.instrument_id or "")
    done, given_back = release(
        batch.session, txn, instrument, StatusCode.canceled, CANCELED_MESSAGE
    )
    if request.ipn_url is not None:  # the Cancel's OverrideIPNURL hears of it
        done = replace(done, ipn_url=request.ipn_url)
    if given_back is not None:
        batch.put_instrument(given_back)
    batch.changed_transactions[txn.id] = done
    return done


SPEC = OperationSpec(CancelRequest, needs, decide, records=False)
