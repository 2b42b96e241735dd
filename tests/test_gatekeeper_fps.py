"""GateKeeper through the FPS API, on SQLite and PostgreSQL: installed payment instructions,
the scripts of pipeline tokens, and Pay allowed or refused by rules on the sender, recipient,
caller, amount, date, count and usage per period (the harness of ``test_fps_endpoint.py``).
"""

from __future__ import annotations

from sqlalchemy import text

from penny.clock import MICROS_PER_DAY, MICROS_PER_SECOND
from penny.gatekeeper import Instant, compile_script, format_datetime
from penny.services.payments import InstrumentSetup
from test_fps_endpoint import World, result_names, success, world

__all__ = ["world"]  # the fixture, imported for pytest

HOUR = 3600 * MICROS_PER_SECOND


def install(world: World, script: str, ref: str, token_type: str = "Unrestricted") -> str:
    reply = world.get(
        "InstallPaymentInstruction",
        PaymentInstruction=script,
        CallerReference=ref,
        TokenType=token_type,
    )
    success(reply, "InstallPaymentInstruction")
    return reply.text("InstallPaymentInstructionResult/TokenId")


def funded(world: World, amount: str = "100") -> InstrumentSetup:
    setup = world.prepaid(limit="1000")
    success(world.fund(setup, amount, "fund-gk"), "FundPrepaid")
    return setup


def pay(world: World, setup: InstrumentSetup, amount: str, ref: str, recipient: str) -> str:
    """Pay with the installed ``recipient`` token: ``"Success"`` or the FPS error code."""
    reply = world.pay(setup, amount, ref, RecipientTokenId=recipient)
    if reply.root.tag == "PayResponse":
        return reply.text("PayResult/TransactionStatus")
    return f"{reply.code}: {reply.message}"


def available(world: World, setup: InstrumentSetup) -> str:
    reply = world.get("GetPrepaidBalance", PrepaidInstrumentId=setup.instrument.id)
    return reply.text("GetPrepaidBalanceResult/PrepaidBalance/AvailableBalance/Value")


# -- install and read back ----------------------------------------------------------------


def test_install_get_list_and_cancel(world: World) -> None:
    script = "MyRole == 'Recipient' orSay 'Role does not match';\r\nTransactionAmount <= 'USD 5';"
    token_id = install(world, script, "rules-1")
    assert len(token_id) == 64
    assert install(world, script, "rules-1") == token_id  # a retry: same token
    again = world.get(
        "InstallPaymentInstruction",
        PaymentInstruction="MyRole == 'Caller';",
        CallerReference="rules-1",
        TokenType="Unrestricted",
    )
    assert (again.status, again.code) == (400, "DuplicateRequest")

    got = world.get("GetPaymentInstruction", TokenId=token_id)
    assert result_names(got, "GetPaymentInstruction") == [
        "Token",
        "PaymentInstruction",
        "CallerReference",
    ]
    # Verbatim, even the CR of the CR LF (the XML carries it as a character reference).
    assert got.text("GetPaymentInstructionResult/PaymentInstruction") == script
    assert got.text("GetPaymentInstructionResult/Token/TokenType") == "Unrestricted"

    listed = world.get("GetTokens", TokenType="Unrestricted")
    assert [t.text for t in listed.root.iter("TokenId")] == [token_id]
    by_ref = world.get("GetTokenByCaller", CallerReference="rules-1")
    assert by_ref.text("GetTokenByCallerResult/Token/TokenId") == token_id
    assert world.get_other("GetPaymentInstruction", TokenId=token_id).code == (
        "InvalidTokenId_Sender"
    )

    success(world.get("CancelToken", TokenId=token_id), "CancelToken")
    cancelled = world.get("GetTokenByCaller", TokenId=token_id)
    assert cancelled.text("GetTokenByCallerResult/Token/TokenStatus") == "Inactive"
    setup = funded(world)
    assert pay(world, setup, "1", "pay-c", token_id) == (
        "TokenNotActive_Recipient: The recipient token has been cancelled."
    )


def test_bad_rules_and_usage_checks_at_install(world: World) -> None:
    cases = [
        (
            "Invalid Instruction;",
            "Unrestricted",
            "BadRule",
            "Parse errors: line 1:9: unexpected token: instruction",
        ),
        (
            "MyRole == 'Caller'",
            "Unrestricted",
            "BadRule",
            "Parse errors: line 1:19: expecting ';', found '<EOF>'",
        ),
        (
            "TransactionAmount < 5;\nFoo == 1;",
            "Unrestricted",
            "BadRule",
            "Type errors: line 1:19: cannot compare money with integer; "
            "Type errors: line 2:1: unknown name: Foo",
        ),
        (
            "string MyTokenUsageLimit1Type := 'Count'; integer MyTokenUsageLimit1 := 1;",
            "SingleUse",
            "CannotSpecifyUsageForSingleUseToken",
            "A single-use token cannot have usage limits.",
        ),
        ("MyRole == 'Recipient';", "Recurring", "UsageNotDefined", "needs a usage limit"),
        ("MyRole == 'Recipient';", "Forever", "InvalidParams", "TokenType"),
    ]
    for index, (script, token_type, code, words) in enumerate(cases):
        reply = world.get(
            "InstallPaymentInstruction",
            PaymentInstruction=script,
            CallerReference=f"bad-{index}",
            TokenType=token_type,
        )
        assert (reply.status, reply.code) == (400, code), reply.raw
        assert words in reply.message
    assert world.get("GetTokens", TokenType="Unrestricted").root.find(".//Token") is None


def test_pipeline_tokens_carry_their_rules_as_scripts(world: World) -> None:
    start = world.clock.now_us()
    setup = world.postpaid()
    sender = world.get("GetPaymentInstruction", TokenId=setup.sender_token.id)
    script = sender.text("GetPaymentInstructionResult/PaymentInstruction")
    until = format_datetime(Instant(start + 30 * MICROS_PER_DAY))
    assert script.splitlines() == [
        "MyRole == 'Sender' orSay 'Role does not match';",
        "OperationType == 'Pay' orSay 'This token cannot be used for this operation.';",
        f"TransactionTimestamp >= '{format_datetime(Instant(start))}' orSay "
        "'The instrument is not valid yet (see its validity start).';",
        f"TransactionTimestamp < '{until}' orSay "
        "'The prepaid or postpaid instrument has expired.';",
        f"SenderAccountId == '{world.buyer.id}' orSay 'The sender is not the buyer of this "
        "instrument.';",
        f"RecipientAccountId == '{world.merchant.id}' orSay 'The recipient is not the merchant "
        "of this instrument.';",
        f"CallerAccountId == '{world.merchant.id}' orSay 'Only the recipient of the instrument "
        "may do this; a third-party caller may not.';",
        "string PaymentMethod := 'Debt';",
    ]
    assert not isinstance(compile_script(script), Exception)
    settlement = world.get("GetPaymentInstruction", TokenId=setup.second_token.id)
    text_ = settlement.text("GetPaymentInstructionResult/PaymentInstruction")
    assert "OperationType == 'SettleDebt'" in text_
    assert "TransactionTimestamp" not in text_  # a debt can be settled after expiry
    # The script decides validity: 30 days later the Pay is refused with the instrument's code.
    world.clock.advance(30 * MICROS_PER_DAY)
    expired = world.pay(setup, "1", "late")
    assert (expired.code, expired.message) == (
        "InstrumentExpired",
        "The prepaid or postpaid instrument has expired.",
    )


# -- Pay allowed or refused by rules ------------------------------------------------------


def test_rules_on_the_parties(world: World) -> None:
    setup = funded(world)
    buyer, merchant, other = world.buyer.id, world.merchant.id, world.other.id
    rules = [
        (f"SenderAccountId == '{buyer}' orSay 'Only Bea';", "Success"),
        (
            f"SenderAccountId notIn ('{buyer}') orSay 'Not Bea';",
            "TransactionDenied: Not Bea",
        ),
        (f"RecipientAccountId == '{merchant}';", "Success"),
        (
            f"RecipientAccountId == '{other}';",
            f"TransactionDenied: Assertion failed at line 1:1: RecipientAccountId == '{other}'",
        ),
        (f"CallerAccountId in ('{merchant}', '{other}') orSay 'Our apps only';", "Success"),
        (
            f"CallerAccountId == '{other}' orSay 'Our apps only';",
            "TransactionDenied: Our apps only",
        ),
        (
            "MyRole == 'Caller' orSay 'Role does not match';",
            "TransactionDenied: Role does not match",
        ),
        (
            f"SenderToken == '{setup.sender_token.id}' orSay 'Only this buyer token';",
            "Success",
        ),
        (
            "string PaymentMethod := 'abt';",
            "IncompatibleTokens: PaymentMethod is declared 'abt' but the transaction has 'Prepaid'",
        ),
    ]
    paid = 0
    for index, (script, expected) in enumerate(rules):
        token_id = install(world, script, f"party-{index}")
        assert pay(world, setup, "1", f"pay-party-{index}", token_id) == expected, script
        paid += expected == "Success"
    assert available(world, setup) == f"{100 - paid}.000000"  # refusals spent nothing


def test_rules_on_amount_and_date(world: World) -> None:
    setup = funded(world)
    deadline = format_datetime(Instant(world.clock.now_us() + 2 * HOUR))
    token_id = install(
        world,
        "TransactionAmount >= 'USD 1' and TransactionAmount <= 'USD 10'"
        " orSay 'Between USD 1 and USD 10';\n"
        f"TransactionTimestamp < '{deadline}' orSay 'The offer has ended';\n",
        "amount-date",
    )
    assert pay(world, setup, "10", "a-1", token_id) == "Success"
    assert pay(world, setup, "10.01", "a-2", token_id) == (
        "TransactionDenied: Between USD 1 and USD 10"
    )
    assert pay(world, setup, "0.99", "a-3", token_id) == (
        "TransactionDenied: Between USD 1 and USD 10"
    )
    world.clock.advance(2 * HOUR - 1)
    assert pay(world, setup, "1", "a-4", token_id) == "Success"
    world.clock.advance(1)
    assert pay(world, setup, "1", "a-5", token_id) == "TransactionDenied: The offer has ended"
    assert available(world, setup) == "89.000000"


def test_count_per_period_and_lifetime_amount(world: World) -> None:
    setup = funded(world)
    installed = world.clock.now_us()
    token_id = install(
        world,
        "string MyTokenUsageLimit1Type := 'Count';\n"
        "integer MyTokenUsageLimit1 := 2;\n"
        "duration MyTokenUsageLimit1Period := '1 day';\n"
        "string MyTokenUsageLimit2Type := 'Amount';\n"
        "money MyTokenUsageLimit2 := 'USD 5';\n",
        "usage",
        token_type="MultiUse",
    )
    assert pay(world, setup, "1", "u-1", token_id) == "Success"
    assert pay(world, setup, "2", "u-2", token_id) == "Success"
    assert pay(world, setup, "1", "u-3", token_id) == (
        "TokenUsageError: Token usage limit 1 exceeded"
    )
    world.clock.advance(MICROS_PER_DAY)  # a new window of limit 1
    assert pay(world, setup, "2.01", "u-4", token_id) == (
        "TokenUsageError: Token usage limit 2 exceeded"  # 3 + 2.01 > 5 over the token's life
    )
    assert pay(world, setup, "2", "u-5", token_id) == "Success"
    assert pay(world, setup, "0.01", "u-6", token_id) == (
        "TokenUsageError: Token usage limit 2 exceeded"  # count 2 of 2 is fine, USD 5.01 is not
    )
    with world.db.read() as conn:
        rows = conn.execute(
            text(
                "SELECT limit_index, window_start, amount, count, last_amount, last_count"
                " FROM gatekeeper_usage WHERE token_id = :t ORDER BY limit_index"
            ),
            {"t": token_id},
        ).all()
    # Limit 1: this day's window (USD 2, one Pay) and the day before (USD 3, two Pays).
    # Limit 2: the token's whole life, from its installation.
    assert [tuple(row) for row in rows] == [
        (1, installed + MICROS_PER_DAY, 200, 1, 300, 2),
        (2, installed, 500, 3, 0, 0),
    ]
    usage = world.get("GetTokenUsage", TokenId=token_id)
    success(usage, "GetTokenUsage")
    blocks = usage.root.findall("GetTokenUsageResult/TokenUsageLimits")
    assert [[child.tag for child in block] for block in blocks] == [
        ["Count", "LastResetCount", "LastResetTimestamp"],
        ["Amount", "LastResetAmount", "LastResetTimestamp"],
    ]
    assert [blocks[0].findtext("Count"), blocks[0].findtext("LastResetCount")] == ["1", "2"]
    assert blocks[1].findtext("Amount/Value") == "5.000000"
    world.clock.advance(MICROS_PER_DAY)  # the day's window has passed: nothing used in the new one
    later = world.get("GetTokenUsage", TokenId=token_id)
    block = later.root.findall("GetTokenUsageResult/TokenUsageLimits")[0]
    assert [block.findtext("Count"), block.findtext("LastResetCount")] == ["0", "1"]
    single = install(world, "MyRole == 'Recipient';", "single", token_type="SingleUse")
    assert world.get("GetTokenUsage", TokenId=single).code == "InvalidTokenType"
    unrestricted = install(world, "MyRole == 'Recipient';", "free")
    assert world.get("GetTokenUsage", TokenId=unrestricted).children("GetTokenUsageResult") == []


def test_single_use_token(world: World) -> None:
    setup = funded(world)
    token_id = install(world, "MyRole == 'Recipient';", "once", token_type="SingleUse")
    assert pay(world, setup, "1", "once-1", token_id) == "Success"
    assert pay(world, setup, "1", "once-2", token_id).startswith("SameTokenIdUsedMultipleTimes")


def test_another_merchants_instruction_is_not_a_recipient_token(world: World) -> None:
    setup = funded(world)
    reply = world.get_other(
        "InstallPaymentInstruction",
        PaymentInstruction="MyRole == 'Recipient';",
        CallerReference="theirs",
        TokenType="Unrestricted",
    )
    theirs = reply.text("InstallPaymentInstructionResult/TokenId")
    assert pay(world, setup, "1", "x-1", theirs).startswith("InvalidParams: RecipientTokenId")
    # The installed token cannot be a sender: it lives on the caller's own account.
    mine = install(world, "MyRole == 'Sender';", "mine")
    reply = world.get(
        "Pay",
        SenderTokenId=mine,
        CallerReference="x-2",
        **{"TransactionAmount.Value": "1"},
    )
    assert reply.code == "InvalidTokenId_Sender"


def test_gatekeeper_bench_short_run(database_url: str) -> None:
    from penny.bench.gatekeeper import MODES, run_gatekeeper_bench
    from penny.storage.database import open_database

    database = open_database(database_url)
    try:
        data = run_gatekeeper_bench(database, seconds=0.6, batch=10, rounds=2).as_dict()
    finally:
        database.dispose()
    assert data["store"] == database.dialect
    assert 0 < data["evaluation_us"] < 10_000
    assert all(data["pays_per_s"][mode] > 0 for mode in MODES)
    assert data["vs_no_scripts"][MODES[0]] == 1.0


def test_bench_gatekeeper_command() -> None:
    import json

    from typer.testing import CliRunner

    from penny.cli.main import app

    result = CliRunner().invoke(app, ["bench", "gatekeeper", "--seconds", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["store"] == "sqlite"
    assert set(data["pays_per_s"]) == {"no scripts", "sender script", "sender + recipient scripts"}


def test_the_recipient_scripts_of_the_reference_install_and_work(world: World) -> None:
    """Section 8's scripts to copy, installed through the API and paid with."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "gatekeeper.md").read_text("utf-8")
    part = doc.split("### Recipient-token scripts to copy")[1].split("### What a refusal")[0]
    examples = part.split("```")[1::2]
    assert len(examples) == 4
    setup = funded(world)
    outcomes = []
    for index, example in enumerate(examples):
        kind = "MultiUse" if "MyTokenUsageLimit" in example else "Unrestricted"
        token_id = install(world, example.strip(), f"doc-{index}", token_type=kind)
        outcomes.append(pay(world, setup, "12.50", f"doc-pay-{index}", token_id))
    assert outcomes == [
        "Success",
        "Success",  # the clock of the tests is in November 2023
        "Success",
        "TransactionDenied: Our applications only",  # the example's account ids are not ours
    ]
