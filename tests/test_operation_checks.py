"""Each operation's list of checks (penny.domain.checks.CHECKS) against the code (issue #15).

Two ways: statically, the refusals an operation's list names are exactly those its code can
give (read from the operation's module, the rules it calls, the GateKeeper glue and the ledger
table); and by behaviour, Pay runs through every combination of broken checks, with scripts
evaluated and not, and the refusal is always the first broken check's in the list's order, from
the layer the list names.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builders import add_card, new_buyer, new_merchant, open_store, quiet_payments
from conftest import sqlite_url
from penny.clock import MICROS_PER_DAY
from penny.domain.checks import CHECKS, Check, Layer, refusals_of
from penny.domain.errors import LEDGER_REFUSALS, PaymentsError, Refusal
from penny.domain.model import Operation, Transaction
from penny.money import Money
from penny.sandbox.instruments import postpaid_setup
from penny.services import instructions
from penny.services.payments import InstrumentSetup, Payments, PayRequest

SRC = Path(__file__).resolve().parents[1] / "src" / "penny"
#: Each operation's modules: its own, and the operation's whose checks it shares.
MODULES = {
    Operation.pay: ("pay",),
    Operation.fund_prepaid: ("fund",),
    Operation.settle_debt: ("settle",),
    Operation.write_off_debt: ("write_off",),
    Operation.refund: ("refund",),
    Operation.withdraw: ("withdraw",),
    Operation.reserve: ("reserve", "pay", "reserve_authorized", "authorized"),
    Operation.settle: ("settle_reserve",),
}


# -- statically: the lists name exactly what the code can refuse --------------------------------


def _tree(relative: str) -> ast.Module:
    return ast.parse((SRC / relative).read_text())


def _named(node: ast.AST) -> set[Refusal]:
    """The ``Refusal.x`` members written under ``node``."""
    return {
        Refusal[n.attr]
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id == "Refusal"
    }


def _functions(relative: str) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in _tree(relative).body if isinstance(n, ast.FunctionDef)}


def _calls(node: ast.AST) -> set[str]:
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            func = n.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def _reachable(operation: Operation) -> set[Refusal]:
    """What the operation's code can refuse: its own module, the runner's request checks, the
    shared steps and rules it calls, the scripts it evaluates, a charge, and whatever the
    ledger refuses."""
    module = ast.Module(
        body=[
            node
            for name in MODULES[operation]
            for node in _tree(f"services/payments/{name}.py").body
        ],
        type_ignores=[],
    )
    found = _named(module) | _named(_functions("services/payments/runner.py")["decide"])
    calls = _calls(module)
    if operation is Operation.pay:  # SingleUse, MultiUse and Recurring tokens (issue #19)
        authorized = _tree("services/payments/authorized.py")
        found |= _named(authorized)
        calls |= _calls(authorized)
    # The shared steps it calls (steps.py), and the steps those call, with what they name.
    steps_of = _functions("services/payments/steps.py")
    todo = calls & set(steps_of)
    while todo:
        step = steps_of[todo.pop()]
        found |= _named(step)
        todo |= (_calls(step) - calls) & set(steps_of)
        calls |= _calls(step)
    rules = _functions("domain/rules.py")
    for name in calls & set(rules):
        found |= _named(rules[name])
    if calls & {"check", "check_pipeline_token"}:
        found |= _named(_tree("services/gatekeeper.py"))
    if calls & {"book", "charge"}:
        found |= set(LEDGER_REFUSALS.values())
    # The marketplace steps (#19) it calls, and the domain rules they call.
    steps = _functions("services/payments/marketplace.py")
    market_rules = _functions("domain/marketplace.py")
    for name in calls & set(steps):
        found |= _named(steps[name])
        for rule in _calls(steps[name]) & set(market_rules):
            found |= _named(market_rules[rule])
    return found


@pytest.mark.parametrize("operation", list(CHECKS), ids=lambda o: o.value)
def test_each_list_names_exactly_the_refusals_its_operation_can_give(
    operation: Operation,
) -> None:
    assert refusals_of(operation) == _reachable(operation)


def test_every_operation_has_a_list_and_every_check_a_layer() -> None:
    assert set(CHECKS) == set(Operation)
    for checks in CHECKS.values():
        names = [check.name for check in checks]
        assert len(names) == len(set(names)), names
        assert all(check.layers and check.refusals and check.where for check in checks)


def test_the_dead_charge_limit_check_is_gone_and_min_max_are_the_scripts() -> None:
    rules = _functions("domain/rules.py")
    assert "check_charge_limits" not in rules
    (scripts,) = (c for c in CHECKS[Operation.pay] if c.name == "scripts")
    assert {Refusal.amount_below_minimum, Refusal.amount_above_maximum} <= set(scripts.refusals)
    assert scripts.layers == (Layer.script,)


# -- by behaviour: Pay through every combination of broken checks -------------------------------


def usd(minor: int) -> Money:
    return Money(minor, "USD")


@dataclass
class PayWorld:
    payments: Payments
    merchant_id: str
    #: Credit instruments by (variant, cancelled): ok, not yet valid, a tiny credit limit.
    setups: dict[tuple[str, bool], InstrumentSetup]
    deny_token: str


@pytest.fixture
def pay_world(tmp_path: Path) -> Iterator[PayWorld]:
    services = open_store(sqlite_url(tmp_path))
    clock = services.clock
    payments = quiet_payments(services)
    merchant = new_merchant(services, "Shop")
    buyer = new_buyer(services, "Bea")
    card = add_card(services, buyer.id)
    now = clock.now_us()
    setups = {}
    for variant, cancelled in itertools.product(("ok", "not_yet_valid", "tiny_limit"), (0, 1)):
        setup = payments.setup_postpaid(
            postpaid_setup(
                merchant.id,
                buyer.id,
                card.id,
                f"{variant}-{cancelled}",
                credit_limit=usd(1 if variant == "tiny_limit" else 100_000),
                min_charge=usd(5),
                valid_from=now + MICROS_PER_DAY if variant == "not_yet_valid" else None,
                valid_until=now + 30 * MICROS_PER_DAY,
            )
        )
        if cancelled:
            payments.cancel_token(merchant.id, setup.sender_token.id)
        setups[(variant, bool(cancelled))] = setup
    deny = instructions.install(
        payments,
        instructions.InstallRequest(
            merchant.id, "deny", "TransactionAmount < 'USD 0.01' orSay 'No';", "Unrestricted"
        ),
    )
    yield PayWorld(payments, merchant.id, setups, deny.id)
    services.database.dispose()


#: Each way to break a Pay: the knob it turns, and the check of the list it breaks.
BREAKERS: dict[str, tuple[str, str]] = {
    "no_reference": ("reference", "caller_reference"),
    "unknown_recipient": ("recipient", "recipient_token"),
    "denying_recipient": ("recipient", "scripts"),
    "cancelled_token": ("cancelled", "sender_token"),
    "not_yet_valid": ("instrument", "instrument"),
    "tiny_limit": ("instrument", "funds"),
    "out_of_range": ("amount", "amount"),
    "below_minimum": ("amount", "scripts"),
}
KNOBS = {
    "reference": (None, "no_reference"),
    "recipient": (None, "unknown_recipient", "denying_recipient"),
    "cancelled": (None, "cancelled_token"),
    "instrument": (None, "not_yet_valid", "tiny_limit"),
    "amount": (None, "out_of_range", "below_minimum"),
}


def _request(world: PayWorld, broken: set[str], reference: str) -> PayRequest:
    variant = next((b for b in ("not_yet_valid", "tiny_limit") if b in broken), "ok")
    setup = world.setups[(variant, "cancelled_token" in broken)]
    amount = 100
    if "out_of_range" in broken:
        amount = 200_000_000
    elif "below_minimum" in broken:
        amount = 2  # below the minimum charge, above the tiny credit limit
    recipient = None
    if "unknown_recipient" in broken:
        recipient = "NO-SUCH-TOKEN"
    elif "denying_recipient" in broken:
        recipient = world.deny_token
    return PayRequest(
        world.merchant_id,
        "" if "no_reference" in broken else reference,
        setup.sender_token.id,
        usd(amount),
        recipient_token_id=recipient,
    )


def _first_broken(broken: set[str], scripts: bool) -> Check | None:
    """The list's first check that ``broken`` breaks, counting only the layers that run."""
    checks = {BREAKERS[b][1] for b in broken}
    for check in CHECKS[Operation.pay]:
        runs = scripts or check.layers != (Layer.script,)
        if check.name in checks and runs:
            return check
    return None


@pytest.mark.parametrize("scripts", [True, False], ids=["scripts", "no-scripts"])
def test_pay_refuses_with_the_first_broken_check_in_the_lists_order(
    pay_world: PayWorld, scripts: bool
) -> None:
    pay_world.payments.check_scripts = scripts
    seen: set[str] = set()
    for n, combination in enumerate(itertools.product(*KNOBS.values())):
        broken = {b for b in combination if b is not None}
        request = _request(pay_world, broken, f"pay-{scripts}-{n}")
        (result,) = pay_world.payments.submit([request])
        expected = _first_broken(broken, scripts)
        if expected is None:
            assert isinstance(result, Transaction), (broken, result)
            continue
        assert isinstance(result, PaymentsError), (broken, expected.name, result)
        assert result.refusal in expected.refusals, (broken, expected.name, result.refusal)
        seen.add(expected.name)
    # Every check the breakers reach decided some combination (none is shadowed).
    wanted = {check for _knob, check in BREAKERS.values()}
    assert seen == (wanted if scripts else wanted - {"scripts"})
