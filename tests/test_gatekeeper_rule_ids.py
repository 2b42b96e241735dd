"""GateKeeper refusals of generated rules carry a rule id (issue #15): the error code follows the
rule, read from the failed assertion's head, never from its ``orSay`` text."""

from __future__ import annotations

import dataclasses

import pytest

from penny.domain.errors import PaymentsError, Refusal
from penny.gatekeeper import Role
from penny.gatekeeper import generate as gen
from penny.gatekeeper.generate import CHECKS, Rule, rule_at
from penny.money import Money
from penny.services import gatekeeper as gk
from test_gatekeeper_rules import END, START, context, instrument, token


def refusal_of(slot: gk.Slot, ctx: gk.Context) -> PaymentsError:
    with pytest.raises(PaymentsError) as caught:
        gk.Guard().check([slot], ctx)
    return caught.value


#: A context that fails exactly one generated rule, and the refusal that rule always had.
BREAKS = {
    Rule.role: (None, Refusal.wrong_token_type),  # the slot's role is changed instead
    Rule.operation: ({"operation": "Refund"}, Refusal.wrong_token_type),
    Rule.not_yet_valid: ({"now": START - 1}, Refusal.instrument_not_yet_valid),
    Rule.expired: ({"now": END}, Refusal.instrument_expired),
    Rule.sender: ({"sender_id": "SOMEONE"}, Refusal.unknown_instrument),
    Rule.recipient: ({"recipient_id": "SOMEONE"}, Refusal.unknown_instrument),
    Rule.caller: ({"caller_id": "SOMEONE"}, Refusal.instrument_access_denied),
    Rule.below_minimum: ({"amount": Money(99, "USD")}, Refusal.amount_below_minimum),
    Rule.above_maximum: ({"amount": Money(5001, "USD")}, Refusal.amount_above_maximum),
}


def _reworded(script: str) -> str:
    """``script`` with every generated message replaced by another text."""
    for rule, check in CHECKS.items():
        script = script.replace(f"'{check.message}'", f"'Reworded: {rule.value}'")
    return script


def _broken(rule: Rule, slot: gk.Slot) -> tuple[gk.Slot, gk.Context]:
    changes, _refusal = BREAKS[rule]
    if changes is None:
        return dataclasses.replace(slot, role=Role.RECIPIENT), context()
    return slot, context(**changes)


@pytest.mark.parametrize("rule", list(Rule), ids=lambda r: r.value)
def test_each_rule_keeps_its_code_whatever_its_message_says(rule: Rule) -> None:
    generated = gk.pipeline_slot(token(None), instrument())
    assert generated.rules is not None  # evaluated natively
    stored = _reworded(generated.script)
    assert stored != generated.script
    reworded = gk.pipeline_slot(token(stored), instrument())
    assert reworded.rules is None  # not the generated text: compiled
    expected = BREAKS[rule][1]
    for slot in (generated, reworded):
        error = refusal_of(*_broken(rule, slot))
        assert error.refusal is expected
        assert error.detail == error.fps.message  # the table's message, not the orSay text


def test_rewording_the_generator_does_not_change_a_code(monkeypatch: pytest.MonkeyPatch) -> None:
    old = CHECKS[Rule.caller]
    monkeypatch.setitem(gen.CHECKS, Rule.caller, dataclasses.replace(old, message="Not you."))
    gk._script_of_rules.cache_clear()
    try:
        slot = gk.pipeline_slot(token(None), instrument())
        assert "orSay 'Not you.'" in slot.script
        error = refusal_of(slot, context(caller_id="SOMEONE"))
    finally:
        gk._script_of_rules.cache_clear()
    assert error.refusal is Refusal.instrument_access_denied
    assert error.fps.code == "InstrumentAccessDenied"


def test_an_installed_tokens_assertion_is_no_generated_rule() -> None:
    """The same statement in a caller's own script is TransactionDenied with its message."""
    script = gk.pipeline_slot(token(None), instrument()).script
    slot = gk.Slot(Role.SENDER, "TOKEN1", script, START)  # not a pipeline token
    error = refusal_of(slot, context(caller_id="SOMEONE"))
    assert error.refusal is Refusal.gatekeeper_denied
    assert error.detail == gen.MSG_CALLER


def test_rule_at_reads_the_head_of_the_statement_on_a_line() -> None:
    script = gk.pipeline_slot(token(None), instrument()).script
    lines = script.splitlines()
    found = [rule_at(script, n) for n in range(1, len(lines) + 3)]
    assert found == [
        Rule.role,
        Rule.operation,
        Rule.not_yet_valid,
        Rule.expired,
        Rule.sender,
        Rule.recipient,
        Rule.caller,
        Rule.below_minimum,
        Rule.above_maximum,
        None,  # string PaymentMethod := 'Debt';
        None,  # the empty line after the last statement
        None,  # past the end
    ]
    assert rule_at(script, 0) is None
    assert rule_at("transactionamount >= 'USD 1' orSay 'x';", 1) is Rule.below_minimum
