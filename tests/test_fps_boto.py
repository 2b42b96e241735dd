"""The real boto 2.49.0 ``FPSConnection`` against a real Penny server over HTTP.

A uvicorn server runs the application in a thread on 127.0.0.1 (a free port, stopped at the
end of the test) over a fresh store (SQLite and PostgreSQL); a merchant, a buyer and prepaid
and postpaid instruments are seeded through the Directory and the payments service; then a
subprocess (as in ``tests/test_fps_signature.py``, to keep boto's Python 2 leftovers out of
this interpreter; see ``tests/boto_client.py``) drives boto through the Aggregated Payments
actions, printing what boto parsed. Skipped on Python 3.12+ only, where boto 2 cannot run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from boto_client import BOTO_CONNECT, boto_server, needs_boto, run_boto
from builders import Shop, new_shop, open_store
from penny.clock import SystemClock
from penny.domain.model import TokenKind
from penny.services.payments import InstrumentSetup

#: Seconds the server may take to start or stop.

BOTO_DRIVER = (
    BOTO_CONNECT
    + r"""
# An action that books a transaction: its id and status are kept as out[name].
def booked(name, call, result, **parameters):
    r = call(**parameters)
    out[name] = pair(getattr(r, result))
    return r


booked("fund", conn.fund_prepaid, "FundPrepaidResult", PrepaidInstrumentId=job["prepaid"],
       SenderTokenId=job["funding"], FundingAmount="10.00", CallerReference="boto-fund-1")
r = booked("pay", conn.pay, "PayResult", SenderTokenId=job["prepaid_sender"],
           TransactionAmount="2.50", CallerReference="boto-pay-1")
out["request_id"] = r.ResponseMetadata.RequestId
r = conn.get_prepaid_balance(PrepaidInstrumentId=job["prepaid"])
balance = r.GetPrepaidBalanceResult.PrepaidBalance
out["prepaid_balance"] = [str(balance.AvailableBalance.Value),
                          balance.AvailableBalance.CurrencyCode,
                          str(balance.PendingInBalance.Value)]
r = conn.get_total_prepaid_liability()
liability = r.GetTotalPrepaidLiabilityResult.OutstandingPrepaidLiability
out["liability"] = str(liability.OutstandingBalance.Value)

booked("credit_pay", conn.pay, "PayResult", SenderTokenId=job["credit_sender"],
       TransactionAmount="30", CallerReference="boto-pay-2")
booked("settle", conn.settle_debt, "SettleDebtResult", CreditInstrumentId=job["credit"],
       SenderTokenId=job["settlement"], SettlementAmount="10", CallerReference="boto-settle-1")
booked("write_off", conn.write_off_debt, "WriteOffDebtResult", CreditInstrumentId=job["credit"],
       AdjustmentAmount="5", CallerReference="boto-write-off-1")
r = conn.get_debt_balance(CreditInstrumentId=job["credit"])
# boto flattens DebtBalance: only the last amount in document order (PendingOutBalance) stays.
out["debt_balance"] = [r.GetDebtBalanceResult.CurrencyCode, r.GetDebtBalanceResult.Value]
r = conn.get_outstanding_debt_balance()
out["outstanding"] = str(r.GetOutstandingDebtBalanceResult.OutstandingDebt.OutstandingBalance.Value)

pay_id = out["pay"][0]
r = conn.get_transaction(TransactionId=pay_id)
txn = r.GetTransactionResult.Transaction
out["transaction"] = [txn.TransactionId, txn.CallerReference, txn.FPSOperation,
                      txn.PaymentMethod, txn.TransactionStatus, str(txn.TransactionAmount.Value),
                      str(txn.FPSFees.Value), txn.SenderTokenId]
r = conn.get_transaction_status(TransactionId=pay_id)
status = r.GetTransactionStatusResult
out["status"] = [status.TransactionId, status.TransactionStatus, status.CallerReference,
                 status.StatusCode]
booked("refund", conn.refund, "RefundResult", TransactionId=pay_id, RefundAmount="1",
       CallerReference="boto-refund-1")
r = conn.get_token_usage(TokenId=job["prepaid_sender"])
usage = r.GetTokenUsageResult
# boto flattens TokenUsageLimits: the count survives, the amounts collapse into the last one.
out["usage"] = [usage.Count, usage.LastResetCount, usage.CurrencyCode]
r = conn.get_account_activity(StartDate="2000-01-01")
activity = r.GetAccountActivityResult
out["activity"] = [str(activity.BatchSize),
                   sorted([t.FPSOperation, t.TransactionStatus] for t in activity.Transaction)]

r = conn.get_tokens()
out["tokens"] = sorted([token.TokenId, token.TokenStatus, token.TokenType]
                       for token in r.GetTokensResult.Token)
r = conn.get_token_by_caller(CallerReference="p-sender")
out["token_by_caller"] = [r.GetTokenByCallerResult.TokenId,
                          r.GetTokenByCallerResult.TokenStatus]
r = conn.get_account_balance()
account = r.GetAccountBalanceResult.AccountBalance
out["account"] = [str(account.TotalBalance.Value),
                  str(account.AvailableBalances.DisburseBalance.Value)]
r = conn.cancel_token(TokenId=job["prepaid_sender"])
out["cancel"] = r.ResponseMetadata.RequestId
r = conn.get_token_by_caller(TokenId=job["prepaid_sender"])
out["cancelled_status"] = r.GetTokenByCallerResult.TokenStatus
verified = []
for endpoint, http_parameters in job["signed"]:
    r = conn.verify_signature(UrlEndPoint=endpoint, HttpParameters=http_parameters)
    verified.append(r.VerifySignatureResult.VerificationStatus)
out["verified"] = verified

out["errors"] = refusals([
    ("pay_cancelled", lambda: conn.pay(SenderTokenId=job["prepaid_sender"],
                                       TransactionAmount="1", CallerReference="boto-pay-3")),
    ("write_off_too_much", lambda: conn.write_off_debt(
        CreditInstrumentId=job["credit"], AdjustmentAmount="100",
        CallerReference="boto-write-off-2")),
    ("duplicate", lambda: conn.fund_prepaid(
        PrepaidInstrumentId=job["prepaid"], SenderTokenId=job["funding"],
        FundingAmount="11", CallerReference="boto-fund-1")),
    ("unknown_transaction", lambda: conn.get_transaction(TransactionId="NOSUCH")),
], retry=True)
print(json.dumps(out))
"""
)


def _shop(database_url: str) -> Shop:
    """A fresh store on the system clock (the server's) with a merchant and a buyer's card."""
    return new_shop(open_store(database_url, clock=SystemClock()), bank=False)


def _ids(instrument: str, second: str, setup: InstrumentSetup) -> dict[str, str]:
    """A set-up's ids as the scripts read them: ``instrument``, ``second`` (its funding or
    settlement token) and ``{instrument}_sender``."""
    return {
        instrument: setup.instrument.id,
        second: setup.second_token.id,
        f"{instrument}_sender": setup.sender_token.id,
    }


@needs_boto
def test_boto_drives_a_real_server(database_url: str, tmp_path: Path) -> None:
    shop = _shop(database_url)
    services, payments, merchant = shop.services, shop.services.payments, shop.merchant
    prepaid_setup = shop.prepaid()
    credit = shop.postpaid()

    # A return URL as Penny signs it, verified by boto's verify_signature (then altered).
    signer = services.signer()
    returned = signer.signed_redirect(
        "http://127.0.0.1", "https://shop.example/return?order=7", {"status": "SC"}
    )
    query = returned.partition("?")[2]
    signed = [
        ["https://shop.example/return", query],
        ["https://shop.example/return", query.replace("status=SC", "status=SA")],
    ]

    with boto_server(services, merchant) as connect:
        job = {
            **connect,
            **_ids("prepaid", "funding", prepaid_setup),
            **_ids("credit", "settlement", credit),
            "signed": signed,
        }
        out = run_boto(BOTO_DRIVER, job, tmp_path)

    def check_pair(name: str, status: str = "Success") -> str:
        pair = out[name]
        assert isinstance(pair, list)
        assert len(pair[0]) == 35
        assert pair[1] == status
        txn_id: str = pair[0]
        return txn_id

    check_pair("fund")
    pay_id = check_pair("pay")
    assert str(out["request_id"]).endswith(":0")
    assert out["prepaid_balance"] == ["7.500000", "USD", "0.000000"]
    assert out["liability"] == "7.500000"
    check_pair("credit_pay")
    check_pair("settle")
    check_pair("write_off")
    assert out["debt_balance"] == ["USD", "0.000000"]
    assert out["outstanding"] == "15.000000"
    pay = payments.transaction(merchant.id, pay_id)
    assert out["transaction"] == [
        pay_id,
        "boto-pay-1",
        "Pay",
        "Prepaid",
        "Success",
        "2.500000",
        "0.000000",
        prepaid_setup.sender_token.id,
    ]
    assert pay.fees == 0
    assert out["status"] == [pay_id, "Success", "boto-pay-1", "Success"]
    check_pair("refund")
    assert out["tokens"] == sorted(
        [token.id, "Active", "MultiUse"]
        for token in (
            prepaid_setup.sender_token,
            prepaid_setup.second_token,
            credit.sender_token,
            credit.second_token,
        )
    )
    assert out["token_by_caller"] == [prepaid_setup.sender_token.id, "Active"]
    balance = payments.account_balance(merchant.id)
    assert out["account"] == [balance.total.fps(), balance.disburse.fps()]
    assert str(out["cancel"]).endswith(":0")
    assert out["cancelled_status"] == "Inactive"
    assert out["verified"] == ["Success", "Failure"]
    assert out["usage"] == ["1", "0", "USD"]  # one Pay with the prepaid sender token
    assert out["activity"] == [
        "6",
        [
            ["FundPrepaid", "Success"],
            ["Pay", "Success"],
            ["Pay", "Success"],
            ["Refund", "Success"],
            ["SettleDebt", "Success"],
            ["WriteOffDebt", "Success"],
        ],
    ]
    assert out["errors"] == {
        "pay_cancelled": ["TokenNotActive_Sender", 400, "TokenNotActive_Sender", False],
        "write_off_too_much": [
            "SettleAmountGreaterThanDebt",
            400,
            "SettleAmountGreaterThanDebt",
            False,
        ],
        "duplicate": ["DuplicateRequest", 400, "DuplicateRequest", False],
        "unknown_transaction": ["InvalidTransactionId", 400, "InvalidTransactionId", False],
    }
    assert services.ledger.audit().ok
    services.database.dispose()


RESERVE_DRIVER = (
    BOTO_CONNECT
    + r"""
conn.fund_prepaid(PrepaidInstrumentId=job["prepaid"], SenderTokenId=job["funding"],
                  FundingAmount="10.00", CallerReference="boto-fund-1")
r = conn.reserve(SenderTokenId=job["prepaid_sender"], TransactionAmount="4",
                 CallerReference="boto-reserve-1")
out["reserve"] = pair(r.ReserveResult)
r = conn.get_prepaid_balance(PrepaidInstrumentId=job["prepaid"])
out["held"] = str(r.GetPrepaidBalanceResult.PrepaidBalance.AvailableBalance.Value)
# boto requires settle's TransactionAmount (FPS did not): a partial settle.
r = conn.settle(ReserveTransactionId=out["reserve"][0], TransactionAmount="3")
out["settle"] = pair(r.SettleResult)
r = conn.get_transaction(TransactionId=out["settle"][0])
txn = r.GetTransactionResult.Transaction
out["settle_detail"] = [txn.FPSOperation, str(txn.TransactionAmount.Value),
                        txn.TransactionStatus]
r = conn.get_transaction_status(TransactionId=out["reserve"][0])
out["reserve_status"] = r.GetTransactionStatusResult.TransactionStatus
r = conn.refund(TransactionId=out["settle"][0], RefundAmount="1",
                CallerReference="boto-refund-1")
out["refund"] = pair(r.RefundResult)
r = conn.reserve(SenderTokenId=job["prepaid_sender"], TransactionAmount="2",
                 CallerReference="boto-reserve-2")
second = r.ReserveResult.TransactionId
r = conn.cancel(TransactionId=second, Description="out of stock")
out["cancel"] = pair(r.CancelResult)
r = conn.get_transaction_status(TransactionId=second)
out["cancel_status"] = [r.GetTransactionStatusResult.TransactionStatus,
                        r.GetTransactionStatusResult.StatusCode]
r = conn.get_prepaid_balance(PrepaidInstrumentId=job["prepaid"])
out["balance"] = str(r.GetPrepaidBalanceResult.PrepaidBalance.AvailableBalance.Value)

r = conn.reserve(SenderTokenId=job["single_use"], TransactionAmount="20",
                 CallerReference="boto-reserve-card")
out["card_reserve"] = pair(r.ReserveResult)
r = conn.settle(ReserveTransactionId=out["card_reserve"][0], TransactionAmount="20")
out["card_settle"] = pair(r.SettleResult)

r = conn.reserve(SenderTokenId=job["prepaid_sender"], TransactionAmount="1",
                 CallerReference="boto-reserve-4")
third = r.ReserveResult.TransactionId
out["errors"] = refusals([
    ("settle_again", lambda: conn.settle(ReserveTransactionId=out["reserve"][0],
                                         TransactionAmount="1")),
    ("settle_cancelled", lambda: conn.settle(ReserveTransactionId=second,
                                             TransactionAmount="1")),
    ("settle_too_much", lambda: conn.settle(ReserveTransactionId=third,
                                            TransactionAmount="5")),
    ("cancel_settled", lambda: conn.cancel(TransactionId=out["settle"][0])),
    ("reserve_too_much", lambda: conn.reserve(SenderTokenId=job["prepaid_sender"],
                                              TransactionAmount="50",
                                              CallerReference="boto-reserve-3")),
])
print(json.dumps(out))
"""
)


@needs_boto
def test_boto_reserves_settles_and_cancels(database_url: str, tmp_path: Path) -> None:
    """boto's ``reserve``, ``settle`` and ``cancel`` (issue #19): a prepaid reserve settled in
    part and refunded, another cancelled, a SingleUse reserve token on a card settled."""
    shop = _shop(database_url)
    services = shop.services
    setup = shop.prepaid()
    single_use = shop.token(TokenKind.single_use, "su", transaction_amount="20", reserve=True)
    with boto_server(services, shop.merchant) as connect:
        job = {
            **connect,
            **_ids("prepaid", "funding", setup),
            "single_use": single_use.token.id,
        }
        out: dict[str, Any] = run_boto(RESERVE_DRIVER, job, tmp_path)

    def pair(name: str) -> list[str]:
        found = out[name]
        assert isinstance(found, list)
        return found

    reserve_id, settle_id = pair("reserve")[0], pair("settle")[0]
    assert out["reserve"] == [reserve_id, "Reserved"]
    assert out["held"] == "6.000000"
    assert out["settle"] == [settle_id, "Success"]
    assert settle_id != reserve_id
    assert out["settle_detail"] == ["Settle", "3.000000", "Success"]
    assert out["reserve_status"] == "Success"
    assert pair("refund")[1] == "Success"
    assert pair("cancel")[1] == "Cancelled"
    assert out["cancel_status"] == ["Cancelled", "Canceled"]
    assert out["balance"] == "8.000000"  # $10 - $3 settled + $1 refunded
    assert pair("card_reserve")[1] == "Reserved"
    assert pair("card_settle")[1] == "Success"
    assert out["errors"] == {
        "settle_again": ["InvalidTransactionState", 400, "InvalidTransactionState"],
        "settle_cancelled": ["InvalidTransactionState", 400, "InvalidTransactionState"],
        "settle_too_much": [
            "SettleAmountGreaterThanReserveAmount",
            400,
            "SettleAmountGreaterThanReserveAmount",
        ],
        "cancel_settled": ["InvalidTransactionState", 400, "InvalidTransactionState"],
        "reserve_too_much": ["InsufficientBalance", 400, "InsufficientBalance"],
    }
    assert services.ledger.audit().ok
    services.database.dispose()
