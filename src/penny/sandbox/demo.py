"""The demo data of the quick start (``penny sandbox seed``).

:func:`seed_demo` creates the merchant "DigitalDownload" with an API key, and a buyer with a
test card and a bank account; on a store that has them already it creates nothing and says
what is there (:class:`Seeded` with ``key`` ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass

from penny.domain.parties import ApiKeyWithSecret, DuplicateEmailError, Party, PaymentMethod
from penny.parties import Directory

__all__ = [
    "SEED_BUYER_EMAIL",
    "SEED_BUYER_PASSWORD",
    "SEED_MERCHANT_EMAIL",
    "SEED_MERCHANT_NAME",
    "Seeded",
    "seed_demo",
]

SEED_MERCHANT_NAME = "DigitalDownload"
SEED_MERCHANT_EMAIL = "merchant@digitaldownload.example"
SEED_BUYER_NAME = "Sandbox Buyer"
SEED_BUYER_EMAIL = "buyer@example.com"
SEED_BUYER_PASSWORD = "sandbox-password"  # noqa: S105 (a documented sandbox demo password)
SEED_CARD = ("4111111111111111", 12, 2035)
SEED_BANK = ("110000000", "000123456789")


@dataclass(frozen=True)
class Seeded:
    """What the demo holds: all of it when just made; when it was there already, ``key``,
    ``card`` and ``bank`` are ``None`` (and ``buyer`` may be)."""

    merchant: Party
    buyer: Party | None
    key: ApiKeyWithSecret | None = None
    card: PaymentMethod | None = None
    bank: PaymentMethod | None = None


def seed_demo(directory: Directory) -> Seeded:
    """Create the demo merchant and buyer, unless the merchant exists already."""
    try:
        merchant, key = directory.create_business(SEED_MERCHANT_NAME, SEED_MERCHANT_EMAIL)
    except DuplicateEmailError:
        existing = directory.party_by_email(SEED_MERCHANT_EMAIL)
        assert existing is not None
        return Seeded(existing, directory.party_by_email(SEED_BUYER_EMAIL))
    buyer = directory.create_personal(SEED_BUYER_NAME, SEED_BUYER_EMAIL, SEED_BUYER_PASSWORD)
    card = directory.add_card(buyer.id, *SEED_CARD)
    bank = directory.add_bank(buyer.id, *SEED_BANK)
    return Seeded(merchant, buyer, key, card, bank)
