"""Seeding for ``penny bench http``: merchants with API keys, buyers with funded instruments.

Uses the real services (:class:`~penny.parties.Directory` for merchants and their keys,
:class:`~penny.services.payments.Payments` for instruments and FundPrepaid) so the data is
exactly what the server would have made, but in bulk: buyers are written many per transaction
(one shared password hash — argon2 per buyer would take minutes and is not what is measured),
instruments are issued a chunk per transaction, and FundPrepaid goes through
:meth:`Payments.submit` in large batches.

Each buyer ``i`` gets a card and three instruments: a prepaid one with merchant ``i % M``
(W1, W4, W6), a prepaid one with the hot merchant 0 (W2) and a postpaid one with merchant
``i % M`` (W5). Both prepaid instruments are funded with :data:`FUNDING_MINOR`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from penny.domain.model import InstrumentKind
from penny.domain.parties import (
    CardBehaviour,
    CardBrand,
    Party,
    PartyKind,
    PaymentMethod,
    PaymentMethodKind,
    new_party_id,
    new_payment_method_id,
)
from penny.engine.ledger import LedgerSession
from penny.ledger.model import AccountFlags, AccountSpec
from penny.money import Money
from penny.parties import PERSONAL_ACCOUNTS
from penny.sandbox.instruments import postpaid_setup, prepaid_setup
from penny.security import ServerKey, hash_password
from penny.services.factory import build_services
from penny.services.payments import (
    FundPrepaidRequest,
    InstrumentSetup,
    Payments,
    SetupPrepaid,
)
from penny.services.payments.setup import setup_instrument
from penny.storage import parties_sql
from penny.storage.database import Database

Progress = Callable[[str, float], None]

#: Every prepaid instrument is funded with $1,000,000 (the largest single amount Penny takes).
FUNDING_MINOR = 100_000_000
#: The credit line of every postpaid instrument.
CREDIT_MINOR = 100_000_000
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Merchant:
    party_id: str
    access_key_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class Buyer:
    merchant: int
    prepaid_token: str
    prepaid_instrument: str
    hot_token: str
    credit_token: str
    credit_instrument: str
    settlement_token: str


@dataclass(frozen=True, slots=True)
class Seed:
    merchants: list[Merchant]
    buyers: list[Buyer]

    def save(self, path: Path) -> None:
        data = {
            "merchants": [asdict(m) for m in self.merchants],
            "buyers": [asdict(b) for b in self.buyers],
        }
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> Seed:
        data = json.loads(path.read_text())
        return cls([Merchant(**m) for m in data["merchants"]], [Buyer(**b) for b in data["buyers"]])


def seed(
    database: Database,
    server_key: ServerKey,
    *,
    buyers: int,
    merchants: int,
    progress: Progress,
) -> Seed:
    """Fill a fresh store with ``merchants`` merchants and ``buyers`` funded buyers."""
    services = build_services(database, server_key=server_key)
    ledger, directory, payments = services.ledger, services.directory, services.payments
    payments.chart()
    made: list[Merchant] = []
    for index in range(merchants):
        party, key = directory.create_business(
            f"Bench merchant {index}", f"merchant{index}@bench.invalid"
        )
        made.append(Merchant(party.id, key.access_key_id, key.secret))
        progress("seed merchants", (index + 1) / merchants)
    password_hash = hash_password(secrets.token_hex(16))
    buyer_ids: list[tuple[str, str]] = []  # (party id, card method id)
    for start in range(0, buyers, CHUNK):
        count = min(CHUNK, buyers - start)
        buyer_ids.extend(
            ledger.run(partial(_buyers, start=start, count=count, hashed=password_hash))
        )
        progress("seed buyers", len(buyer_ids) / buyers)
    setups: list[tuple[InstrumentSetup, InstrumentSetup, InstrumentSetup]] = []
    for start in range(0, buyers, CHUNK):
        chunk = [(i, *buyer_ids[i]) for i in range(start, min(buyers, start + CHUNK))]
        work = partial(_instruments, payments=payments, merchants=made, chunk=chunk)
        setups.extend(ledger.run(work))
        progress("seed instruments", len(setups) / buyers)
    requests: list[FundPrepaidRequest] = []
    for index, trio in enumerate(setups):
        for which, setup in (("w", trio[0]), ("h", trio[1])):
            requests.append(
                FundPrepaidRequest(
                    caller_id=setup.instrument.recipient_id,
                    caller_reference=f"seed-fund-{which}-{index}",
                    funding_token_id=setup.second_token.id,
                    instrument_id=setup.instrument.id,
                    amount=Money(FUNDING_MINOR, "USD"),
                )
            )
    for start in range(0, len(requests), 2000):
        results = payments.submit(requests[start : start + 2000])
        failed = [r for r in results if isinstance(r, Exception)]
        assert not failed, f"seeding: FundPrepaid refused: {failed[:3]}"
        progress("seed funding", min(1.0, (start + 2000) / len(requests)))
    out = [
        Buyer(
            merchant=index % merchants,
            prepaid_token=w1.sender_token.id,
            prepaid_instrument=w1.instrument.id,
            hot_token=hot.sender_token.id,
            credit_token=credit.sender_token.id,
            credit_instrument=credit.instrument.id,
            settlement_token=credit.second_token.id,
        )
        for index, (w1, hot, credit) in enumerate(setups)
    ]
    return Seed(made, out)


def _buyers(
    session: LedgerSession, *, start: int, count: int, hashed: str
) -> list[tuple[str, str]]:
    specs = list(PERSONAL_ACCOUNTS) * count
    accounts = session.sql.create_accounts(session.conn, specs, session.now)
    made = []
    for offset, account in enumerate(accounts):
        index = start + offset
        party = Party(
            new_party_id(),
            PartyKind.personal,
            f"Bench buyer {index}",
            f"buyer{index}@bench.invalid",
            session.now,
            balance_account_id=account,
        )
        parties_sql.insert_party(session.conn, party, hashed)
        card = PaymentMethod(
            new_payment_method_id(),
            party.id,
            PaymentMethodKind.card,
            CardBehaviour.succeed,
            session.now,
            brand=CardBrand.visa,
            last4="1111",
            exp_month=12,
            exp_year=2099,
            fingerprint=secrets.token_hex(32),
        )
        balance = PaymentMethod(
            new_payment_method_id(),
            party.id,
            PaymentMethodKind.balance,
            CardBehaviour.succeed,
            session.now,
        )
        parties_sql.insert_payment_method(session.conn, balance)
        parties_sql.insert_payment_method(session.conn, card)
        made.append((party.id, card.id))
    return made


def _instruments(
    session: LedgerSession,
    *,
    payments: Payments,
    merchants: list[Merchant],
    chunk: list[tuple[int, str, str]],
) -> list[tuple[InstrumentSetup, InstrumentSetup, InstrumentSetup]]:
    out = []
    for index, buyer_id, card_id in chunk:
        merchant = merchants[index % len(merchants)].party_id
        hot = merchants[0].party_id
        prepaid_spec = AccountSpec("USD", AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)

        w1 = setup_instrument(
            session,
            new_id=payments.new_id,
            kind=InstrumentKind.prepaid,
            request=_prepaid(merchant, buyer_id, card_id, "w", index),
            currency="USD",
            references=(f"seed-w-s-{index}", f"seed-w-f-{index}"),
            spec=prepaid_spec,
        )
        hot_setup = setup_instrument(
            session,
            new_id=payments.new_id,
            kind=InstrumentKind.prepaid,
            request=_prepaid(hot, buyer_id, card_id, "h", index),
            currency="USD",
            references=(f"seed-h-s-{index}", f"seed-h-f-{index}"),
            spec=prepaid_spec,
        )
        credit = postpaid_setup(
            merchant,
            buyer_id,
            card_id,
            (f"seed-c-s-{index}", f"seed-c-t-{index}"),
            credit_limit=Money(CREDIT_MINOR, "USD"),
        )
        credit_setup = setup_instrument(
            session,
            new_id=payments.new_id,
            kind=InstrumentKind.credit,
            request=credit,
            currency="USD",
            references=(credit.caller_reference_sender, credit.caller_reference_settlement),
            spec=AccountSpec(
                "USD", AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS, debit_limit=CREDIT_MINOR
            ),
        )
        out.append((w1, hot_setup, credit_setup))
    return out


def _prepaid(recipient: str, buyer: str, card: str, tag: str, index: int) -> SetupPrepaid:
    return prepaid_setup(recipient, buyer, card, (f"seed-{tag}-s-{index}", f"seed-{tag}-f-{index}"))
