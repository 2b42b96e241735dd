"""The directory on both stores: accounts and their ledger accounts, keys, payment methods.

Also what must never be on disk: API secrets in clear, and card or bank account numbers (the
tests read the tables raw and, on SQLite, the database files' bytes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from builders import manual_clock, other_directory, store
from penny.clock import MICROS_PER_DAY, ManualClock
from penny.domain.funding import ChargeDecision, SandboxFunding
from penny.domain.parties import (
    SANDBOX_CARDS,
    CardBehaviour,
    CardBrand,
    PartyKind,
    PaymentMethodKind,
)
from penny.ledger.model import AccountFlags
from penny.money import Money
from penny.parties import (
    Directory,
    DuplicateEmailError,
    DuplicatePaymentMethodError,
    InvalidDetailsError,
    UnknownAccountError,
    UnknownKeyError,
    WrongAccountKindError,
)
from penny.security import ServerKey, ServerKeyError
from penny.services.factory import Services
from penny.storage import parties_sql
from penny.storage.database import Database

PASSWORD = "correct horse battery"
BANK_OK = "000123456789"
BANK_RETURNED = "000111110000"
ROUTING = "110000000"


@pytest.fixture
def services(database_url: str) -> Iterator[Services]:
    with store(database_url) as made:
        yield made


@pytest.fixture
def database(services: Services) -> Database:
    return services.database


@pytest.fixture
def clock(services: Services) -> ManualClock:
    return manual_clock(services)


@pytest.fixture
def directory(services: Services) -> Directory:
    return services.directory


def _all_stored_text(database: Database) -> str:
    """Every value of every table, as text (bytes decoded leniently)."""
    with database.read() as conn:
        tables = inspect(conn).get_table_names()
        values = [
            value
            for table in tables
            for row in conn.execute(text(f'SELECT * FROM "{table}"'))
            for value in row
        ]
    return "\n".join(
        bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v) for v in values
    )


def _sqlite_file_bytes(database: Database) -> bytes:
    """The database file with its WAL and shared-memory files, as they are on disk."""
    path = Path(str(make_url(database.url).database))
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def _ledger_account_count(database: Database) -> int:
    with database.read() as conn:
        return int(conn.execute(text("SELECT count(*) FROM ledger_accounts")).scalar_one())


# -- opening accounts --------------------------------------------------------------------


def test_a_business_gets_three_ledger_accounts_and_a_key(directory: Directory) -> None:
    party, key = directory.create_business(" Acme Inc ", "Sales@Acme.TEST")
    assert party.kind is PartyKind.business
    assert (party.name, party.email) == ("Acme Inc", "sales@acme.test")
    assert party.balance_account_id is None
    ledger = directory.ledger
    flags = {}
    for role, account_id in party.ledger_accounts.items():
        account = ledger.account(account_id)
        assert account is not None
        assert account.currency == "USD"
        assert ledger.balance(account_id) == account.balance
        assert account.balance.debits_posted == account.balance.credits_posted == 0
        flags[role] = account.flags
    assert flags == {
        "payable": AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        "prepaid_issued": AccountFlags.NONE,
        "credit_extended": AccountFlags.NONE,
    }
    assert key.key.party_id == party.id
    assert directory.secret_for(key.access_key_id) == key.secret
    assert directory.party(party.id) == party
    assert directory.party_by_email("SALES@acme.test") == party
    assert directory.find(party.id) == directory.find(" sales@ACME.test") == party
    assert ledger.audit().ok


def test_a_person_gets_a_balance_account_and_method(directory: Directory) -> None:
    party = directory.create_personal("Bob", "bob@example.com", PASSWORD)
    assert party.kind is PartyKind.personal
    assert party.ledger_accounts.keys() == {"balance"}
    assert party.balance_account_id is not None
    account = directory.ledger.account(party.balance_account_id)
    assert account is not None
    assert account.flags == AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    (method,) = directory.payment_methods(party.id)
    assert method.kind is PaymentMethodKind.balance
    assert method.behaviour is CardBehaviour.succeed


def test_a_duplicate_email_is_refused_whatever_its_case(directory: Directory) -> None:
    directory.create_business("Acme", "owner@example.com")
    accounts_before = _ledger_account_count(directory.database)
    with pytest.raises(DuplicateEmailError, match=r"owner@example\.com already exists"):
        directory.create_business("Acme again", "Owner@Example.com")
    with pytest.raises(DuplicateEmailError):
        directory.create_personal("Owner", "OWNER@example.com ", PASSWORD)
    assert _ledger_account_count(directory.database) == accounts_before  # nothing half-made


@pytest.mark.parametrize(
    ("name", "email", "password", "message"),
    [
        ("", "a@example.com", PASSWORD, "name is empty"),
        ("Al", "not-an-email", PASSWORD, "not an email address"),
        ("Al", "a@example.com", "short", "at least 8"),
    ],
)
def test_bad_details_are_refused(
    directory: Directory, name: str, email: str, password: str, message: str
) -> None:
    with pytest.raises(InvalidDetailsError, match=message):
        directory.create_personal(name, email, password)
    assert _ledger_account_count(directory.database) == 0


def test_buyers_authenticate_with_email_and_password(directory: Directory) -> None:
    bob = directory.create_personal("Bob", "bob@example.com", PASSWORD)
    directory.create_business("Acme", "acme@example.com")
    assert directory.authenticate_buyer("Bob@Example.com", PASSWORD) == bob
    assert directory.authenticate_buyer("bob@example.com", PASSWORD + "!") is None
    assert directory.authenticate_buyer("nobody@example.com", PASSWORD) is None
    assert directory.authenticate_buyer("acme@example.com", PASSWORD) is None  # no password
    assert directory.authenticate_buyer("not an email", PASSWORD) is None
    with directory.database.read() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM parties WHERE id = :i"), {"i": bob.id}
        )
        password_hash = stored.scalar_one()
    assert password_hash.startswith("$argon2id$")
    assert PASSWORD not in password_hash


def test_lookups_of_unknown_accounts(directory: Directory) -> None:
    assert directory.party("NOSUCHACCOUNT") is None
    assert directory.party_by_email("nobody@example.com") is None
    assert directory.party_by_email("bad") is None
    with pytest.raises(UnknownAccountError, match="NOSUCHACCOUNT"):
        directory.payment_methods("NOSUCHACCOUNT")


def test_ipn_url(directory: Directory) -> None:
    party, _ = directory.create_business("Acme", "acme@example.com")
    assert directory.set_ipn_url(party.id, "https://acme.example/ipn").ipn_url == (
        "https://acme.example/ipn"
    )
    assert directory.set_ipn_url(party.id, None).ipn_url is None
    with pytest.raises(InvalidDetailsError):
        directory.set_ipn_url(party.id, "ftp://acme.example/")
    bob = directory.create_personal("Bob", "bob@example.com", PASSWORD)
    with pytest.raises(WrongAccountKindError):
        directory.set_ipn_url(bob.id, "https://bob.example/")


# -- API keys ----------------------------------------------------------------------------


def test_secrets_are_not_stored_in_clear(directory: Directory) -> None:
    party, first = directory.create_business("Acme", "acme@example.com")
    second = directory.create_key(party.id)
    with directory.database.read() as conn:
        rows = conn.execute(text("SELECT access_key_id, secret_ciphertext FROM api_keys")).all()
    assert {row[0] for row in rows} == {first.access_key_id, second.access_key_id}
    for _, ciphertext in rows:
        for key in (first, second):
            assert key.secret.encode() not in bytes(ciphertext)
    stored = _all_stored_text(directory.database)
    assert first.secret not in stored
    assert second.secret not in stored
    if directory.database.is_sqlite:
        on_disk = _sqlite_file_bytes(directory.database)
        assert first.access_key_id.encode() in on_disk  # the scan does see the keys' rows
        assert first.secret.encode() not in on_disk
        assert second.secret.encode() not in on_disk


def test_keys_are_listed_and_revoked(directory: Directory, clock: ManualClock) -> None:
    party, first = directory.create_business("Acme", "acme@example.com")
    clock.advance(1)
    second = directory.create_key(party.id)
    assert second.access_key_id != first.access_key_id
    assert [k.access_key_id for k in directory.list_keys(party.id)] == [
        first.access_key_id,
        second.access_key_id,
    ]
    clock.advance(MICROS_PER_DAY)
    revoked = directory.revoke_key(first.access_key_id)
    assert revoked.revoked_at == clock.now_us()
    assert not revoked.active
    assert directory.secret_for(first.access_key_id) is None
    assert directory.secret_for(second.access_key_id) == second.secret
    clock.advance(1)
    assert directory.revoke_key(first.access_key_id) == revoked  # again: no change
    assert directory.api_key(first.access_key_id) == revoked
    assert [k.active for k in directory.list_keys(party.id)] == [False, True]


def test_key_errors(directory: Directory) -> None:
    bob = directory.create_personal("Bob", "bob@example.com", PASSWORD)
    assert directory.secret_for("PNYNOSUCHKEY00000000") is None
    assert directory.api_key("PNYNOSUCHKEY00000000") is None
    with pytest.raises(UnknownKeyError, match="PNYNOSUCHKEY00000000"):
        directory.revoke_key("PNYNOSUCHKEY00000000")
    with pytest.raises(WrongAccountKindError, match="API keys belong to business accounts"):
        directory.create_key(bob.id)
    with pytest.raises(WrongAccountKindError):
        directory.list_keys(bob.id)
    with pytest.raises(UnknownAccountError):
        directory.create_key("NOSUCHACCOUNT")


def test_secrets_need_the_server_key_they_were_stored_with(
    services: Services, directory: Directory
) -> None:
    _, key = directory.create_business("Acme", "acme@example.com")
    other = other_directory(services, ServerKey.generate())
    with pytest.raises(ServerKeyError, match="does not decrypt"):
        other.secret_for(key.access_key_id)


# -- payment methods ---------------------------------------------------------------------


def _buyer(directory: Directory) -> str:
    return directory.create_personal("Bob", "bob@example.com", PASSWORD).id


def test_cards_and_bank_accounts_are_kept_without_their_numbers(
    directory: Directory, clock: ManualClock
) -> None:
    bob = _buyer(directory)
    card = directory.add_card(bob, "5555 5555 5555 4444", 12, 2030, holder_name="Bob B")
    clock.advance(1)
    bank = directory.add_bank(bob, ROUTING, BANK_OK)
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == (
        CardBrand.mastercard,
        "4444",
        12,
        2030,
    )
    assert card.holder_name == "Bob B"
    assert (bank.last4, bank.routing_last4, bank.brand) == ("6789", "0000", None)
    assert directory.payment_methods(bob)[1:] == [card, bank]  # oldest first, after the balance
    for number in SANDBOX_CARDS:
        if number != "5555555555554444":
            directory.add_card(bob, number, 1, 2031)
    stored = _all_stored_text(directory.database)
    for number in [*SANDBOX_CARDS, BANK_OK]:
        assert number not in stored
    if directory.database.is_sqlite:
        on_disk = _sqlite_file_bytes(directory.database)
        assert card.id.encode() in on_disk
        for number in [*SANDBOX_CARDS, BANK_OK]:
            assert number.encode() not in on_disk


def test_card_errors(directory: Directory, clock: ManualClock) -> None:
    bob = _buyer(directory)
    acme, _ = directory.create_business("Acme", "acme@example.com")
    with pytest.raises(InvalidDetailsError, match="Luhn"):
        directory.add_card(bob, "4111111111111112", 12, 2030)
    with pytest.raises(InvalidDetailsError, match="expired"):
        directory.add_card(bob, "4111111111111111", 10, 2023)  # the clock is in November 2023
    with pytest.raises(WrongAccountKindError, match="payment methods belong to personal"):
        directory.add_card(acme.id, "4111111111111111", 12, 2030)
    with pytest.raises(UnknownAccountError):
        directory.add_card("NOSUCHACCOUNT", "4111111111111111", 12, 2030)
    with pytest.raises(UnknownAccountError):
        directory.add_bank("NOSUCHACCOUNT", ROUTING, BANK_OK)
    with pytest.raises(InvalidDetailsError, match="routing"):
        directory.add_bank(bob, "123456789", BANK_OK)
    assert len(directory.payment_methods(bob)) == 1  # the balance only


def test_the_same_card_twice_is_refused(directory: Directory) -> None:
    bob = _buyer(directory)
    first = directory.add_card(bob, "4111111111111111", 12, 2030)
    with pytest.raises(DuplicatePaymentMethodError, match=first.id):
        directory.add_card(bob, "4111-1111-1111-1111", 1, 2031)
    directory.add_bank(bob, ROUTING, BANK_OK)
    with pytest.raises(DuplicatePaymentMethodError, match="bank account ending 6789"):
        directory.add_bank(bob, ROUTING, BANK_OK)
    alice = directory.create_personal("Alice", "alice@example.com", PASSWORD).id
    other = directory.add_card(alice, "4111111111111111", 12, 2030)  # another buyer may
    assert other.fingerprint == first.fingerprint


# -- funding decisions for every sandbox number ------------------------------------------

_EXPECTED_CARDS = {
    "4111111111111111": "succeeded",
    "4242424242424242": "succeeded",
    "5555555555554444": "succeeded",
    "378282246310005": "succeeded",
    "6011111111111117": "succeeded",
    "4000000000000002": "declined",
    "4000000000000341": "fails after 1 day",
}


def test_every_sandbox_number_is_covered() -> None:
    assert _EXPECTED_CARDS.keys() == SANDBOX_CARDS.keys()


def test_funding_decisions_for_every_sandbox_number(
    directory: Directory, clock: ManualClock
) -> None:
    bob = _buyer(directory)
    cards = {n: directory.add_card(bob, n, 12, 2030).id for n in SANDBOX_CARDS}
    ok_bank = directory.add_bank(bob, ROUTING, BANK_OK).id
    returned_bank = directory.add_bank(bob, ROUTING, BANK_RETURNED).id
    balance = directory.payment_methods(bob)[0].id
    with directory.database.read() as conn:  # as the payments service loads them
        methods = parties_sql.load_payment_methods(conn, [*cards.values(), ok_bank, returned_bank])
        methods |= parties_sql.load_payment_methods(conn, [balance])
    now, amount, funding = clock.now_us(), Money(2500, "USD"), SandboxFunding()
    expected = {
        "succeeded": ChargeDecision.success(),
        "declined": ChargeDecision.decline("The card was declined by the issuing bank."),
        "fails after 1 day": ChargeDecision.pending_until(now + MICROS_PER_DAY, ok=False),
    }
    for number, method_id in cards.items():
        decision = funding.charge(methods[method_id], amount, "T" + number, now)
        assert decision == expected[_EXPECTED_CARDS[number]], number
    four_days = now + 4 * MICROS_PER_DAY
    assert funding.charge(methods[ok_bank], amount, "TB1", now) == ChargeDecision.pending_until(
        four_days, ok=True
    )
    assert funding.charge(
        methods[returned_bank], amount, "TB2", now
    ) == ChargeDecision.pending_until(four_days, ok=False)
    assert funding.charge(methods[balance], amount, "TA", now) == ChargeDecision.success()
