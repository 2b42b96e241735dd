"""boto 2.49.0's ``FPSConnection`` with SingleUse and MultiUse tokens (issue #19), on both stores.

boto builds the Co-Branded UI start URLs (``cbui_url``: signed for Amazon's CBUI host, which
Penny accepts); the test sends a buyer through each pipeline on a real server (httpx, cookies
kept, the start URL's host replaced by the server's), reads ``tokenID`` from the signed
return, then boto pays with both tokens (card: ``Pending``; bank: ``Pending``), asks
GetTransactionStatus, and asks again after the sandbox completed what was due (the card's
payment ``Success``; the bank transfer still pending for its four days). Skipped on Python
3.12+ only, where boto 2 cannot run (``tests/boto_client.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx

from boto_client import BOTO_CONNECT, boto_server, needs_boto, run_boto
from builders import (
    BUYER_PASSWORD,
    add_bank,
    add_card,
    new_buyer,
    new_merchant,
    open_store,
)
from penny.clock import SystemClock

CBUI_URLS = (
    BOTO_CONNECT
    + r"""
out["single"] = conn.cbui_url(
    returnURL="https://shop.example/return", pipelineName="SingleUse", version="2009-01-09",
    callerReference="boto-single-1", transactionAmount="5.00", paymentReason="One game")
out["multi"] = conn.cbui_url(
    returnURL="https://shop.example/return", pipelineName="MultiUse", version="2009-01-09",
    callerReference="boto-multi-1", globalAmountLimit="50", usageLimitType1="Count",
    usageLimitValue1="10", usageLimitPeriod1="1 Day", paymentMethod="ACH")
print(json.dumps(out))
"""
)

PAY = (
    BOTO_CONNECT
    + r"""
r = conn.pay(SenderTokenId=job["single"], TransactionAmount="4.00",
             CallerReference="boto-single-pay")
out["single_pay"] = [r.PayResult.TransactionId, r.PayResult.TransactionStatus]
r = conn.pay(SenderTokenId=job["multi"], TransactionAmount="12.50",
             CallerReference="boto-multi-pay")
out["multi_pay"] = [r.PayResult.TransactionId, r.PayResult.TransactionStatus]
try:
    conn.pay(SenderTokenId=job["single"], TransactionAmount="1.00",
             CallerReference="boto-single-pay-2")
except Exception as error:
    out["second_use"] = [error.status, error.error_code]
r = conn.get_token_by_caller(CallerReference="boto-single-1")
out["token"] = [r.GetTokenByCallerResult.TokenId, r.GetTokenByCallerResult.TokenType]
r = conn.get_token_usage(TokenId=job["multi"])
out["usage"] = [r.GetTokenUsageResult.Count, r.GetTokenUsageResult.LastResetCount]
r = conn.get_tokens(TokenType="MultiUse")
out["multi_tokens"] = [[t.TokenId, t.TokenType] for t in r.GetTokensResult.Token]
conn.cancel_token(TokenId=job["multi"])
r = conn.get_token_by_caller(TokenId=job["multi"])
out["cancelled"] = r.GetTokenByCallerResult.TokenStatus
try:
    conn.pay(SenderTokenId=job["multi"], TransactionAmount="1.00",
             CallerReference="boto-multi-pay-2")
except Exception as error:
    out["after_cancel"] = [error.status, error.error_code]
print(json.dumps(out))
"""
)

STATUS = (
    BOTO_CONNECT
    + r"""
for name in ("single", "multi"):
    r = conn.get_transaction_status(TransactionId=job[name])
    result = r.GetTransactionStatusResult
    out[name] = [result.TransactionStatus, result.StatusCode]
print(json.dumps(out))
"""
)

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, html
    return match.group(1)


def authorize(base: str, boto_url: str, method_id: str) -> str:
    """Send the buyer through the pipeline of ``boto_url`` (its host replaced by ``base``),
    paying with ``method_id``; the token id of the signed return."""
    query = urlsplit(boto_url).query
    with httpx.Client(base_url=base, follow_redirects=False, trust_env=False) as browser:
        started = browser.get(f"/cobranded-ui/actions/start?{query}")
        assert started.status_code == 303, started.text
        signin_path = started.headers["location"]
        pipeline = signin_path.rsplit("/", 1)[0]
        csrf = _csrf(browser.get(signin_path).text)
        form = {"csrf": csrf, "email": "bea@example.com", "password": BUYER_PASSWORD}
        assert browser.post(f"{pipeline}/signin", data=form).status_code == 303
        csrf = _csrf(browser.get(f"{pipeline}/method").text)
        chosen = browser.post(f"{pipeline}/method", data={"csrf": csrf, "method_id": method_id})
        assert chosen.status_code == 303
        assert browser.get(f"{pipeline}/review").status_code == 200
        done = browser.post(f"{pipeline}/confirm", data={"csrf": csrf})
    assert done.status_code == 303, done.text
    back = dict(parse_qsl(urlsplit(done.headers["location"]).query))
    assert back["status"] in {"SC", "SB"}
    return back["tokenID"]


@needs_boto
def test_boto_cbui_then_pay_with_single_and_multi_use_tokens(
    database_url: str, tmp_path: Path
) -> None:
    services = open_store(database_url, clock=SystemClock())
    merchant = new_merchant(services)
    buyer = new_buyer(services)
    card = add_card(services, buyer.id)
    bank = add_bank(services, buyer.id)
    try:
        with boto_server(services, merchant) as job:
            urls = run_boto(CBUI_URLS, job, tmp_path)
            base = f"http://127.0.0.1:{job['port']}"
            single = authorize(base, str(urls["single"]), card.id)
            multi = authorize(base, str(urls["multi"]), bank.id)
            paid = run_boto(PAY, {**job, "single": single, "multi": multi}, tmp_path)
            assert paid["single_pay"][1] == "Pending"  # type: ignore[index]
            assert paid["multi_pay"][1] == "Pending"  # type: ignore[index]
            assert paid["second_use"] == [400, "SameTokenIdUsedMultipleTimes"]
            assert paid["token"] == [single, "SingleUse"]
            assert paid["usage"] == ["1", "0"]
            assert paid["multi_tokens"] == [[multi, "MultiUse"]]
            assert paid["cancelled"] == "Inactive"
            assert paid["after_cancel"] == [400, "TokenNotActive_Sender"]
            ids = {
                "single": paid["single_pay"][0],  # type: ignore[index]
                "multi": paid["multi_pay"][0],  # type: ignore[index]
            }
            before = run_boto(STATUS, {**job, **ids}, tmp_path)
            assert before["single"] == ["Pending", "PendingNetworkResponse"]
            services.payments.complete_due()  # the card network answers; the bank takes days
            after = run_boto(STATUS, {**job, **ids}, tmp_path)
            assert after["single"] == ["Success", "Success"]
            assert after["multi"] == ["Pending", "PendingNetworkResponse"]
        assert services.ledger.audit().ok
    finally:
        services.database.dispose()
