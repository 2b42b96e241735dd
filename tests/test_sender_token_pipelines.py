"""The SingleUse, MultiUse and Recurring Co-Branded UI pipelines (issue #19): their start
parameters (pure), and each pipeline in process on both stores — signed start, sign in, the
buyer picks a card, a bank account or the balance, review, confirm — ending in the signed
return with SA/SB/SC and ``tokenID``; the refusals (CE, NM, NP, A) on the same paths as
SetupPrepaid's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cobranded_support import UiClient, World, add_bea, confirmed, make_world
from penny.domain.model import AmountType, TokenKind, UsageLimitTerm, UsageLimitType
from penny.domain.parties import PaymentMethodKind
from penny.money import Money
from penny.web.cobranded.params import Pipeline, PipelineRequest, StartError, Status, parse_start

RETURN = "https://shop.example/cbui/return"
NOW_S = 1_800_000_000


def token_params(pipeline: str, ref: str = "tok-1", **more: str) -> dict[str, str]:
    params = {
        "callerKey": "PNYKEY",
        "pipelineName": pipeline,
        "version": "2009-01-09",
        "returnURL": RETURN,
        "callerReference": ref,
    }
    if pipeline in ("SingleUse", "Recurring"):
        params["transactionAmount"] = "4.99"
    if pipeline == "Recurring":
        params["recurringPeriod"] = "1 Month"
    if pipeline == "MultiUse":
        params["globalAmountLimit"] = "100"
    params.update(more)
    return {name: value for name, value in params.items() if value != "<drop>"}


# -- the start request (pure) ---------------------------------------------------------------


def parsed(params: dict[str, str]) -> PipelineRequest:
    result = parse_start(params, NOW_S * 1_000_000)
    assert isinstance(result, PipelineRequest), result
    return result


def refused(params: dict[str, str]) -> StartError:
    result = parse_start(params, NOW_S * 1_000_000)
    assert isinstance(result, StartError), result
    return result


def test_a_full_multi_use_request() -> None:
    request = parsed(
        token_params(
            "MultiUse",
            transactionAmount="2",
            amountType="Maximum",
            usageLimitType1="Count",
            usageLimitValue1="5",
            usageLimitPeriod1="1 Day",
            usageLimitType2="Amount",
            usageLimitValue2="20",
            usageLimitPeriod2="1 Month",
            paymentMethod="CC,ACH",
            validityExpiry=str(NOW_S + 86_400),
        )
    )
    assert request.pipeline is Pipeline.multi_use
    assert request.references() == {"callerReference": "tok-1"}
    assert request.limit == request.global_amount_limit == Money(10_000, "USD")
    assert request.transaction_amount == Money(200, "USD")
    assert request.amount_type is AmountType.maximum
    assert request.usage_limits == (
        UsageLimitTerm(UsageLimitType.count, 5, "1 Day"),
        UsageLimitTerm(UsageLimitType.amount, 2000, "1 Month"),
    )
    assert request.methods == (PaymentMethodKind.card, PaymentMethodKind.bank)
    assert PipelineRequest.from_json(request.to_json()) == request


def test_single_use_and_recurring_requests() -> None:
    single = parsed(token_params("SingleUse", reserve="True", shipping="1.00", CallerReference="x"))
    assert (single.pipeline, single.reserve, single.limit) == (
        Pipeline.single_use,
        True,
        Money(499, "USD"),
    )
    recurring = parsed(token_params("Recurring", recurringPeriod="7 Days"))
    assert recurring.recurring_period == "7 Days"
    assert PipelineRequest.from_json(recurring.to_json()) == recurring


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        (token_params("SingleUse", transactionAmount="<drop>"), ("transactionAmount",)),
        (token_params("SingleUse", callerReference="<drop>"), ("callerReference",)),
        (token_params("SingleUse", reserve="yes"), ("reserve",)),
        (token_params("SingleUse", globalAmountLimit="5"), ("globalAmountLimit",)),
        (token_params("Recurring", recurringPeriod="<drop>"), ("recurringPeriod",)),
        (token_params("Recurring", recurringPeriod="5 Minutes"), ("recurringPeriod",)),
        (token_params("MultiUse", globalAmountLimit="<drop>"), ("globalAmountLimit",)),
        (token_params("MultiUse", amountType="Exact"), ("amountType",)),
        (token_params("MultiUse", usageLimitType1="Often"), ("usageLimitType1",)),
        (token_params("MultiUse", usageLimitType1="Count"), ("usageLimitValue1",)),
        (token_params("MultiUse", usageLimitValue2="3"), ("usageLimitValue2",)),
        (token_params("MultiUse", recurringPeriod="1 Day"), ("recurringPeriod",)),
    ],
)
def test_malformed_token_requests_are_ce(params: dict[str, str], fields: tuple[str, ...]) -> None:
    error = refused(params)
    assert error.status is Status.caller_exception
    assert error.fields == fields


def test_a_marketplace_recipient_token_is_nm() -> None:
    assert refused(token_params("SingleUse", recipientToken="R1")).status is Status.not_marketplace
    multi = token_params("MultiUse", recipientTokenList="R1,R2")
    assert refused(multi).status is Status.not_marketplace


# -- in process -----------------------------------------------------------------------------


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    made = make_world(database_url)
    add_bea(made)
    yield made
    made.db.dispose()


def run_pipeline(world: World, params: dict[str, str], kind: PaymentMethodKind) -> dict[str, str]:
    """Sign in as Bea, pick her method of ``kind``, confirm: the verified return parameters."""
    assert params["pipelineName"] in {"SingleUse", "MultiUse", "Recurring"}
    return confirmed(world, params, kind, "bea@example.com")


@pytest.mark.parametrize(
    ("pipeline", "kind", "status", "token_kind"),
    [
        ("SingleUse", PaymentMethodKind.card, "SC", TokenKind.single_use),
        ("MultiUse", PaymentMethodKind.bank, "SB", TokenKind.multi_use),
        ("Recurring", PaymentMethodKind.balance, "SA", TokenKind.recurring),
    ],
)
def test_each_token_pipeline_returns_its_token(
    world: World, pipeline: str, kind: PaymentMethodKind, status: str, token_kind: TokenKind
) -> None:
    more = {"usageLimitType1": "Count", "usageLimitValue1": "3"} if pipeline == "MultiUse" else {}
    back = run_pipeline(world, token_params(pipeline, **more), kind)
    assert back["status"] == status
    assert back["callerReference"] == "tok-1"
    token = world.payments.token_by_caller(world.merchant.id, caller_reference="tok-1")
    assert back["tokenID"] == token.id
    assert token.kind is token_kind
    assert back["review"].count("<dt>Valid</dt>") == 1
    if pipeline == "SingleUse":
        assert "expiry" in back  # three hours from now
        assert "one payment of up to $4.99 USD" in back["review"]
    if pipeline == "MultiUse":
        assert "at most 3 payments in all" in back["review"]
        assert "expiry" in back  # a year from now
    if pipeline == "Recurring":
        assert "once every 1 Month" in back["review"]
        assert "expiry" not in back


def test_reused_reference_is_np_and_cancel_is_a(world: World) -> None:
    run_pipeline(world, token_params("SingleUse"), PaymentMethodKind.card)
    again = UiClient(world).start({**token_params("SingleUse"), "callerKey": world.access_key})
    assert again.status_code == 400
    assert "already used" in again.text
    ui = UiClient(world)
    pid, csrf = ui.open({**token_params("Recurring", "tok-2"), "callerKey": world.access_key})
    cancelled = ui.post(pid, "cancel", {"csrf": csrf})
    assert cancelled.status_code == 303
    assert "status=A&callerReference=tok-2" in cancelled.headers["location"]
