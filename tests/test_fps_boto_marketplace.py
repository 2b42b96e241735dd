"""The real boto 2.49.0 ``FPSConnection`` drives the marketplace (issue #19) against a real
Penny server over HTTP, on both stores: ``get_recipient_verification_status``, a marketplace
``pay`` with both marketplace fees, ``get_transaction`` showing the recipient token and fees,
a ``refund`` with a MarketplaceRefundPolicy, a ``reserve`` with marketplace fees and its
partial ``settle``, and boto's errors for the refusals (see
``tests/test_fps_boto.py`` for how boto runs in a subprocess)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from boto_client import BOTO_CONNECT, boto_server, needs_boto, run_boto
from builders import Shop, new_shop, open_store
from penny.clock import SystemClock
from penny.domain.model import RecipientToken
from penny.money import parse_amount
from penny.services.factory import Services
from penny.services.payments import FundPrepaidRequest, Payments


@dataclass
class Market:
    """A store on the system clock (boto signs with the wall clock), the usual shop, the
    buyer's prepaid sender token (its instrument funded with $20.00) and the other merchant's
    recipient token ($0.25 + 5 % at most)."""

    services: Services
    shop: Shop
    sender_token_id: str
    token: RecipientToken

    @property
    def payments(self) -> Payments:
        return self.services.payments

    def drive(self, script: str, tmp_path: Path) -> dict[str, object]:
        """Run the boto ``script`` against a live server with this market's ids."""
        with boto_server(self.services, self.shop.merchant) as connect:
            job = {**connect, "sender": self.sender_token_id, "recipient_token": self.token.id}
            return run_boto(script, job, tmp_path)


@pytest.fixture
def market(database_url: str) -> Iterator[Market]:
    services = open_store(database_url, clock=SystemClock())
    shop = new_shop(services, bank=False)
    setup = shop.prepaid()
    funding = FundPrepaidRequest(
        shop.merchant.id,
        "fund-1",
        setup.second_token.id,
        setup.instrument.id,
        parse_amount("20", "USD"),
    )
    services.payments.execute(funding)
    token = shop.recipient_token(max_fixed="0.25", max_variable=500)
    yield Market(services, shop, setup.sender_token.id, token)
    services.database.dispose()


BOTO_DRIVER = (
    BOTO_CONNECT
    + r"""
r = conn.get_recipient_verification_status(RecipientTokenId=job["recipient_token"])
out["verification"] = r.GetRecipientVerificationStatusResult.RecipientVerificationStatus
fees = {"MarketplaceFixedFee.Value": "0.25", "MarketplaceFixedFee.CurrencyCode": "USD",
        "MarketplaceVariableFee": "5"}
r = conn.pay(SenderTokenId=job["sender"], TransactionAmount="10",
             RecipientTokenId=job["recipient_token"], CallerReference="boto-mp-1", **fees)
out["pay"] = [r.PayResult.TransactionId, r.PayResult.TransactionStatus]
r = conn.get_transaction(TransactionId=out["pay"][0])
txn = r.GetTransactionResult.Transaction
# boto has no type for MarketplaceFees (it flattens it): its presence is what boto shows.
out["transaction"] = [txn.RecipientTokenId, str(txn.FPSFees.Value),
                      hasattr(txn, "MarketplaceFees"), txn.FPSFeesPaidBy, txn.RecipientName,
                      txn.RecipientEmail]
r = conn.refund(TransactionId=out["pay"][0], RefundAmount="4", CallerReference="boto-mp-r1",
                MarketplaceRefundPolicy="MasterAndMarketplaceTxn")
out["refund"] = [r.RefundResult.TransactionStatus]

out["errors"] = refusals([
    ("too_high", lambda: conn.pay(SenderTokenId=job["sender"], TransactionAmount="1",
                                  RecipientTokenId=job["recipient_token"],
                                  MarketplaceVariableFee="6", CallerReference="boto-mp-2")),
    ("not_marketplace", lambda: conn.pay(SenderTokenId=job["sender"], TransactionAmount="1",
                                         MarketplaceVariableFee="1",
                                         CallerReference="boto-mp-3")),
    ("unknown_token", lambda: conn.get_recipient_verification_status(
        RecipientTokenId="NOSUCH")),
])
print(json.dumps(out))
"""
)


@needs_boto
def test_boto_drives_a_marketplace_pay(market: Market, tmp_path: Path) -> None:
    # The server's default fee schedule: a marketplace Pay costs 0.5 % + $0.01 (ABT).
    out = market.drive(BOTO_DRIVER, tmp_path)

    assert out["verification"] == "VerificationComplete"
    pay = out["pay"]
    assert isinstance(pay, list)
    pay_id, status = pay
    assert status == "Success"
    assert out["transaction"] == [
        market.token.id,
        "0.060000",
        True,
        "Recipient",
        "Elsewhere",
        "else@example.com",
    ]
    assert out["refund"] == ["Success"]
    # $10 − $0.75 − $0.06, then $4 back less 40 % of the fees ($0.30 + $0.02).
    assert market.payments.account_balance(market.shop.other.id).total.minor == 919 - 368
    booked = market.payments.transaction(market.shop.merchant.id, pay_id)
    assert (booked.refunded, booked.marketplace_fee) == (400, 75)
    assert out["errors"] == {
        "too_high": ["IncompatibleTokens", 400, "IncompatibleTokens"],
        "not_marketplace": ["NotMarketplaceApp", 400, "NotMarketplaceApp"],
        "unknown_token": ["InvalidParams", 400, "InvalidParams"],
    }
    assert market.services.ledger.audit().ok


BOTO_RESERVE = (
    BOTO_CONNECT
    + r"""
fees = {"MarketplaceFixedFee.Value": "0.25", "MarketplaceFixedFee.CurrencyCode": "USD",
        "MarketplaceVariableFee": "5"}
r = conn.reserve(SenderTokenId=job["sender"], TransactionAmount="10",
                 RecipientTokenId=job["recipient_token"], CallerReference="boto-mr-1", **fees)
out["reserve"] = [r.ReserveResult.TransactionId, r.ReserveResult.TransactionStatus]
r = conn.settle(ReserveTransactionId=out["reserve"][0], TransactionAmount="6")
out["settle"] = [r.SettleResult.TransactionId, r.SettleResult.TransactionStatus]
r = conn.get_transaction(TransactionId=out["settle"][0])
txn = r.GetTransactionResult.Transaction
out["transaction"] = [txn.FPSOperation, txn.RecipientTokenId, str(txn.FPSFees.Value),
                      txn.FPSFeesPaidBy, txn.RecipientName]
r = conn.refund(TransactionId=out["settle"][0], RefundAmount="6", CallerReference="boto-mr-r1",
                MarketplaceRefundPolicy="MasterAndMarketplaceTxn")
out["refund"] = [r.RefundResult.TransactionStatus]
try:
    conn.reserve(SenderTokenId=job["sender"], TransactionAmount="1",
                 RecipientTokenId=job["recipient_token"], MarketplaceVariableFee="6",
                 CallerReference="boto-mr-2")
except Exception as error:
    out["too_high"] = [type(error).__name__, error.status, error.error_code]
print(json.dumps(out))
"""
)


@needs_boto
def test_boto_drives_a_marketplace_reserve_and_settle(market: Market, tmp_path: Path) -> None:
    # The server's default fee schedule: a marketplace charge costs 0.5 % + $0.01 (ABT).
    caller_before = market.payments.account_balance(market.shop.merchant.id).total.minor
    out = market.drive(BOTO_RESERVE, tmp_path)

    reserve, settled = out["reserve"], out["settle"]
    assert isinstance(reserve, list)
    assert isinstance(settled, list)
    assert reserve[1] == "Reserved"
    assert settled[1] == "Success"
    # Settle $6.00 of $10.00: the caller's $0.75 pro rata is $0.45, Penny's 0.5 % + $0.01 of
    # $6.00 is $0.04, so the recipient got $5.51 and the caller paid out $5.55.
    assert out["transaction"] == ["Settle", market.token.id, "0.040000", "Recipient", "Elsewhere"]
    settle = market.payments.transaction(market.shop.merchant.id, settled[0])
    assert (settle.amount, settle.fees, settle.marketplace_fee) == (600, 4, 45)
    assert out["refund"] == ["Success"]
    # Refunded in full with the fee: every balance is back where it was.
    assert market.payments.account_balance(market.shop.other.id).total.minor == 0
    assert market.payments.account_balance(market.shop.merchant.id).total.minor == caller_before
    assert out["too_high"] == ["IncompatibleTokens", 400, "IncompatibleTokens"]
    assert market.services.ledger.audit().ok
