"""One way to build the services (issue #15): only the factory wires them.

* Every ``Payments(...)``, ``Directory(...)`` and ``IpnOutbox(...)`` in ``src/penny`` is in
  :mod:`penny.services.factory`, and every ``Payments(...)`` and ``Directory(...)`` in
  ``tests/`` is in ``tests/builders.py`` (tests of the outbox itself make their own
  ``IpnOutbox``): modules are parsed, never imported, and each call whose callee is named so
  is located.
* The factory's Payments notifies through the IPN outbox, on both stores.
* In ``src/penny``, ``SetupPrepaid(...)`` / ``SetupPostpaid(...)`` are built only by
  :mod:`penny.sandbox.instruments` (and the hosted pages, split on another branch); in
  ``tests/`` only where the request itself is the subject (another merchant as the caller).
"""

from __future__ import annotations

import ast
from pathlib import Path

from penny.clock import ManualClock
from penny.engine.ledger import Ledger
from penny.ipn.outbox import IpnOutbox
from penny.security import ServerKey
from penny.services.factory import build_services
from penny.storage.database import open_database

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "penny"
TESTS = ROOT / "tests"

WIRED = {"Payments", "Directory", "IpnOutbox"}
WIRED_IN_TESTS = {"Payments", "Directory"}
SETUPS = {"SetupPrepaid", "SetupPostpaid", "SetupSenderToken"}


def _calls(path: Path, names: set[str]) -> list[str]:
    """``file:line name`` of every call in ``path`` to a callee named one of ``names``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in names:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def _calls_outside(root: Path, names: set[str], allowed: set[Path]) -> list[str]:
    return [
        call
        for path in sorted(root.rglob("*.py"))
        if path not in allowed
        for call in _calls(path, names)
    ]


def test_only_the_factory_builds_the_services_in_src() -> None:
    factory = PACKAGE / "services" / "factory.py"
    assert _calls(factory, WIRED), "the factory builds them"
    assert _calls_outside(PACKAGE, WIRED, {factory}) == []


def test_only_the_builders_build_the_services_in_tests() -> None:
    builders = TESTS / "builders.py"
    assert _calls(builders, WIRED_IN_TESTS), "the builders build them"
    assert _calls_outside(TESTS, WIRED_IN_TESTS, {builders, Path(__file__).resolve()}) == []


def test_only_the_sandbox_builder_builds_instrument_setups() -> None:
    allowed = {PACKAGE / "sandbox" / "instruments.py"}
    assert _calls_outside(PACKAGE, SETUPS, allowed) == []
    assert _calls_outside(TESTS, SETUPS, {TESTS / "test_payments.py"}) == []


def test_the_factorys_payments_notify_through_the_outbox(database_url: str) -> None:
    database = open_database(database_url)
    try:
        services = build_services(database, clock=ManualClock(), server_key=ServerKey.generate())
        assert isinstance(services.payments.listener, IpnOutbox)
        assert services.payments.ledger is services.ledger is services.directory.ledger
        assert services.payments.clock is services.clock is services.directory.clock
        assert type(services.ledger) is Ledger
        assert services.signer().certificate_pem(services.signer().current.key_id)
    finally:
        database.dispose()
