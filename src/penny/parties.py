"""The directory: opening accounts, API keys and payment methods, durably.

:class:`Directory` is the service the CLI, the hosted pages and request-signing verification
use. It validates with the pure rules of :mod:`penny.domain.parties`, keeps secrets with
:mod:`penny.security` and stores through :mod:`penny.storage.parties_sql`. Opening an account
and its ledger accounts is one transaction (through :meth:`Ledger.run`), so a refused account
leaves no stray ledger account behind.

User errors raise :class:`~penny.domain.parties.DirectoryError` subclasses (re-exported here);
lookups that may simply find nothing return ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from penny.clock import Clock
from penny.domain.parties import (
    ApiKey,
    ApiKeyWithSecret,
    CardBehaviour,
    DirectoryError,
    DuplicateEmailError,
    DuplicatePaymentMethodError,
    InvalidDetailsError,
    Party,
    PartyKind,
    PaymentMethod,
    PaymentMethodKind,
    UnknownAccountError,
    UnknownKeyError,
    WrongAccountKindError,
    bank_behaviour,
    card_behaviour,
    check_bank_account,
    check_card_number,
    check_expiry,
    check_password,
    new_access_key_id,
    new_party_id,
    new_payment_method_id,
    normalise_email,
    normalise_ipn_url,
    normalise_name,
)
from penny.engine.ledger import Ledger, LedgerSession
from penny.ledger.model import AccountFlags, AccountSpec
from penny.security import (
    ServerKey,
    hash_password,
    new_secret_key,
    password_needs_rehash,
    verify_password,
)
from penny.storage import parties_sql as sql
from penny.storage.database import Database

__all__ = [
    "Directory",
    "DirectoryError",
    "DuplicateEmailError",
    "DuplicatePaymentMethodError",
    "InvalidDetailsError",
    "UnknownAccountError",
    "UnknownKeyError",
    "WrongAccountKindError",
]

#: The currency of every party's ledger accounts (Penny's FPS is US-only, like FPS was).
PARTY_CURRENCY = "USD"

#: Ledger accounts of a business: payable (cannot go negative), prepaid issued, credit extended.
BUSINESS_ACCOUNTS = (
    AccountSpec(PARTY_CURRENCY, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
    AccountSpec(PARTY_CURRENCY),
    AccountSpec(PARTY_CURRENCY),
)
#: The ledger account of a person: their Penny balance (cannot go negative).
PERSONAL_ACCOUNTS = (AccountSpec(PARTY_CURRENCY, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),)


class Directory:
    """Accounts, API keys and payment methods over one store. Thread-safe."""

    def __init__(
        self, database: Database, ledger: Ledger, clock: Clock, server_key: ServerKey
    ) -> None:
        self.database = database
        self.ledger = ledger
        self.clock = clock
        self.server_key = server_key
        self._dummy_hash: str | None = None

    # -- opening accounts ----------------------------------------------------------------

    def create_business(self, name: str, email: str) -> tuple[Party, ApiKeyWithSecret]:
        """Open a merchant account with its three ledger accounts and a first API key."""
        name, email = normalise_name(name), normalise_email(email)
        now = self.clock.now_us()

        def work(session: LedgerSession) -> tuple[Party, ApiKeyWithSecret]:
            _refuse_taken(session.conn, email)
            payable, prepaid, credit = _open_ledger_accounts(session, BUSINESS_ACCOUNTS)
            party = Party(
                new_party_id(),
                PartyKind.business,
                name,
                email,
                now,
                payable_account_id=payable,
                prepaid_issued_account_id=prepaid,
                credit_extended_account_id=credit,
            )
            sql.insert_party(session.conn, party, None)
            return party, self._insert_key(session.conn, party.id, now)

        return self.ledger.run(work)

    def create_personal(self, name: str, email: str, password: str) -> Party:
        """Open a buyer account with its balance (ledger account and payment method)."""
        name, email = normalise_name(name), normalise_email(email)
        check_password(password)
        password_hash = hash_password(password)  # slow on purpose: not inside the transaction
        now = self.clock.now_us()

        def work(session: LedgerSession) -> Party:
            _refuse_taken(session.conn, email)
            (balance,) = _open_ledger_accounts(session, PERSONAL_ACCOUNTS)
            party = Party(
                new_party_id(), PartyKind.personal, name, email, now, balance_account_id=balance
            )
            sql.insert_party(session.conn, party, password_hash)
            sql.insert_payment_method(session.conn, _balance_method(party.id, now))
            return party

        return self.ledger.run(work)

    def authenticate_buyer(self, email: str, password: str) -> Party | None:
        """The personal account with this email and password, or ``None``.

        An unknown email costs as much time as a wrong password, so timing tells nothing.
        """
        try:
            email = normalise_email(email)
        except InvalidDetailsError:
            return None
        with self.database.read() as conn:
            found = sql.password_hash_by_email(conn, email)
        party_id, password_hash = found if found is not None else ("", None)
        if password_hash is None:
            verify_password(self._dummy(), password)
            return None
        if not verify_password(password_hash, password):
            return None
        if password_needs_rehash(password_hash):
            with self.database.write() as conn:
                sql.set_password_hash(conn, party_id, hash_password(password))
        return self.party(party_id)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = hash_password("not a password of anyone")
        return self._dummy_hash

    # -- looking up ----------------------------------------------------------------------

    def party(self, party_id: str) -> Party | None:
        with self.database.read() as conn:
            return sql.party(conn, party_id)

    def party_by_email(self, email: str) -> Party | None:
        with self.database.read() as conn:
            return sql.party_with_email(conn, email)

    def find(self, id_or_email: str) -> Party | None:
        """A party by id, or by email when the text has an ``@``."""
        if "@" in id_or_email:
            return self.party_by_email(id_or_email)
        return self.party(id_or_email.strip())

    def set_ipn_url(self, party_id: str, url: str | None) -> Party:
        """Set (or, with ``None``, clear) where a business receives payment notifications."""
        url = None if url is None else normalise_ipn_url(url)
        with self.database.write() as conn:
            _require(conn, party_id, PartyKind.business)
            sql.set_ipn_url(conn, party_id, url)
            party = sql.party(conn, party_id)
        assert party is not None
        return party

    # -- API keys ------------------------------------------------------------------------

    def create_key(self, party_id: str) -> ApiKeyWithSecret:
        """A new API key for a business; its secret is returned now and never again."""
        now = self.clock.now_us()
        with self.database.write() as conn:
            _require(conn, party_id, PartyKind.business)
            return self._insert_key(conn, party_id, now)

    def list_keys(self, party_id: str) -> list[ApiKey]:
        """A business's keys, oldest first, revoked ones included (never their secrets)."""
        with self.database.read() as conn:
            _require(conn, party_id, PartyKind.business)
            return sql.api_keys_of(conn, party_id)

    def revoke_key(self, access_key_id: str) -> ApiKey:
        """Revoke a key for good (revoking it again changes nothing)."""
        now = self.clock.now_us()
        with self.database.write() as conn:
            if sql.api_key(conn, access_key_id) is None:
                raise UnknownKeyError(f"no API key has the access key id {access_key_id!r}")
            sql.revoke_api_key(conn, access_key_id, now)
            key = sql.api_key(conn, access_key_id)
        assert key is not None
        return key

    def api_key(self, access_key_id: str) -> ApiKey | None:
        """The key (and so the caller's account id), revoked or not."""
        with self.database.read() as conn:
            return sql.api_key(conn, access_key_id)

    def secret_for(self, access_key_id: str) -> str | None:
        """The clear secret of an active key, for verifying a request's signature.

        ``None`` for an unknown or revoked key. Raises
        :class:`~penny.security.ServerKeyError` when the stored secret does not decrypt (the
        server key changed): a configuration error, not a bad request.
        """
        found = self.active_keys([access_key_id]).get(access_key_id)
        return None if found is None else self.decrypt_secret(found[0], access_key_id)

    def active_keys(self, access_key_ids: Iterable[str]) -> dict[str, tuple[bytes, str]]:
        """Access key id → (encrypted secret, owner) of those keys that are active, in one
        read; :meth:`decrypt_secret` opens a secret."""
        with self.database.read() as conn:
            return sql.active_keys(conn, access_key_ids)

    def decrypt_secret(self, ciphertext: bytes, access_key_id: str) -> str:
        """The clear secret sealed in ``ciphertext`` (see :meth:`secret_for`)."""
        return self.server_key.decrypt_secret(ciphertext, access_key_id)

    def _insert_key(self, conn: Connection, party_id: str, now: int) -> ApiKeyWithSecret:
        key = ApiKey(new_access_key_id(), party_id, now)
        secret = new_secret_key()
        ciphertext = self.server_key.encrypt_secret(secret, key.access_key_id)
        sql.insert_api_key(conn, key, ciphertext)
        return ApiKeyWithSecret(key, secret)

    # -- payment methods -----------------------------------------------------------------

    def add_card(
        self,
        party_id: str,
        number: str,
        exp_month: int,
        exp_year: int,
        holder_name: str | None = None,
    ) -> PaymentMethod:
        """Add a sandbox credit card to a buyer; only its last four digits are kept."""
        now = self.clock.now_us()
        digits, brand = check_card_number(number)
        check_expiry(exp_month, exp_year, now)
        method = PaymentMethod(
            new_payment_method_id(),
            party_id,
            PaymentMethodKind.card,
            card_behaviour(digits),
            now,
            brand=brand,
            last4=digits[-4:],
            exp_month=exp_month,
            exp_year=exp_year,
            fingerprint=self.server_key.fingerprint("card", digits),
            holder_name=None if holder_name is None else normalise_name(holder_name),
        )
        return self._add_method(method, f"card ending {digits[-4:]}")

    def add_bank(self, party_id: str, routing: str, account_number: str) -> PaymentMethod:
        """Add a sandbox bank account to a buyer; only last four digits are kept."""
        routing, account = check_bank_account(routing, account_number)
        now = self.clock.now_us()
        method = PaymentMethod(
            new_payment_method_id(),
            party_id,
            PaymentMethodKind.bank,
            bank_behaviour(account),
            now,
            last4=account[-4:],
            fingerprint=self.server_key.fingerprint("bank", f"{routing}:{account}"),
            routing_last4=routing[-4:],
        )
        return self._add_method(method, f"bank account ending {account[-4:]}")

    def _add_method(self, method: PaymentMethod, what: str) -> PaymentMethod:
        assert method.fingerprint is not None
        with self.database.write() as conn:
            _require(conn, method.party_id, PartyKind.personal)
            existing = sql.payment_method_by_fingerprint(conn, method.party_id, method.fingerprint)
            if existing is not None:
                raise DuplicatePaymentMethodError(
                    f"the {what} is already on account {method.party_id} as {existing.id}"
                )
            sql.insert_payment_method(conn, method)
        return method

    def payment_methods(self, party_id: str) -> list[PaymentMethod]:
        """A party's payment methods, oldest first (a buyer's balance is always the first)."""
        with self.database.read() as conn:
            _require(conn, party_id, None)
            return sql.payment_methods_of(conn, party_id)


# -- helpers -----------------------------------------------------------------------------


def _refuse_taken(conn: Connection, email: str) -> None:
    if sql.email_taken(conn, email):
        raise DuplicateEmailError(f"an account with the email {email} already exists")


def _open_ledger_accounts(session: LedgerSession, specs: tuple[AccountSpec, ...]) -> list[int]:
    return session.sql.create_accounts(session.conn, list(specs), session.now)


def _balance_method(party_id: str, now: int) -> PaymentMethod:
    return PaymentMethod(
        new_payment_method_id(), party_id, PaymentMethodKind.balance, CardBehaviour.succeed, now
    )


def _require(conn: Connection, party_id: str, kind: PartyKind | None) -> Party:
    party = sql.party(conn, party_id)
    if party is None:
        raise UnknownAccountError(f"no account has the id {party_id!r}")
    if kind is not None and party.kind is not kind:
        raise WrongAccountKindError(_wrong_kind_message(party, kind))
    return party


def _wrong_kind_message(party: Party, wanted: PartyKind) -> str:
    if wanted is PartyKind.business:
        return f"account {party.id} is a personal account; API keys belong to business accounts"
    return (
        f"account {party.id} is a business account; payment methods belong to personal "
        "(buyer) accounts"
    )
