"""Parties (buyers and merchants), their API keys and payment methods, as plain immutable data.

* A **business** account is a merchant: the FPS *recipient* and usually the *caller*. It signs
  API requests with an access key id and secret (:class:`ApiKey`) and owns three ledger
  accounts: *payable* (what Penny owes it), *prepaid_issued* and *credit_extended*.
* A **personal** account is a buyer: the FPS *sender*. It signs in with email and password, owns
  one ledger account, its Penny *balance*, and pays with :class:`PaymentMethod` s: sandbox cards
  and bank accounts, and its balance (a method of kind ``balance`` every buyer has).

Also here: the validation of what people type (emails, names, card numbers with Luhn and
brand, expiry dates, ABA routing numbers), the sandbox test-number table (docs/sandbox.md), id
generation and :class:`DirectoryError`, the user errors of this part of the domain. No SQL, no
clock: "now" is handed in as microseconds since the epoch.
"""

from __future__ import annotations

import enum
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from penny.epoch import to_datetime

ID_ALPHABET: Final = string.ascii_uppercase + string.digits
PARTY_ID_LENGTH: Final = 13
PAYMENT_METHOD_ID_LENGTH: Final = 20
ACCESS_KEY_PREFIX: Final = "PNY"
ACCESS_KEY_ID_LENGTH: Final = 20

MAX_NAME_LENGTH: Final = 128
MAX_EMAIL_LENGTH: Final = 254
MIN_PASSWORD_LENGTH: Final = 8
MAX_PASSWORD_LENGTH: Final = 1024
MAX_URL_LENGTH: Final = 2048
#: A card may not claim to be valid further ahead than this (typos such as 2205 for 2025).
MAX_EXPIRY_YEARS_AHEAD: Final = 20


# -- errors ------------------------------------------------------------------------------


class DirectoryError(ValueError):
    """A request about parties, keys or payment methods that cannot be done as asked.

    The message says what is wrong in words a developer acts on; the CLI prints it as one line.
    """


class InvalidDetailsError(DirectoryError):
    """A name, email, password, card or bank detail is malformed or not acceptable."""


class DuplicateEmailError(DirectoryError):
    """Another account already uses this email address."""


class UnknownAccountError(DirectoryError):
    """No account has this id (or email)."""


class UnknownKeyError(DirectoryError):
    """No API key has this access key id."""


class WrongAccountKindError(DirectoryError):
    """The operation needs the other kind of account.

    API keys belong to business accounts, payment methods to personal ones.
    """


class DuplicatePaymentMethodError(DirectoryError):
    """The same card or bank account is already on this account."""


# -- the data ----------------------------------------------------------------------------


class PartyKind(enum.Enum):
    """What an account is. Values are stored."""

    business = "business"
    personal = "personal"


class PaymentMethodKind(enum.Enum):
    """How a buyer pays. Values are stored (and used by the payments service)."""

    card = "card"
    bank = "bank"
    balance = "balance"


class CardBehaviour(enum.Enum):
    """What the sandbox does when a payment method is charged (cards and bank accounts alike).

    ``succeed``: the money arrives (at once for a card, after 4 days for a bank transfer);
    ``decline``: refused at once; ``fail_later``: accepted as pending, then fails.
    """

    succeed = "succeed"
    decline = "decline"
    fail_later = "fail_later"


class CardBrand(enum.Enum):
    """Card networks Penny recognises from the number. Values are stored."""

    visa = "visa"
    mastercard = "mastercard"
    amex = "amex"
    discover = "discover"

    @property
    def label(self) -> str:
        return _BRAND_LABELS[self]


_BRAND_LABELS: Final = {
    CardBrand.visa: "Visa",
    CardBrand.mastercard: "Mastercard",
    CardBrand.amex: "American Express",
    CardBrand.discover: "Discover",
}


@dataclass(frozen=True, slots=True)
class Party:
    """An account: a business (merchant) or a personal (buyer) one.

    The ledger account ids are set for the party's kind only: ``payable``, ``prepaid_issued``
    and ``credit_extended`` for a business, ``balance`` for a person.
    """

    id: str
    kind: PartyKind
    name: str
    email: str
    created_at: int
    ipn_url: str | None = None
    payable_account_id: int | None = None
    prepaid_issued_account_id: int | None = None
    credit_extended_account_id: int | None = None
    balance_account_id: int | None = None

    @property
    def ledger_accounts(self) -> dict[str, int]:
        """The party's ledger accounts by role name, in a fixed order."""
        named = {
            "payable": self.payable_account_id,
            "prepaid_issued": self.prepaid_issued_account_id,
            "credit_extended": self.credit_extended_account_id,
            "balance": self.balance_account_id,
        }
        return {name: account for name, account in named.items() if account is not None}


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A business account's API credential, without its secret."""

    access_key_id: str
    party_id: str
    created_at: int
    revoked_at: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class ApiKeyWithSecret:
    """A key just created, with its secret: shown to its owner once, never again."""

    key: ApiKey
    secret: str = field(repr=False)

    @property
    def access_key_id(self) -> str:
        return self.key.access_key_id


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    """A buyer's way to pay. Never the full card or account number: last four digits only.

    ``fingerprint`` (hex HMAC-SHA256 of the number under the server key) recognises the same
    card or account again without storing it. Card fields are ``None`` for a bank account and
    both sets are ``None`` for the balance method.
    """

    id: str
    party_id: str
    kind: PaymentMethodKind
    behaviour: CardBehaviour
    created_at: int
    brand: CardBrand | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    fingerprint: str | None = None
    routing_last4: str | None = None
    holder_name: str | None = None

    def describe(self) -> str:
        """A one-line description safe to show anyone: ``Visa •••• 1111, expires 12/2030``."""
        if self.kind is PaymentMethodKind.card:
            assert self.brand is not None
            expiry = f"{self.exp_month:02d}/{self.exp_year}"
            return f"{self.brand.label} •••• {self.last4}, expires {expiry}"
        if self.kind is PaymentMethodKind.bank:
            return f"bank account •••• {self.last4} (routing •••• {self.routing_last4})"
        return "Penny balance"


# -- sandbox test numbers (docs/sandbox.md) ----------------------------------------------

#: Test card numbers with a behaviour other than the default. Any other valid card succeeds.
SANDBOX_CARDS: Final[dict[str, CardBehaviour]] = {
    "4111111111111111": CardBehaviour.succeed,
    "4242424242424242": CardBehaviour.succeed,
    "5555555555554444": CardBehaviour.succeed,
    "378282246310005": CardBehaviour.succeed,
    "6011111111111117": CardBehaviour.succeed,
    "4000000000000002": CardBehaviour.decline,
    "4000000000000341": CardBehaviour.fail_later,
}

#: A bank account number ending with this is returned (fails) when its transfer completes.
FAILING_BANK_ACCOUNT_SUFFIX: Final = "0000"

#: A routing number that passes the ABA checksum, for examples and tests.
SANDBOX_ROUTING_NUMBER: Final = "110000000"


def card_behaviour(number: str) -> CardBehaviour:
    """The sandbox behaviour of a (valid, normalised) card number."""
    return SANDBOX_CARDS.get(number, CardBehaviour.succeed)


def bank_behaviour(account_number: str) -> CardBehaviour:
    """The sandbox behaviour of a (valid, normalised) bank account number."""
    if account_number.endswith(FAILING_BANK_ACCOUNT_SUFFIX):
        return CardBehaviour.fail_later
    return CardBehaviour.succeed


# -- ids ---------------------------------------------------------------------------------


_ID_BYTES: Final = bytes(ord(ID_ALPHABET[b % len(ID_ALPHABET)]) for b in range(256))
_ID_REJECTED: Final = bytes(range(256 - 256 % len(ID_ALPHABET), 256))


def random_id(length: int) -> str:
    """An opaque FPS-style id: upper-case letters and digits, uniformly random from the
    system's secure randomness (one draw, not one per character: this runs for every
    transaction)."""
    # Bytes below 252 (= 7 × 36) map onto the alphabet uniformly; the rest are dropped.
    chosen = b""
    while len(chosen) < length:
        chosen += secrets.token_bytes(length + 8).translate(_ID_BYTES, _ID_REJECTED)
    return chosen[:length].decode("ascii")


def new_party_id() -> str:
    return random_id(PARTY_ID_LENGTH)


def new_payment_method_id() -> str:
    return "PM" + random_id(PAYMENT_METHOD_ID_LENGTH - 2)


def new_access_key_id() -> str:
    """``PNY`` and 17 upper-case letters and digits: 20 characters, like an AWS key id."""
    return ACCESS_KEY_PREFIX + random_id(ACCESS_KEY_ID_LENGTH - len(ACCESS_KEY_PREFIX))


# -- people's details --------------------------------------------------------------------

_EMAIL_RE: Final = re.compile(r"\A[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+\Z")


def valid_email(text: str) -> bool:
    """A simple shape check: ``local@domain.tld``, no spaces, at most 254 characters."""
    return len(text) <= MAX_EMAIL_LENGTH and _EMAIL_RE.match(text) is not None


def normalise_email(text: str) -> str:
    """The stored form of an email address: trimmed and lower-cased (emails compare so)."""
    email = text.strip().lower()
    if not valid_email(email):
        raise InvalidDetailsError(f"{text.strip()!r} is not an email address like name@example.com")
    return email


def normalise_name(text: str) -> str:
    """A display name: trimmed, 1 to 128 printable characters."""
    name = text.strip()
    if not name:
        raise InvalidDetailsError("the name is empty")
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidDetailsError(
            f"the name must be at most {MAX_NAME_LENGTH} printable characters"
        )
    return name


def check_password(password: str) -> None:
    """Refuse passwords shorter than 8 or longer than 1024 characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidDetailsError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidDetailsError(
            f"the password must have at most {MAX_PASSWORD_LENGTH} characters"
        )


def normalise_ipn_url(text: str) -> str:
    """An ``http(s)://host/…`` URL for instant payment notifications."""
    url = text.strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or len(url) > MAX_URL_LENGTH:
        raise InvalidDetailsError(f"{url!r} is not an http:// or https:// URL")
    return url


# -- cards -------------------------------------------------------------------------------


def digits_only(text: str) -> str:
    """Remove the spaces and hyphens people type inside card and account numbers."""
    return text.replace(" ", "").replace("-", "")


def luhn_ok(number: str) -> bool:
    """The Luhn (mod 10) check of a card number of 12 to 19 digits."""
    if not (12 <= len(number) <= 19) or not number.isascii() or not number.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_brand(number: str) -> CardBrand | None:
    """The network of a card number, from its prefix and length; ``None`` if not recognised."""
    length = len(number)
    if number.startswith("4") and length in {13, 16, 19}:
        return CardBrand.visa
    if length == 16 and (51 <= int(number[:2]) <= 55 or 2221 <= int(number[:4]) <= 2720):
        return CardBrand.mastercard
    if length == 15 and number[:2] in {"34", "37"}:
        return CardBrand.amex
    if 16 <= length <= 19 and _discover_prefix(number):
        return CardBrand.discover
    return None


def _discover_prefix(number: str) -> bool:
    return (
        number.startswith(("6011", "65"))
        or 644 <= int(number[:3]) <= 649
        or 622126 <= int(number[:6]) <= 622925
    )


_EXPIRY_RE: Final = re.compile(r"\A\s*([0-9]{1,2})\s*/\s*([0-9]{4}|[0-9]{2})\s*\Z")


def parse_expiry(text: str) -> tuple[int, int]:
    """``"MM/YYYY"`` (or ``"MM/YY"``) → ``(month, year)``; the month is checked, not the date."""
    match = _EXPIRY_RE.match(text)
    if match is None:
        raise InvalidDetailsError(f"expiry {text!r} must look like MM/YYYY, e.g. 12/2030")
    month, year = int(match.group(1)), int(match.group(2))
    if len(match.group(2)) == 2:
        year += 2000
    if not 1 <= month <= 12:
        raise InvalidDetailsError(f"expiry month {month} is not 1 to 12")
    return month, year


def year_month(now_us: int) -> tuple[int, int]:
    """The UTC ``(year, month)`` of a time in microseconds since the epoch."""
    moment = to_datetime(now_us)
    return moment.year, moment.month


def card_expired(exp_month: int, exp_year: int, now_us: int) -> bool:
    """A card is valid through the last day of its expiry month (UTC)."""
    return (exp_year, exp_month) < year_month(now_us)


def check_expiry(exp_month: int, exp_year: int, now_us: int) -> None:
    """Refuse a month out of range, a past expiry, or one absurdly far ahead."""
    if not 1 <= exp_month <= 12:
        raise InvalidDetailsError(f"expiry month {exp_month} is not 1 to 12")
    if card_expired(exp_month, exp_year, now_us):
        raise InvalidDetailsError(f"the card expired at the end of {exp_month:02d}/{exp_year}")
    if exp_year > year_month(now_us)[0] + MAX_EXPIRY_YEARS_AHEAD:
        raise InvalidDetailsError(f"expiry year {exp_year} is too far in the future")


def check_card_number(text: str) -> tuple[str, CardBrand]:
    """Normalise a card number and return it with its brand, or refuse it."""
    number = digits_only(text)
    if not number.isascii() or not number.isdigit():
        raise InvalidDetailsError("a card number has digits only (spaces and hyphens are ignored)")
    if not 12 <= len(number) <= 19:
        raise InvalidDetailsError("a card number has 12 to 19 digits")
    if not luhn_ok(number):
        raise InvalidDetailsError(
            f"card number ending {number[-4:]} fails the Luhn check (a typo?)"
        )
    brand = card_brand(number)
    if brand is None:
        raise InvalidDetailsError(
            f"card number ending {number[-4:]} is not a Visa, Mastercard, "
            "American Express or Discover number"
        )
    return number, brand


# -- bank accounts -----------------------------------------------------------------------


def routing_ok(routing: str) -> bool:
    """The ABA checksum of a 9-digit US routing number: 3·7·1 weights, sum divisible by 10."""
    if len(routing) != 9 or not routing.isascii() or not routing.isdigit():
        return False
    digits = [int(c) for c in routing]
    weights = (3, 7, 1) * 3
    return sum(d * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def check_bank_account(routing_text: str, account_text: str) -> tuple[str, str]:
    """Normalise and check a routing number and an account number (4 to 17 digits)."""
    routing, account = digits_only(routing_text), digits_only(account_text)
    if not routing_ok(routing):
        raise InvalidDetailsError(
            f"routing number {routing_text.strip()!r} is not 9 digits with a valid ABA checksum"
            f" (the sandbox one is {SANDBOX_ROUTING_NUMBER})"
        )
    if not (4 <= len(account) <= 17) or not account.isascii() or not account.isdigit():
        raise InvalidDetailsError("a bank account number has 4 to 17 digits")
    return routing, account
