"""Pure tests of parties, payment-method validation, secrets and the sandbox funding source.

No database: Luhn, brands, expiry, emails, ids, password hashing, encryption of API secrets,
fingerprints, loading the server key, and the sandbox's charge decisions.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from penny.clock import MICROS_PER_DAY, ManualClock
from penny.domain.funding import (
    BANK_TRANSFER_DELAY_US,
    CARD_FAILURE_DELAY_US,
    ChargeDecision,
    ChargeOutcome,
    FundingSource,
    SandboxFunding,
)
from penny.domain.parties import (
    SANDBOX_CARDS,
    SANDBOX_ROUTING_NUMBER,
    ApiKey,
    ApiKeyWithSecret,
    CardBehaviour,
    CardBrand,
    InvalidDetailsError,
    Party,
    PartyKind,
    PaymentMethod,
    PaymentMethodKind,
    bank_behaviour,
    card_behaviour,
    card_brand,
    card_expired,
    check_bank_account,
    check_card_number,
    check_expiry,
    check_password,
    luhn_ok,
    new_access_key_id,
    new_party_id,
    new_payment_method_id,
    normalise_email,
    normalise_ipn_url,
    normalise_name,
    parse_expiry,
    routing_ok,
    valid_email,
)
from penny.money import Money
from penny.security import (
    KEY_FILE_NAME,
    SERVER_KEY_ENV,
    SERVER_KEY_FILE_ENV,
    ServerKey,
    ServerKeyError,
    hash_password,
    load_server_key,
    new_secret_key,
    password_needs_rehash,
    verify_password,
)

#: 2023-11-14T22:13:20Z, ManualClock's default start.
NOW = ManualClock().now_us()
KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


# -- cards -------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [*SANDBOX_CARDS, "5105105105105100", "4012888888881881"])
def test_sandbox_and_known_test_numbers_pass_luhn(number: str) -> None:
    assert luhn_ok(number)


@pytest.mark.parametrize(
    "number",
    ["4111111111111112", "1234567812345678", "41111111111", "4" * 20, "4111-1111-1111-1111", ""],
)
def test_luhn_refuses_bad_check_digits_and_shapes(number: str) -> None:
    assert not luhn_ok(number)


def _luhn_check_digit(payload: str) -> str:
    for digit in "0123456789":
        if luhn_ok(payload + digit):
            return digit
    raise AssertionError("every payload has a check digit")


@given(st.text(alphabet="0123456789", min_size=11, max_size=18), st.data())
def test_luhn_catches_every_single_digit_change(payload: str, data: st.DataObject) -> None:
    number = payload + _luhn_check_digit(payload)
    position = data.draw(st.integers(0, len(number) - 1))
    replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    changed = number[:position] + replacement + number[position + 1 :]
    assert not luhn_ok(changed)


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4111111111111111", CardBrand.visa),
        ("4222222222222", CardBrand.visa),
        ("5555555555554444", CardBrand.mastercard),
        ("2223003122003222", CardBrand.mastercard),
        ("378282246310005", CardBrand.amex),
        ("6011111111111117", CardBrand.discover),
        ("6500000000000002", CardBrand.discover),
        ("9999999999999995", None),
        ("3530111333300000", None),  # JCB: not a network Penny knows
    ],
)
def test_card_brand_from_prefix_and_length(number: str, brand: CardBrand | None) -> None:
    assert card_brand(number) is brand


def test_card_number_is_normalised_and_checked() -> None:
    assert check_card_number(" 4111 1111-1111 1111 ") == ("4111111111111111", CardBrand.visa)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4111111111111112", "fails the Luhn check"),
        ("4111x11111111111", "digits only"),
        ("411111", "12 to 19 digits"),
        ("9999999999999995", "not a Visa"),
    ],
)
def test_bad_card_numbers_are_refused_without_echoing_them(text: str, message: str) -> None:
    with pytest.raises(InvalidDetailsError, match=message) as caught:
        check_card_number(text)
    assert text not in str(caught.value)


def test_sandbox_card_behaviours() -> None:
    assert card_behaviour("4111111111111111") is CardBehaviour.succeed
    assert card_behaviour("5555555555554444") is CardBehaviour.succeed
    assert card_behaviour("4000000000000002") is CardBehaviour.decline
    assert card_behaviour("4000000000000341") is CardBehaviour.fail_later
    assert card_behaviour("4012888888881881") is CardBehaviour.succeed  # not in the table


# -- expiry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12/2030", (12, 2030)),
        ("1/2030", (1, 2030)),
        ("03/27", (3, 2027)),
        (" 7 / 2031 ", (7, 2031)),
    ],
)
def test_parse_expiry(text: str, expected: tuple[int, int]) -> None:
    assert parse_expiry(text) == expected


@pytest.mark.parametrize("text", ["13/2030", "0/2030", "12-2030", "12/203", "122030", "", "ab/cd"])
def test_parse_expiry_refuses(text: str) -> None:
    with pytest.raises(InvalidDetailsError):
        parse_expiry(text)


def test_a_card_is_valid_through_its_expiry_month() -> None:
    assert not card_expired(11, 2023, NOW)  # NOW is in November 2023
    assert card_expired(10, 2023, NOW)
    assert card_expired(12, 2022, NOW)
    next_month = NOW + 17 * MICROS_PER_DAY  # 2023-12-01
    assert card_expired(11, 2023, next_month)


def test_check_expiry_refuses_past_and_absurd_dates() -> None:
    check_expiry(11, 2023, NOW)
    with pytest.raises(InvalidDetailsError, match="expired"):
        check_expiry(10, 2023, NOW)
    with pytest.raises(InvalidDetailsError, match="too far"):
        check_expiry(1, 2099, NOW)
    with pytest.raises(InvalidDetailsError, match="not 1 to 12"):
        check_expiry(13, 2030, NOW)


# -- bank accounts -----------------------------------------------------------------------


def test_routing_numbers_follow_the_aba_checksum() -> None:
    assert routing_ok(SANDBOX_ROUTING_NUMBER)
    assert routing_ok("021000021")
    assert not routing_ok("021000022")
    assert not routing_ok("12345678")
    assert not routing_ok("abcdefghi")


def test_bank_accounts_are_checked_and_their_behaviour_follows_the_last_digits() -> None:
    assert check_bank_account("110000000", "0001-2345-6789") == ("110000000", "000123456789")
    with pytest.raises(InvalidDetailsError, match="routing"):
        check_bank_account("110000001", "000123456789")
    with pytest.raises(InvalidDetailsError, match="4 to 17 digits"):
        check_bank_account("110000000", "123")
    assert bank_behaviour("000123456789") is CardBehaviour.succeed
    assert bank_behaviour("000111110000") is CardBehaviour.fail_later


# -- people ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", ["a@b.co", "first.last+tag@example.com", "x@sub.domain.example", "é@exämple.com"]
)
def test_valid_emails(email: str) -> None:
    assert valid_email(email)


@pytest.mark.parametrize(
    "email",
    [
        *["", "plain", "@example.com", "a@", "a@b", "a b@c.com", "a@b..com", "a@@b.com"],
        *["a@.com", "x" * 65 + "@example.com", "a@" + "b" * 250 + ".com"],
    ],
)
def test_invalid_emails(email: str) -> None:
    assert not valid_email(email)


def test_emails_are_trimmed_and_lower_cased() -> None:
    assert normalise_email("  Bob@Example.COM ") == "bob@example.com"
    with pytest.raises(InvalidDetailsError, match="not an email address"):
        normalise_email("bob")


def test_names_and_passwords() -> None:
    assert normalise_name("  Acme Inc ") == "Acme Inc"
    for bad in ["", "   ", "x" * 129, "tab\there"]:
        with pytest.raises(InvalidDetailsError):
            normalise_name(bad)
    check_password("eight ch")
    with pytest.raises(InvalidDetailsError, match="at least 8"):
        check_password("short")
    with pytest.raises(InvalidDetailsError, match="at most"):
        check_password("x" * 1025)


def test_ipn_urls() -> None:
    assert normalise_ipn_url(" https://shop.example/ipn ") == "https://shop.example/ipn"
    for bad in ["ftp://x.example/", "https://", "not a url", "javascript:alert(1)"]:
        with pytest.raises(InvalidDetailsError):
            normalise_ipn_url(bad)


# -- ids and data ------------------------------------------------------------------------


def test_id_formats() -> None:
    assert re.fullmatch(r"[A-Z0-9]{13}", new_party_id())
    assert re.fullmatch(r"PM[A-Z0-9]{18}", new_payment_method_id())
    assert re.fullmatch(r"PNY[A-Z0-9]{17}", new_access_key_id())
    secret = new_secret_key()
    assert len(secret) == 40
    assert len(base64.b64decode(secret, validate=True)) == 30
    assert len({new_access_key_id() for _ in range(100)}) == 100


def test_party_ledger_accounts_by_role() -> None:
    business = Party("B", PartyKind.business, "n", "e@x.io", 0, None, 1, 2, 3)
    person = Party("P", PartyKind.personal, "n", "f@x.io", 0, balance_account_id=9)
    assert business.ledger_accounts == {"payable": 1, "prepaid_issued": 2, "credit_extended": 3}
    assert person.ledger_accounts == {"balance": 9}


def test_a_new_key_does_not_show_its_secret_in_repr() -> None:
    secret = new_secret_key()
    key = ApiKeyWithSecret(ApiKey("PNYAAAAAAAAAAAAAAAAA", "P", 0), secret)
    assert secret not in repr(key)
    assert key.access_key_id == "PNYAAAAAAAAAAAAAAAAA"
    assert key.key.active


def _card(behaviour: CardBehaviour, exp_year: int = 2030) -> PaymentMethod:
    return PaymentMethod(
        "PM1", "P", PaymentMethodKind.card, behaviour, 0, CardBrand.visa, "1111", 12, exp_year
    )


def test_payment_method_descriptions_show_last_four_only() -> None:
    assert _card(CardBehaviour.succeed).describe() == "Visa •••• 1111, expires 12/2030"
    bank = PaymentMethod(
        "PM2", "P", PaymentMethodKind.bank, CardBehaviour.succeed, 0, last4="6789",
        routing_last4="0000",
    )  # fmt: skip
    assert bank.describe() == "bank account •••• 6789 (routing •••• 0000)"
    balance = PaymentMethod("PM3", "P", PaymentMethodKind.balance, CardBehaviour.succeed, 0)
    assert balance.describe() == "Penny balance"


# -- passwords ---------------------------------------------------------------------------


def test_password_hash_round_trip() -> None:
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "correct horse battery" not in hashed
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "correct horse battery!")
    assert not password_needs_rehash(hashed)
    assert hash_password("correct horse battery") != hashed  # salted


def test_a_malformed_hash_never_verifies() -> None:
    assert not verify_password("not a hash", "anything")
    assert not verify_password("", "")


# -- API secrets -------------------------------------------------------------------------


def test_secret_encryption_round_trip() -> None:
    key = ServerKey.from_hex(KEY_HEX, source="test")
    secret = new_secret_key()
    blob = key.encrypt_secret(secret, "PNYAAAAAAAAAAAAAAAAA")
    assert secret.encode() not in blob
    assert key.decrypt_secret(blob, "PNYAAAAAAAAAAAAAAAAA") == secret
    assert key.encrypt_secret(secret, "PNYAAAAAAAAAAAAAAAAA") != blob  # fresh nonce


def test_tampered_ciphertext_is_detected() -> None:
    key = ServerKey.generate()
    blob = bytearray(key.encrypt_secret(new_secret_key(), "PNYAAAAAAAAAAAAAAAAA"))
    for position in (1, 14, len(blob) - 1):  # nonce, ciphertext, tag
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(ServerKeyError, match="does not decrypt"):
            key.decrypt_secret(bytes(tampered), "PNYAAAAAAAAAAAAAAAAA")
    with pytest.raises(ServerKeyError, match="unknown format"):
        key.decrypt_secret(b"\x02" + bytes(blob[1:]), "PNYAAAAAAAAAAAAAAAAA")


def test_a_ciphertext_is_bound_to_its_access_key_id() -> None:
    key = ServerKey.generate()
    blob = key.encrypt_secret(new_secret_key(), "PNYAAAAAAAAAAAAAAAAA")
    with pytest.raises(ServerKeyError):
        key.decrypt_secret(blob, "PNYBBBBBBBBBBBBBBBBB")


def test_the_wrong_server_key_fails() -> None:
    blob = ServerKey.generate().encrypt_secret(new_secret_key(), "PNYAAAAAAAAAAAAAAAAA")
    with pytest.raises(ServerKeyError, match="server key"):
        ServerKey.generate().decrypt_secret(blob, "PNYAAAAAAAAAAAAAAAAA")


def test_server_keys_are_never_printed_and_must_be_64_hex() -> None:
    key = ServerKey.from_hex(KEY_HEX.upper(), source="test")
    assert KEY_HEX not in repr(key)
    for bad in ["", "00", KEY_HEX[:-1], KEY_HEX + "00", "zz" * 32]:
        with pytest.raises(ServerKeyError, match="64 hexadecimal"):
            ServerKey.from_hex(bad, source="test")
    with pytest.raises(ServerKeyError):
        ServerKey(b"short")


# -- fingerprints ------------------------------------------------------------------------


@pytest.mark.parametrize("number", list(SANDBOX_CARDS))
def test_fingerprints_never_contain_the_number(number: str) -> None:
    key = ServerKey.generate()
    fingerprint = key.fingerprint("card", number)
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint)
    assert number not in fingerprint
    assert fingerprint == key.fingerprint("card", number)
    assert fingerprint != key.fingerprint("bank", number)
    assert fingerprint != ServerKey.generate().fingerprint("card", number)


# -- loading the server key --------------------------------------------------------------


def test_the_key_comes_from_the_environment_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'penny.db'}"
    environ = {SERVER_KEY_ENV: KEY_HEX}
    blob = load_server_key(url, environ).encrypt_secret("s", "K")
    assert ServerKey.from_hex(KEY_HEX, source="t").decrypt_secret(blob, "K") == "s"
    assert not (tmp_path / KEY_FILE_NAME).exists()
    with pytest.raises(ServerKeyError, match=r"\$PENNY_SECRET_KEY must hold"):
        load_server_key(url, {SERVER_KEY_ENV: "nothex"})


def test_the_key_can_come_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key.hex"
    key_file.write_text(KEY_HEX + "\n")
    blob = load_server_key(
        "postgresql://h/db", {SERVER_KEY_FILE_ENV: str(key_file)}
    ).encrypt_secret("s", "K")
    assert ServerKey.from_hex(KEY_HEX, source="t").decrypt_secret(blob, "K") == "s"
    with pytest.raises(ServerKeyError, match="cannot read"):
        load_server_key("postgresql://h/db", {SERVER_KEY_FILE_ENV: str(tmp_path / "missing")})


def test_a_key_file_is_made_next_to_an_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'penny.db'}"
    first = load_server_key(url, {})
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", path.read_text())
    second = load_server_key(url, {})  # the same key on the next start
    assert second.decrypt_secret(first.encrypt_secret("s", "K"), "K") == "s"
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE_NAME]  # no temporary left


def test_postgresql_without_a_configured_key_is_refused() -> None:
    with pytest.raises(ServerKeyError, match="no server key configured"):
        load_server_key("postgresql+psycopg://user@localhost/penny", {})


def test_an_in_memory_database_gets_a_key_for_the_process() -> None:
    assert isinstance(load_server_key("sqlite://", {}), ServerKey)
    assert isinstance(load_server_key("sqlite:///:memory:", {}), ServerKey)


# -- funding -----------------------------------------------------------------------------

USD_10 = Money(1000, "USD")


def test_the_sandbox_conforms_to_the_funding_source_interface() -> None:
    source: FundingSource = SandboxFunding()
    decision = source.charge(_card(CardBehaviour.succeed), USD_10, "T1", NOW)
    assert decision == ChargeDecision.success()


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (_card(CardBehaviour.succeed), ChargeDecision(ChargeOutcome.succeeded)),
        (
            _card(CardBehaviour.decline),
            ChargeDecision.decline("The card was declined by the issuing bank."),
        ),
        (
            _card(CardBehaviour.fail_later),
            ChargeDecision.pending_until(NOW + CARD_FAILURE_DELAY_US, ok=False),
        ),
        (
            _card(CardBehaviour.succeed, exp_year=2022),
            ChargeDecision.decline("The card has expired."),
        ),
        (
            PaymentMethod("B", "P", PaymentMethodKind.bank, CardBehaviour.succeed, 0, last4="6789"),
            ChargeDecision.pending_until(NOW + BANK_TRANSFER_DELAY_US, ok=True),
        ),
        (
            PaymentMethod("B", "P", PaymentMethodKind.bank, CardBehaviour.fail_later, 0, last4="0"),
            ChargeDecision.pending_until(NOW + BANK_TRANSFER_DELAY_US, ok=False),
        ),
        (
            PaymentMethod("A", "P", PaymentMethodKind.balance, CardBehaviour.succeed, 0),
            ChargeDecision.success(),
        ),
    ],
    ids=["card", "declined", "fails-later", "expired", "bank", "bank-returned", "balance"],
)
def test_sandbox_decisions(method: PaymentMethod, expected: ChargeDecision) -> None:
    assert SandboxFunding().charge(method, USD_10, "T1", NOW) == expected


def test_sandbox_delays() -> None:
    assert CARD_FAILURE_DELAY_US == MICROS_PER_DAY
    assert BANK_TRANSFER_DELAY_US == 4 * MICROS_PER_DAY


def test_decisions_are_consistent_by_construction() -> None:
    with pytest.raises(AssertionError):
        ChargeDecision(ChargeOutcome.pending)
    with pytest.raises(AssertionError):
        ChargeDecision(ChargeOutcome.declined)
    with pytest.raises(AssertionError):
        ChargeDecision(ChargeOutcome.succeeded, completes_at=1, completes_ok=True)
