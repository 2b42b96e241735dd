"""``penny sandbox …``: move sandbox time, seed a demo, and issue instruments by hand.

* ``advance --days N`` moves the shared sandbox clock forward, then finishes every pending
  transaction that has come due (bank transfers after four days, late-failing cards after
  one) and expires what has expired.
* ``seed`` creates the demo of the quick start: the merchant "DigitalDownload" with an API
  key, and a buyer with a test card and a bank account.
* ``setup-prepaid`` / ``setup-postpaid`` issue an instrument the way the hosted pipelines will
  once a buyer agrees, for scripts and tests that do not drive a browser.

User errors print one line and exit with status 2 (see docs/cli.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from penny.cli.accounts import open_services
from penny.cli.base import penny_typer
from penny.cli.common import DatabaseOption, JsonOption, command_name, emit, fail
from penny.clock import MICROS_PER_DAY, MICROS_PER_SECOND
from penny.domain.model import Transaction
from penny.domain.parties import PaymentMethodKind
from penny.engine.ledger import Ledger
from penny.money import Money, MoneyError, parse_positive_amount
from penny.parties import Directory
from penny.sandbox.clock import SandboxClock
from penny.sandbox.demo import SEED_BUYER_EMAIL, SEED_BUYER_PASSWORD, seed_demo
from penny.sandbox.instruments import postpaid_setup, prepaid_setup, valid_for_days
from penny.services.payments import InstrumentSetup, Payments

sandbox_app: typer.Typer = penny_typer(
    "The sandbox: move time forward, seed a demo, issue instruments."
)

MICROS_PER_HOUR = 3_600 * MICROS_PER_SECOND


@dataclass
class _Sandbox:
    clock: SandboxClock
    ledger: Ledger
    directory: Directory
    payments: Payments  # with the IPN outbox: completions notify


@contextmanager
def _sandbox(url: str | None, *, create: bool = False) -> Iterator[_Sandbox]:
    with open_services(url, create=create) as services:
        clock = services.clock
        assert isinstance(clock, SandboxClock)
        yield _Sandbox(clock, services.ledger, services.directory, services.payments)


def _amount(text: str | None, what: str) -> Money | None:
    if text is None:
        return None
    try:
        return parse_positive_amount(text, "USD")
    except MoneyError as exc:
        raise fail(f"{what}: {exc}") from None


@sandbox_app.command()
def advance(
    database: DatabaseOption = None,
    days: Annotated[int, typer.Option(metavar="N", min=0, help="Days to move forward.")] = 0,
    hours: Annotated[int, typer.Option(metavar="N", min=0, help="Hours to move forward.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Move sandbox time forward and finish whatever has come due."""
    if days == 0 and hours == 0:
        raise fail("say how far to move: --days N and/or --hours N")
    with _sandbox(database) as sandbox:
        now = sandbox.clock.advance(days * MICROS_PER_DAY + hours * MICROS_PER_HOUR)
        finished: list[Transaction] = []
        while batch := sandbox.payments.complete_due():
            finished.extend(batch)
        expired = sandbox.ledger.expire_due()
    data = {
        "now_us": now,
        "completed": [
            {"transaction_id": t.id, "operation": t.operation.value, "status": t.status.value}
            for t in finished
        ],
        "expired_holds": expired,
    }
    lines = [f"sandbox time moved forward {days} day(s) {hours} hour(s)"]
    lines += [f"  {t.operation.value} {t.id}: {t.status.value}" for t in finished]
    lines.append(f"{len(finished)} pending transaction(s) finished, {expired} hold(s) expired")
    emit(as_json, data, lines)


@sandbox_app.command()
def seed(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Create the demo merchant "DigitalDownload" (with an API key) and a buyer with a test
    card and a bank account. Run once; a second run reports what is there. Creates the
    database (and its server key) if it does not exist yet."""
    with _sandbox(database, create=True) as sandbox:
        seeded = seed_demo(sandbox.directory)
    merchant, buyer, key, card, bank = (
        seeded.merchant,
        seeded.buyer,
        seeded.key,
        seeded.card,
        seeded.bank,
    )
    if key is None or buyer is None or card is None or bank is None:
        emit(
            as_json,
            {"seeded": False, "merchant_id": merchant.id, "buyer_id": buyer and buyer.id},
            [
                f"already seeded: merchant {merchant.id}"
                + (f", buyer {buyer.id}" if buyer else ""),
                f"a new API key: {command_name()} keys create --account {merchant.id}",
            ],
        )
        return
    data = {
        "seeded": True,
        "merchant_id": merchant.id,
        "access_key_id": key.key.access_key_id,
        "secret_access_key": key.secret,
        "buyer_id": buyer.id,
        "buyer_email": SEED_BUYER_EMAIL,
        "buyer_password": SEED_BUYER_PASSWORD,
        "card_payment_method_id": card.id,
        "bank_payment_method_id": bank.id,
    }
    emit(
        as_json,
        data,
        [
            f"merchant  DigitalDownload  {merchant.id}",
            f"  access key id      {key.key.access_key_id}",
            f"  secret access key  {key.secret}   (shown once; keep it)",
            f"  (lost it? {command_name()} keys create --account {merchant.id} makes another)",
            f"buyer     Sandbox Buyer    {buyer.id}  {SEED_BUYER_EMAIL} / {SEED_BUYER_PASSWORD}",
            f"  card  {card.describe()}  {card.id}",
            f"  bank  {bank.describe()}  {bank.id}",
        ],
    )


MerchantOption = Annotated[
    str, typer.Option("--merchant", metavar="ID|EMAIL", help="Merchant account id or email.")
]
BuyerOption = Annotated[
    str, typer.Option("--buyer", metavar="ID|EMAIL", help="Buyer account id or email.")
]
MethodOption = Annotated[
    str | None,
    typer.Option(
        "--method",
        metavar="ID",
        help="The buyer's payment method id (default: the buyer's first card).",
    ),
]
DaysOption = Annotated[
    int, typer.Option(metavar="N", min=1, help="Days the instrument stays valid.")
]


def _parties(sandbox: _Sandbox, merchant: str, buyer: str, method: str | None) -> tuple[str, ...]:
    found_merchant = sandbox.directory.find(merchant)
    found_buyer = sandbox.directory.find(buyer)
    if found_merchant is None:
        raise fail(f"no account has the id or email {merchant!r}")
    if found_buyer is None:
        raise fail(f"no account has the id or email {buyer!r}")
    methods = sandbox.directory.payment_methods(found_buyer.id)
    if method is None:
        cards = [m for m in methods if m.kind is PaymentMethodKind.card]
        if not cards:
            raise fail("the buyer has no card: add one, or name a method with --method")
        method = cards[0].id
    elif method not in {m.id for m in methods}:
        raise fail(f"the buyer has no payment method {method!r}")
    return found_merchant.id, found_buyer.id, method


ReferenceOption = Annotated[
    str, typer.Option(metavar="REFERENCE", help="Caller reference prefix (must be new).")
]


def _emit_setup(as_json: bool, setup: InstrumentSetup, kind: str, second: str) -> None:
    """A set-up as JSON, or its instrument and two tokens, one a line (``kind`` names the
    instrument, ``second`` its second token)."""
    labels = (f"{kind} instrument", f"{kind} sender token", f"{second} token")
    ids = (setup.instrument.id, setup.sender_token.id, setup.second_token.id)
    width = max(map(len, labels)) + 2
    emit(
        as_json,
        _setup_data(setup),
        [f"{label:<{width}}{id_}" for label, id_ in zip(labels, ids, strict=True)],
    )


def _setup_data(setup: InstrumentSetup) -> dict[str, Any]:
    return {
        "instrument_id": setup.instrument.id,
        "kind": setup.instrument.kind.value,
        "sender_token_id": setup.sender_token.id,
        "second_token_id": setup.second_token.id,
        "second_token_kind": setup.second_token.kind.value,
        "valid_until_us": setup.instrument.valid_until,
    }


@sandbox_app.command("setup-prepaid")
def setup_prepaid(
    merchant: MerchantOption,
    buyer: BuyerOption,
    reference: ReferenceOption,
    funding_limit: Annotated[
        str | None, typer.Option(metavar="AMOUNT", help="Most that may ever be funded, e.g. 100.")
    ] = None,
    method: MethodOption = None,
    days: DaysOption = 365,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a prepaid instrument as if the buyer had completed the SetupPrepaid pipeline."""
    limit = _amount(funding_limit, "--funding-limit")
    with _sandbox(database) as sandbox:
        merchant_id, buyer_id, method_id = _parties(sandbox, merchant, buyer, method)
        setup = sandbox.payments.setup_prepaid(
            prepaid_setup(
                merchant_id,
                buyer_id,
                method_id,
                reference,
                funding_limit=limit,
                valid_until=valid_for_days(sandbox.clock.now_us(), days),
            )
        )
    _emit_setup(as_json, setup, "prepaid", "funding")


@sandbox_app.command("setup-postpaid")
def setup_postpaid(
    merchant: MerchantOption,
    buyer: BuyerOption,
    reference: ReferenceOption,
    credit_limit: Annotated[
        str, typer.Option(metavar="AMOUNT", help="The most the debt may reach, e.g. 100.")
    ],
    global_amount_limit: Annotated[
        str | None,
        typer.Option(metavar="AMOUNT", help="The most that may ever be charged in total."),
    ] = None,
    method: MethodOption = None,
    days: DaysOption = 365,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a credit instrument as if the buyer had completed the SetupPostpaid pipeline."""
    limit = _amount(credit_limit, "--credit-limit")
    assert limit is not None
    global_limit = _amount(global_amount_limit, "--global-amount-limit")
    with _sandbox(database) as sandbox:
        merchant_id, buyer_id, method_id = _parties(sandbox, merchant, buyer, method)
        setup = sandbox.payments.setup_postpaid(
            postpaid_setup(
                merchant_id,
                buyer_id,
                method_id,
                reference,
                credit_limit=limit,
                global_amount_limit=global_limit,
                valid_until=valid_for_days(sandbox.clock.now_us(), days),
            )
        )
    _emit_setup(as_json, setup, "credit", "settlement")
