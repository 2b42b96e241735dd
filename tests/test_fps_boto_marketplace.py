"""The real boto 2.49.0 ``FPSConnection`` drives the marketplace (issue #19) against a real
Penny server over HTTP, on both stores: ``get_recipient_verification_status``, a marketplace
``pay`` with both marketplace fees, ``get_transaction`` showing the recipient token and fees,
a ``refund`` with a MarketplaceRefundPolicy, and boto's errors for the refusals (see
``tests/test_fps_boto.py`` for how boto runs in a subprocess)."""

from __future__ import annotations

from pathlib import Path

from boto_client import BOTO_CONNECT, boto_server, needs_boto, run_boto
from builders import new_shop, open_store
from penny.clock import SystemClock
from penny.money import parse_amount
from penny.services.payments import FundPrepaidRequest

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
def test_boto_drives_a_marketplace_pay(database_url: str, tmp_path: Path) -> None:
    # The server's default fee schedule: a marketplace Pay costs 0.5 % + $0.01 (ABT).
    services = open_store(database_url, clock=SystemClock())
    payments = services.payments
    shop = new_shop(services, bank=False)
    setup = shop.prepaid()
    funding = FundPrepaidRequest(
        shop.merchant.id,
        "fund-1",
        setup.second_token.id,
        setup.instrument.id,
        parse_amount("20", "USD"),
    )
    payments.execute(funding)
    token = shop.recipient_token(max_fixed="0.25", max_variable=500)

    with boto_server(services, shop.merchant) as connect:
        job = {
            **connect,
            "sender": setup.sender_token.id,
            "recipient_token": token.id,
        }
        out = run_boto(BOTO_DRIVER, job, tmp_path)

    assert out["verification"] == "VerificationComplete"
    pay = out["pay"]
    assert isinstance(pay, list)
    pay_id, status = pay
    assert status == "Success"
    assert out["transaction"] == [
        token.id,
        "0.060000",
        True,
        "Recipient",
        "Elsewhere",
        "else@example.com",
    ]
    assert out["refund"] == ["Success"]
    # $10 − $0.75 − $0.06, then $4 back less 40 % of the fees ($0.30 + $0.02).
    assert payments.account_balance(shop.other.id).total.minor == 919 - 368
    booked = payments.transaction(shop.merchant.id, pay_id)
    assert (booked.refunded, booked.marketplace_fee) == (400, 75)
    assert out["errors"] == {
        "too_high": ["IncompatibleTokens", 400, "IncompatibleTokens"],
        "not_marketplace": ["NotMarketplaceApp", 400, "NotMarketplaceApp"],
        "unknown_token": ["InvalidParams", 400, "InvalidParams"],
    }
    assert services.ledger.audit().ok
    services.database.dispose()
