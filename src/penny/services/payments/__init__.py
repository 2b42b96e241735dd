"""The payments service: FPS Aggregated Payments operations, durable and idempotent.

The layout (ARCHITECTURE.md, "The request path"):

* :mod:`.requests` — the typed requests and their fingerprint (what a retry must repeat);
* one module per money-moving operation, each with its request type and its pure decision:
  :mod:`.pay`, :mod:`.fund`, :mod:`.settle`, :mod:`.write_off`, :mod:`.refund`,
  :mod:`.withdraw`, :mod:`.reserve`, :mod:`.settle_reserve` (Settle), :mod:`.cancel`
  (with :mod:`.holds`); :mod:`.registry` lists them;
* :mod:`.batch` — a batch's working set and the shape of an operation; :mod:`.steps` — the
  steps operations share; :mod:`.runner` — load, decide in order, write once;
* :mod:`.setup` (issuing instruments), :mod:`.authorize` (issuing SingleUse, MultiUse and
  Recurring tokens; :mod:`.authorized` pays with them), :mod:`.completion` (pending
  transactions finishing), :mod:`.listener` (the IPN outbox's hook), :mod:`.service`
  (:class:`Payments`).
"""

from penny.domain.ids import LEDGER_OWNER, TOKEN_ID_LENGTH, TRANSACTION_ID_LENGTH
from penny.services.payments.cancel import CancelRequest, cancel_request
from penny.services.payments.fund import FundPrepaidRequest
from penny.services.payments.listener import ChangeListener, Known, TransactionChange
from penny.services.payments.pay import PayRequest
from penny.services.payments.refund import RefundRequest
from penny.services.payments.requests import (
    InstrumentSetup,
    PaymentRequest,
    Result,
    SenderTokenSetup,
    SetupPostpaid,
    SetupPrepaid,
    SetupSenderToken,
    fingerprint,
)
from penny.services.payments.reserve import RESERVE_TIMEOUT_DAYS, ReserveRequest
from penny.services.payments.service import Payments
from penny.services.payments.settle import SettleDebtRequest
from penny.services.payments.settle_reserve import SettleRequest, settle_request
from penny.services.payments.withdraw import WITHDRAWAL_DAYS, WithdrawRequest
from penny.services.payments.write_off import WriteOffDebtRequest

__all__ = [
    "LEDGER_OWNER",
    "RESERVE_TIMEOUT_DAYS",
    "TOKEN_ID_LENGTH",
    "TRANSACTION_ID_LENGTH",
    "WITHDRAWAL_DAYS",
    "CancelRequest",
    "ChangeListener",
    "FundPrepaidRequest",
    "InstrumentSetup",
    "Known",
    "PayRequest",
    "PaymentRequest",
    "Payments",
    "RefundRequest",
    "ReserveRequest",
    "Result",
    "SenderTokenSetup",
    "SettleDebtRequest",
    "SettleRequest",
    "SetupPostpaid",
    "SetupPrepaid",
    "SetupSenderToken",
    "TransactionChange",
    "WithdrawRequest",
    "WriteOffDebtRequest",
    "cancel_request",
    "fingerprint",
    "settle_request",
]
