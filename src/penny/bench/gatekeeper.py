"""``penny bench gatekeeper``: what GateKeeper costs a Pay, measured in one run.

* **Evaluation**: the two scripts of a typical Pay (the prepaid sender token's generated
  script, eight statements, and an installed recipient token with an assertion and two usage
  limits), compiled once (the cache) and evaluated again and again: microseconds per
  evaluation of one script.
* **Pay throughput**, on one store, the three modes interleaved in rounds so that drift of a
  shared machine hits them alike: batches of Pays through :meth:`Payments.submit` with the
  scripts off (``Payments.check_scripts = False``, the baseline), with the sender token's
  script, and with both scripts (the recipient token's usage counters read and written in the
  batch). Ratios are against the baseline of the same run.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace
from typing import Any

from penny.clock import SystemClock
from penny.gatekeeper import Environment, Role, Usage, compile_script, evaluate
from penny.gatekeeper.checker import CompiledScript
from penny.money import Money, parse_amount
from penny.sandbox.instruments import prepaid_setup
from penny.security import ServerKey
from penny.services import instructions
from penny.services.factory import build_services
from penny.services.payments import (
    FundPrepaidRequest,
    PayRequest,
)
from penny.storage.database import Database

#: The installed recipient token of the benchmark.
HOUSE_RULES = (
    "MyRole == 'Recipient' orSay 'Role does not match';\n"
    "TransactionAmount <= 'USD 100' and PaymentMethod in ('Prepaid', 'Debt')"
    " orSay 'At most USD 100';\n"
    "string MyTokenUsageLimit1Type := 'Count';\n"
    "integer MyTokenUsageLimit1 := 1000000000;\n"
    "duration MyTokenUsageLimit1Period := '1 day';\n"
    "string MyTokenUsageLimit2Type := 'Amount';\n"
    "money MyTokenUsageLimit2 := 'USD 100000000';\n"
)
MODES = ("no scripts", "sender script", "sender + recipient scripts")


@dataclass
class GatekeeperBenchResult:
    store: str
    evaluation_us: float
    evaluations: int
    pays: dict[str, int]
    seconds: dict[str, float]

    def per_s(self, mode: str) -> float:
        return self.pays[mode] / self.seconds[mode] if self.seconds[mode] else 0.0

    def as_dict(self) -> dict[str, Any]:
        base = self.per_s(MODES[0])
        return {
            "store": self.store,
            "evaluation_us": round(self.evaluation_us, 2),
            "evaluations": self.evaluations,
            "pays_per_s": {mode: round(self.per_s(mode), 1) for mode in MODES},
            "vs_no_scripts": {
                mode: round(self.per_s(mode) / base, 3) if base else 0.0 for mode in MODES
            },
        }


def _compiled(text: str) -> CompiledScript:
    result = compile_script(text)
    assert isinstance(result, CompiledScript), result
    return result


def measure_evaluation(seconds: float) -> tuple[float, int]:
    """Microseconds per evaluation of one script (the mean over both scripts of a Pay)."""
    sender = _compiled(_SENDER_EXAMPLE)
    recipient = _compiled(HOUSE_RULES)
    pay = Environment(
        my_role=Role.SENDER,
        operation_type="Pay",
        transaction_amount=Money(100, "USD"),
        transaction_timestamp=1_800_000_000_000_000,
        payment_method="Prepaid",
    )
    sender_env = replace(
        pay, sender_account_id="P1", recipient_account_id="B1", caller_account_id="B1"
    )
    recipient_env = replace(
        pay,
        my_role=Role.RECIPIENT,
        usage={1: Usage(Money(0, "USD"), 5), 2: Usage(Money(500, "USD"), 5)},
    )
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(200):
            assert evaluate(sender, sender_env).allowed
            assert evaluate(recipient, recipient_env).allowed
        count += 400
    elapsed = time.perf_counter() - started
    return elapsed / count * 1e6, count


_SENDER_EXAMPLE = (
    "MyRole == 'Sender' orSay 'Role does not match';\n"
    "OperationType == 'Pay' orSay 'This token cannot be used for this operation.';\n"
    "TransactionTimestamp >= '2026-01-01T00:00:00Z' orSay 'The instrument is not valid yet.';\n"
    "TransactionTimestamp < '2030-01-01T00:00:00Z' orSay 'The instrument has expired.';\n"
    "SenderAccountId == 'P1' orSay 'The sender is not the buyer of this instrument.';\n"
    "RecipientAccountId == 'B1' orSay 'The recipient is not the merchant.';\n"
    "CallerAccountId == 'B1' orSay 'Only the recipient of the instrument may do this.';\n"
    "string PaymentMethod := 'Prepaid';\n"
)


def run_gatekeeper_bench(
    database: Database, *, seconds: float = 6.0, batch: int = 50, rounds: int = 6
) -> GatekeeperBenchResult:
    """Measure evaluation and Pay throughput; ``seconds`` is the Pay time of each mode."""
    evaluation_us, evaluations = measure_evaluation(min(seconds / 3, 2.0))
    clock = SystemClock()
    services = build_services(database, clock=clock, server_key=ServerKey.generate())
    directory, payments = services.directory, services.payments
    suffix = str(clock.now_us())
    merchant, _key = directory.create_business("Bench shop", f"shop-{suffix}@example.com")
    buyer = directory.create_personal("Bench buyer", f"buyer-{suffix}@example.com", "pw pw pw pw")
    card = directory.add_card(buyer.id, "4111111111111111", 12, 2030)
    setup = payments.setup_prepaid(
        prepaid_setup(
            merchant.id, buyer.id, card.id, (f"bench-sender-{suffix}", f"bench-funding-{suffix}")
        )
    )
    payments.execute(
        FundPrepaidRequest(
            merchant.id,
            f"bench-fund-{suffix}",
            setup.second_token.id,
            setup.instrument.id,
            parse_amount("900000", "USD"),
        )
    )
    installed = instructions.install(
        payments,
        instructions.InstallRequest(merchant.id, f"bench-rules-{suffix}", HOUSE_RULES, "MultiUse"),
    )
    counter = itertools.count()
    pays = dict.fromkeys(MODES, 0)
    spent = dict.fromkeys(MODES, 0.0)
    per_round = seconds / rounds
    for _ in range(rounds):
        for mode in MODES:
            payments.check_scripts = mode != MODES[0]
            recipient = installed.id if mode == MODES[2] else None
            started = time.perf_counter()
            while time.perf_counter() - started < per_round:
                requests = [
                    PayRequest(
                        merchant.id,
                        f"bench-pay-{suffix}-{next(counter)}",
                        setup.sender_token.id,
                        Money(1, "USD"),
                        recipient_token_id=recipient,
                    )
                    for _ in range(batch)
                ]
                results = payments.submit(requests)
                assert all(not isinstance(r, Exception) for r in results), results[:1]
                pays[mode] += batch
            spent[mode] += time.perf_counter() - started
    payments.check_scripts = True
    return GatekeeperBenchResult(database.dialect, evaluation_us, evaluations, pays, spent)
