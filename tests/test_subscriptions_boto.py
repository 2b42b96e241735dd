"""boto 2.49.0's ``FPSConnection`` drives the subscription actions (issue #19) on both stores.

boto has a method for each: ``get_subscription_details``, ``get_transactions_for_subscription``
and ``cancel_subscription_and_refund`` (which always sends a CallerReference, a fresh
``uuid4`` unless given). boto has no result classes for them, so its generic parser flattens
the result: every leaf element becomes an attribute of the Result (the last one of a name
wins). The subscription is a Recurring token on the buyer's card: boto pays the first month
(``Pending``), the card answers, then boto asks for the details and the transactions, cancels
with a refund of $4.00 and retries that call. Balances are computed by hand with the default
card fee (2.9 % + $0.30): Pay $10.00 → fee 59¢, payable $9.41; the refund of $4.00 gives
back 59 × 400 // 1000 = 23¢ of the fee, so the payable balance loses $3.77.
"""

from __future__ import annotations

from pathlib import Path

from boto_client import BOTO_CONNECT, needs_boto, run_boto
from builders import application, new_shop, open_store, serving
from penny.domain.model import TokenKind

PAY = (
    BOTO_CONNECT
    + r"""
r = conn.pay(SenderTokenId=job["sub"], TransactionAmount="10.00",
             CallerReference="boto-month-1", CallerDescription="Month 1")
out["pay"] = [r.PayResult.TransactionId, r.PayResult.TransactionStatus]
print(json.dumps(out))
"""
)

CANCEL = (
    BOTO_CONNECT
    + r"""
d = conn.get_subscription_details(SubscriptionId=job["sub"]).GetSubscriptionDetailsResult
out["details"] = [d.SubscriptionId, d.SubscriptionStatus, d.NumberOfTransactionsProcessed,
                  d.RecipientName, d.SenderEmail, d.TimeUnit]
t = conn.get_transactions_for_subscription(SubscriptionId=job["sub"])
t = t.GetTransactionsForSubscriptionResult
out["transaction"] = [t.TransactionId, t.TransactionSerialNumber, t.TransactionStatus,
                      t.Description]
try:
    conn.cancel_subscription_and_refund(SubscriptionId="NOSUCH")
except Exception as error:
    out["unknown"] = [error.status, error.error_code]
r = conn.cancel_subscription_and_refund(SubscriptionId=job["sub"], RefundAmount="4.00",
                                        CallerReference="boto-cancel", CancelReason="Moved")
out["refund"] = r.CancelSubscriptionAndRefundResult.RefundTransactionId
r = conn.cancel_subscription_and_refund(SubscriptionId=job["sub"], RefundAmount="4.00",
                                        CallerReference="boto-cancel", CancelReason="Moved")
out["retry"] = r.CancelSubscriptionAndRefundResult.RefundTransactionId
d = conn.get_subscription_details(SubscriptionId=job["sub"]).GetSubscriptionDetailsResult
out["after"] = d.SubscriptionStatus
try:
    conn.pay(SenderTokenId=job["sub"], TransactionAmount="10.00", CallerReference="boto-month-2")
except Exception as error:
    out["pay_after"] = [error.status, error.error_code]
print(json.dumps(out))
"""
)


@needs_boto
def test_boto_drives_a_subscription_to_its_cancellation_and_refund(
    database_url: str, tmp_path: Path
) -> None:
    services = open_store(database_url)
    shop = new_shop(services, bank=False)
    made = shop.token(
        TokenKind.recurring, "sub", transaction_amount="10", recurring_period="1 Month"
    )
    try:
        with serving(application(services)) as port:
            job: dict[str, object] = {
                "key": shop.merchant.access_key,
                "secret": shop.merchant.secret,
                "port": port,
                "sub": made.token.id,
            }
            paid = run_boto(PAY, job, tmp_path)
            pay = paid["pay"]
            assert isinstance(pay, list)
            pay_id = str(pay[0])
            assert pay[1] == "Pending"
            services.payments.complete_due()  # the card answers (penny serve: on its own)
            payable = services.payments.account_balance(shop.merchant.id).total.minor
            assert payable == 1000 - 59
            out = run_boto(CANCEL, job, tmp_path)
        assert out["details"] == [
            made.token.id,
            "Active",
            "1",
            "DigitalDownload",
            "bea@example.com",
            "month",
        ]
        assert out["transaction"] == [pay_id, "1", "Success", "Month 1"]
        assert out["unknown"] == [400, "InvalidParams"]
        assert out["retry"] == out["refund"]
        assert out["after"] == "Cancelled"
        assert out["pay_after"] == [400, "TokenNotActive_Sender"]
        refund = services.payments.transaction(shop.merchant.id, str(out["refund"]))
        assert (refund.parent_id, refund.amount, refund.caller_description) == (
            pay_id,
            400,
            "Moved",
        )
        payable = services.payments.account_balance(shop.merchant.id).total.minor
        assert payable == 1000 - 59 - (400 - 23)
        assert services.ledger.audit().ok
    finally:
        services.database.dispose()
