"""The EditToken Co-Branded UI pipeline (issue #19): its start parameters (pure), and the
pipeline in process on both stores — a MultiUse token issued by its pipeline and paid twice
through FPS ``Pay``, then edited (sign in, pick a method, review, confirm) ending in the signed
return with the new ``tokenID``; FPS ``Pay`` with the old token is refused and the new one
obeys the new limits; ``SU`` when nothing changed; ``CE`` for an unknown, another caller's, a
cancelled or a SingleUse token; another buyer cannot confirm."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from builders import amount_params
from cobranded_support import (
    BUYER_PASSWORD,
    UiClient,
    World,
    add_bea,
    confirmed,
    csrf_of,
    make_world,
)
from penny.domain.model import TokenStatus
from penny.domain.parties import PaymentMethodKind
from penny.money import Money
from penny.web.cobranded.edit_params import EditStart, parse_edit
from penny.web.cobranded.params import StartError, Status

RETURN = "https://shop.example/cbui/return"
NOW_S = 1_800_000_000


def edit_params(token_id: str, ref: str = "edit-1", **more: str) -> dict[str, str]:
    params = {
        "callerKey": "PNYKEY",
        "pipelineName": "EditToken",
        "version": "2009-01-09",
        "returnURL": RETURN,
        "callerReference": ref,
        "tokenId": token_id,
        **more,
    }
    return {name: value for name, value in params.items() if value != "<drop>"}


# -- the start request (pure) ---------------------------------------------------------------


def test_an_edit_request_names_the_token_and_what_changes() -> None:
    parsed = parse_edit(
        edit_params("T1", globalAmountLimit="15", usageLimitType1="Count", usageLimitValue1="3"),
        NOW_S * 1_000_000,
    )
    assert isinstance(parsed, EditStart)
    assert (parsed.token_id, parsed.caller_reference) == ("T1", "edit-1")
    assert parsed.global_amount_limit == Money(1500, "USD")
    assert parsed.transaction_amount is None
    assert len(parsed.usage_limits) == 1
    old_spelling = parse_edit({**edit_params("<drop>"), "tokenID": "T2"}, NOW_S * 1_000_000)
    assert isinstance(old_spelling, EditStart)
    assert old_spelling.token_id == "T2"


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        (edit_params("<drop>"), ("tokenId",)),
        (edit_params("T1", callerReference="<drop>"), ("callerReference",)),
        (edit_params("T1", paymentReason="more"), ("paymentReason",)),
        (edit_params("T1", validityStart=str(NOW_S)), ("validityStart",)),
        (edit_params("T1", tokenID="T2"), ("tokenID",)),
        (edit_params("T1", amountType="Maximum"), ("amountType",)),
        (edit_params("T1", globalAmountLimit="-1"), ("globalAmountLimit",)),
    ],
)
def test_malformed_edit_requests_are_ce(params: dict[str, str], fields: tuple[str, ...]) -> None:
    error = parse_edit(params, NOW_S * 1_000_000)
    assert isinstance(error, StartError)
    assert error.status is Status.caller_exception
    assert error.fields == fields


# -- in process -----------------------------------------------------------------------------


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    made = make_world(database_url)
    add_bea(made)
    made.directory.create_personal("Sam", "sam@example.com", BUYER_PASSWORD)
    yield made
    made.db.dispose()


def run(
    world: World,
    params: dict[str, str],
    kind: PaymentMethodKind,
    email: str = "bea@example.com",
) -> dict[str, str]:
    return confirmed(world, params, kind, email)


def multi_use(world: World, ref: str = "multi-1") -> str:
    """A MultiUse token by its pipeline: at most 3 payments a day, $20 in all, on the card."""
    params = {
        "pipelineName": "MultiUse",
        "version": "2009-01-09",
        "returnURL": RETURN,
        "callerReference": ref,
        "globalAmountLimit": "20",
        "usageLimitType1": "Count",
        "usageLimitValue1": "3",
        "usageLimitPeriod1": "1 Day",
    }
    back = run(world, params, PaymentMethodKind.card)
    assert back["status"] == "SC"
    return back["tokenID"]


def pay(world: World, token_id: str, amount: str, ref: str) -> str:
    """FPS Pay in process: the transaction status, or the error code."""
    root = UiClient(world).fps(
        "Pay",
        SenderTokenId=token_id,
        CallerReference=ref,
        **amount_params("TransactionAmount", amount),
    )
    code = root.findtext(".//Error/Code")
    return code or root.findtext(".//PayResult/TransactionStatus") or ""


def test_edit_token_replaces_the_token_and_pay_obeys_the_new_limits(world: World) -> None:
    old = multi_use(world)
    assert pay(world, old, "5", "p1") == "Pending"  # a card answers Pending first
    assert pay(world, old, "5", "p2") == "Pending"
    more = {"globalAmountLimit": "15", "transactionAmount": "4", "amountType": "Maximum"}
    back = run(world, edit_params(old, paymentMethod="ACH,CC", **more), PaymentMethodKind.bank)
    assert back["status"] == "SB"
    assert back["callerReference"] == "edit-1"
    new = back["tokenID"]
    assert new != old
    assert f"your authorization {old}" in back["review"]
    assert "Total payments up to</dt><dd>$15.00 USD" in back["review"]
    assert "at most 3 payments every 1 Day" in back["review"]
    merchant = world.merchant.id
    assert world.payments.token_by_caller(merchant, token_id=old).status is TokenStatus.inactive
    assert world.payments.token_by_caller(merchant, caller_reference="edit-1").id == new
    shown = UiClient(world).fps("GetTokenByCaller", TokenId=new)
    assert shown.findtext(".//Token/OldTokenId") == old
    (token,) = shown.iter("Token")
    assert [node.tag for node in token][5:7] == ["TokenType", "OldTokenId"]
    listed = UiClient(world).fps("GetTokens")
    olds = {t.findtext("TokenId"): t.findtext("OldTokenId") for t in listed.iter("Token")}
    assert olds == {old: None, new: old}
    assert pay(world, old, "1", "p3") == "TokenNotActive_Sender"
    assert pay(world, new, "5", "p4") == "TransactionDenied"  # each payment at most $4 now
    assert pay(world, new, "4", "p5") == "Pending"  # a bank payment: 14 of 15 charged
    assert pay(world, new, "1", "p6") == "TokenUsageError"  # the 4th today: usage carried
    world.clock.advance(86_400 * 1_000_000)
    assert pay(world, new, "2", "p7") == "TokenUsageError"  # 16 > 15 in all
    assert pay(world, new, "1", "p8") == "Pending"


def test_nothing_changed_is_su_with_the_old_token(world: World) -> None:
    old = multi_use(world)
    back = run(world, edit_params(old), PaymentMethodKind.card)
    assert back["status"] == "SU"
    assert back["tokenID"] == old
    assert world.payments.token_by_caller(world.merchant.id, token_id=old).active


def test_tokens_that_cannot_be_edited_are_ce(world: World) -> None:
    old = multi_use(world)
    ui = UiClient(world)
    for token_id, more, text in [
        ("NOSUCHTOKEN", {}, "does not name a token of yours"),
        (old, {"usageLimitType1": "Often"}, "[usageLimitType1]"),
    ]:
        started = ui.start({**edit_params(token_id, **more), "callerKey": world.access_key})
        assert started.status_code == 400
        assert text in started.text
    single = {
        "pipelineName": "SingleUse",
        "version": "2009-01-09",
        "returnURL": RETURN,
        "callerReference": "single-1",
        "transactionAmount": "3",
    }
    single_id = run(world, single, PaymentMethodKind.card)["tokenID"]
    started = ui.start({**edit_params(single_id), "callerKey": world.access_key})
    assert "MultiUse and Recurring tokens only" in started.text
    recurring = {
        "pipelineName": "Recurring",
        "version": "2009-01-09",
        "returnURL": RETURN,
        "callerReference": "rec-1",
        "transactionAmount": "3",
        "recurringPeriod": "1 Month",
    }
    recurring_id = run(world, recurring, PaymentMethodKind.card)["tokenID"]
    not_for_it = edit_params(recurring_id, globalAmountLimit="9")
    started = ui.start({**not_for_it, "callerKey": world.access_key})
    assert "[globalAmountLimit]" in started.text
    world.payments.cancel_token(world.merchant.id, old)
    started = ui.start({**edit_params(old), "callerKey": world.access_key})
    assert "The token was cancelled" in started.text
    # Another caller's token answers as an unknown one.
    _party, key = world.directory.create_business("Elsewhere", "else@example.com")
    elsewhere = replace(world, access_key=key.access_key_id, secret=key.secret)
    theirs = UiClient(elsewhere).start({**edit_params(old), "callerKey": key.access_key_id})
    assert theirs.status_code == 400
    assert "does not name a token of yours" in theirs.text


def test_another_buyer_cannot_confirm(world: World) -> None:
    old = multi_use(world)
    ui = UiClient(world)
    pid, csrf = ui.open({**edit_params(old), "callerKey": world.access_key})
    data = {"csrf": csrf, "email": "sam@example.com", "password": BUYER_PASSWORD}
    assert ui.post(pid, "signin", data).status_code == 303
    page = ui.get(pid, "method")
    assert "given by another Penny account" in page.text
    buyer = world.directory.party_by_email("sam@example.com")
    assert buyer is not None
    (balance,) = world.directory.payment_methods(buyer.id)
    picked = ui.post(pid, "method", {"csrf": csrf_of(page.text), "method_id": balance.id})
    assert picked.status_code == 400
    assert "given by another Penny account" in picked.text
    refused = ui.post(pid, "confirm", {"csrf": csrf_of(page.text)})
    assert refused.status_code == 303
    assert refused.headers["location"].endswith(f"/pipelines/{pid}/method")
    assert world.payments.token_by_caller(world.merchant.id, token_id=old).active
