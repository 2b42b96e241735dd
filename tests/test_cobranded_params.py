"""Unit tests of the Co-Branded UI start-request checks and return-status table (no database)."""

from __future__ import annotations

import pytest

from penny.domain.parties import PaymentMethodKind
from penny.money import Money
from penny.web.cobranded.params import (
    METHOD_CODES,
    STATUS,
    Pipeline,
    PipelineRequest,
    StartError,
    Status,
    parse_start,
    return_url_problem,
    success_status,
)

NOW_S = 1_800_000_000
NOW_US = NOW_S * 1_000_000


def _start(
    pipeline: str, return_url: str, fields: dict[str, str], more: dict[str, str]
) -> dict[str, str]:
    """A start request's parameters: ``fields`` changed by ``more`` ("<drop>" drops one)."""
    params = {
        "callerKey": "PNYKEY",
        "pipelineName": pipeline,
        "version": "2009-01-09",
        "returnURL": return_url,
        **fields,
    }
    params.update(more)
    return {name: value for name, value in params.items() if value != "<drop>"}


def prepaid(**more: str) -> dict[str, str]:
    references = {"callerReferenceSender": "s-1", "callerReferenceFunding": "f-1"}
    fields = {**references, "fundingAmount": "25.50"}
    return _start("SetupPrepaid", "https://shop.example/return?order=7", fields, more)


def postpaid(**more: str) -> dict[str, str]:
    references = {"callerReferenceSender": "s-1", "callerReferenceSettlement": "t-1"}
    fields = {**references, "creditLimit": "100", "globalAmountLimit": "1000"}
    return _start("SetupPostpaid", "https://shop.example/return", fields, more)


def refused(params: dict[str, str]) -> StartError:
    result = parse_start(params, NOW_US)
    assert isinstance(result, StartError), result
    return result


def test_a_full_prepaid_request() -> None:
    result = parse_start(
        prepaid(
            validityStart=str(NOW_S - 60),  # a minute ago: the buyer took a while, means now
            validityExpiry=str(NOW_S + 86_400),
            paymentMethod="CC,ABT",
            paymentReason="<b>Game</b> credits",
            websiteDescription="The Shop",
            cobrandingStyle="banner",
            cobrandingUrl="https://shop.example/logo.png",
            collectShippingAddress="False",
            addressName="A",
            city="Seattle",
            currencyCode="USD",
        ),
        NOW_US,
    )
    assert result == PipelineRequest(
        pipeline=Pipeline.prepaid,
        caller_key="PNYKEY",
        return_url="https://shop.example/return?order=7",
        caller_reference_sender="s-1",
        caller_reference_second="f-1",
        limit=Money(2550, "USD"),
        valid_from=NOW_US,
        valid_until=(NOW_S + 86_400) * 1_000_000,
        methods=(PaymentMethodKind.card, PaymentMethodKind.balance),
        payment_reason="<b>Game</b> credits",
        website_description="The Shop",
    )
    assert PipelineRequest.from_json(result.to_json()) == result
    assert result.references() == {"callerReferenceSender": "s-1", "callerReferenceFunding": "f-1"}


def test_a_full_postpaid_request() -> None:
    result = parse_start(
        postpaid(minChargeAmount="1", maxChargeAmount="20", paymentMethod="ACH"), NOW_US
    )
    assert isinstance(result, PipelineRequest)
    assert result.limit == Money(10_000, "USD")
    assert result.global_amount_limit == Money(100_000, "USD")
    assert (result.min_charge, result.max_charge) == (Money(100, "USD"), Money(2000, "USD"))
    assert result.methods == (PaymentMethodKind.bank,)
    assert result.valid_from is None
    assert PipelineRequest.from_json(result.to_json()) == result


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        (prepaid(callerReferenceSender="<drop>"), ["callerReferenceSender"]),
        (prepaid(callerReferenceFunding=""), ["callerReferenceFunding"]),
        (prepaid(callerReferenceFunding="x" * 129), ["callerReferenceFunding"]),
        (prepaid(callerReferenceSender=" padded"), ["callerReferenceSender"]),
        (prepaid(callerReferenceSender="tab\there"), ["callerReferenceSender"]),
        (prepaid(fundingAmount="<drop>"), ["fundingAmount"]),
        (prepaid(fundingAmount="0"), ["fundingAmount"]),
        (prepaid(fundingAmount="-5"), ["fundingAmount"]),
        (prepaid(fundingAmount="1.001"), ["fundingAmount"]),
        (prepaid(fundingAmount="1e3"), ["fundingAmount"]),
        (prepaid(version="2008-09-17"), ["version"]),
        (prepaid(returnURL="<drop>"), ["returnURL"]),
        (prepaid(returnURL="javascript:alert(1)"), ["returnURL"]),
        (prepaid(returnURL="//evil.example/x"), ["returnURL"]),
        (prepaid(returnURL="https://user:pw@shop.example/"), ["returnURL"]),
        (prepaid(returnURL="https://shop.example/r?status=SC"), ["returnURL"]),
        (prepaid(returnURL="https://shop.example/r#top"), ["returnURL"]),
        (prepaid(currencyCode="EUR"), ["currencyCode"]),
        (prepaid(paymentMethod="CC,BTC"), ["paymentMethod"]),
        (prepaid(cobrandingStyle="huge"), ["cobrandingStyle"]),
        (prepaid(cobrandingUrl="http://shop.example/logo.png"), ["cobrandingUrl"]),
        (prepaid(collectShippingAddress="yes"), ["collectShippingAddress"]),
        (prepaid(validityExpiry="tomorrow"), ["validityExpiry"]),
        (prepaid(validityStart="-1"), ["validityStart"]),
        (prepaid(paymentReason="x" * 257), ["paymentReason"]),
        (prepaid(creditLimit="5"), ["creditLimit"]),  # a postpaid parameter
        (prepaid(bogus="1", fundingAmount=""), ["bogus", "fundingAmount"]),
        (postpaid(globalAmountLimit="<drop>"), ["globalAmountLimit"]),
        (postpaid(creditLimit="ten"), ["creditLimit"]),
        (postpaid(fundingAmount="5"), ["fundingAmount"]),
        (postpaid(callerReferenceSettlement="<drop>"), ["callerReferenceSettlement"]),
    ],
)
def test_malformed_inputs_are_named(params: dict[str, str], fields: list[str]) -> None:
    error = refused(params)
    assert error.status is Status.caller_exception
    assert list(error.fields) == fields
    assert error.message == f"The following input(s) are not well formed: [{', '.join(fields)}]"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (prepaid(validityExpiry=str(NOW_S)), "validityExpiry has already passed."),
        (prepaid(validityStart=str(NOW_S - 901)), "validityStart is in the past."),
        (
            prepaid(validityStart=str(NOW_S + 367 * 86_400)),
            "validityStart is more than a year from now.",
        ),
        (
            prepaid(validityStart=str(NOW_S + 100), validityExpiry=str(NOW_S + 100)),
            "validityExpiry is not after validityStart.",
        ),
        (
            prepaid(callerReferenceFunding="s-1"),
            "callerReferenceSender and callerReferenceFunding must differ.",
        ),
        (
            postpaid(minChargeAmount="5", maxChargeAmount="4"),
            "minChargeAmount is more than maxChargeAmount.",
        ),
    ],
)
def test_inconsistent_inputs_are_explained(params: dict[str, str], message: str) -> None:
    error = refused(params)
    assert error.status is Status.caller_exception
    assert error.message == message


def test_unknown_pipelines_and_marketplace_callers() -> None:
    error = refused(prepaid(pipelineName="SetupSomething"))
    assert error.status is Status.caller_exception
    assert error.fields == ("pipelineName",)
    error = refused(postpaid(recipientToken="R123"))
    assert error.status is Status.not_marketplace
    assert "only be issued by their recipient" in error.message


def test_the_return_code_table() -> None:
    assert {status.value for status in Status} == {
        "SA", "SB", "SC", "SR", "SU", "SE", "A", "CE", "PE", "NP", "NM"
    }  # fmt: skip
    assert set(STATUS) == set(Status)
    assert success_status(PaymentMethodKind.balance) is Status.success_balance
    assert success_status(PaymentMethodKind.bank) is Status.success_bank
    assert success_status(PaymentMethodKind.card) is Status.success_card
    assert Status.success_card.value == "SC"
    assert {
        "CC": PaymentMethodKind.card,
        "ACH": PaymentMethodKind.bank,
        "ABT": PaymentMethodKind.balance,
    } == METHOD_CODES


def test_return_url_rules() -> None:
    assert return_url_problem("https://shop.example/cbui/return?order=7") is None
    assert return_url_problem("http://127.0.0.1:8080/r") is None
    assert return_url_problem("ftp://shop.example/") is not None
    assert return_url_problem("https://shop.example/r?a=1&a=2") is not None
    assert return_url_problem("https://shop.example/r?signature=x") is not None
    assert return_url_problem("https://shop.example/ r") is not None
    assert return_url_problem("https://" + "a" * 2050 + ".example/") is not None
