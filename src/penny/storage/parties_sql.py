"""SQL for parties, API keys and payment methods (tables made by migration 0002).

Rows become the immutable dataclasses of :mod:`penny.domain.parties` and back. Every function
takes the connection of a transaction the caller opened; nothing here commits. Secrets arrive
already encrypted and card numbers never arrive at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sqlalchemy import (
    Connection,
    case,
    delete,
    insert,
    select,
    update,
)

from penny.domain.parties import (
    ApiKey,
    CardBehaviour,
    CardBrand,
    InvalidDetailsError,
    Party,
    PartyKind,
    PaymentMethod,
    PaymentMethodKind,
    normalise_email,
)
from penny.storage import driver, schema
from penny.storage.records import Stored

parties = schema.parties
api_keys = schema.api_keys
payment_methods = schema.payment_methods

_PARTY_COLUMNS = [c for c in parties.c if c.name != "password_hash"]
_KEY_COLUMNS = [c for c in api_keys.c if c.name != "secret_ciphertext"]
_PARTY_NAMES = tuple(c.name for c in _PARTY_COLUMNS)
_METHOD_NAMES = tuple(c.name for c in payment_methods.c)


# -- conversions -------------------------------------------------------------------------


_PARTY: Final = Stored(Party, enums={"kind": PartyKind})
_METHOD: Final = Stored(
    PaymentMethod,
    enums={"kind": PaymentMethodKind, "behaviour": CardBehaviour, "brand": CardBrand},
)


# -- parties -----------------------------------------------------------------------------


def insert_party(conn: Connection, party: Party, password_hash: str | None) -> None:
    conn.execute(insert(parties), [_PARTY.row(party) | {"password_hash": password_hash}])


def party(conn: Connection, party_id: str) -> Party | None:
    row = conn.execute(select(*_PARTY_COLUMNS).where(parties.c.id == party_id)).mappings().first()
    return None if row is None else _PARTY.record(row)


def load_parties(conn: Connection, ids: Iterable[str]) -> dict[str, Party]:
    """The parties with these ids (unknown ids are simply absent)."""
    return driver.records_by_id(conn, "parties", _PARTY_NAMES, ids, _PARTY.record)


def list_parties(conn: Connection, kind: PartyKind | None, limit: int) -> list[Party]:
    """Accounts, oldest first (for the operator's ``penny accounts list``)."""
    query = select(*_PARTY_COLUMNS)
    if kind is not None:
        query = query.where(parties.c.kind == kind.value)
    rows = conn.execute(query.order_by(parties.c.created_at, parties.c.id).limit(limit))
    return [_PARTY.record(row) for row in rows.mappings()]


def party_by_email(conn: Connection, email: str) -> Party | None:
    """The party with this (already normalised) email."""
    query = select(*_PARTY_COLUMNS).where(parties.c.email == email)
    row = conn.execute(query).mappings().first()
    return None if row is None else _PARTY.record(row)


def party_with_email(conn: Connection, text: str) -> Party | None:
    """The party with this email as a person types it (any case, spaces around); None when
    there is none, or when the text is not an email at all."""
    try:
        email = normalise_email(text)
    except InvalidDetailsError:
        return None
    return party_by_email(conn, email)


def email_taken(conn: Connection, email: str) -> bool:
    return conn.execute(select(parties.c.id).where(parties.c.email == email)).first() is not None


def password_hash_by_email(conn: Connection, email: str) -> tuple[str, str | None] | None:
    """``(party id, password hash)`` of the party with this email."""
    query = select(parties.c.id, parties.c.password_hash).where(parties.c.email == email)
    row = conn.execute(query).first()
    return None if row is None else (str(row[0]), row[1])


def set_password_hash(conn: Connection, party_id: str, password_hash: str) -> None:
    query = update(parties).where(parties.c.id == party_id).values(password_hash=password_hash)
    conn.execute(query)


def set_ipn_url(conn: Connection, party_id: str, url: str | None) -> bool:
    """Set (or clear) a party's IPN URL; false when there is no such party."""
    query = update(parties).where(parties.c.id == party_id).values(ipn_url=url)
    return conn.execute(query).rowcount == 1


# -- API keys ----------------------------------------------------------------------------


def insert_api_key(conn: Connection, key: ApiKey, secret_ciphertext: bytes) -> None:
    row = {c.name: getattr(key, c.name) for c in _KEY_COLUMNS}
    conn.execute(insert(api_keys), [row | {"secret_ciphertext": secret_ciphertext}])


def api_key(conn: Connection, access_key_id: str) -> ApiKey | None:
    query = select(*_KEY_COLUMNS).where(api_keys.c.access_key_id == access_key_id)
    row = conn.execute(query).mappings().first()
    return None if row is None else ApiKey(**row)


def api_keys_of(conn: Connection, party_id: str) -> list[ApiKey]:
    """A party's keys, oldest first (revoked ones included)."""
    query = (
        select(*_KEY_COLUMNS)
        .where(api_keys.c.party_id == party_id)
        .order_by(api_keys.c.created_at, api_keys.c.access_key_id)
    )
    return [ApiKey(**row) for row in conn.execute(query).mappings()]


def active_keys(conn: Connection, access_key_ids: Iterable[str]) -> dict[str, tuple[bytes, str]]:
    """Access key id → (encrypted secret, owner) for those of ``access_key_ids`` not revoked."""
    wanted = sorted(set(access_key_ids))
    if not wanted:
        return {}
    columns = (api_keys.c.access_key_id, api_keys.c.secret_ciphertext, api_keys.c.party_id)
    query = select(*columns).where(
        api_keys.c.access_key_id.in_(wanted), api_keys.c.revoked_at.is_(None)
    )
    return {str(row[0]): (bytes(row[1]), str(row[2])) for row in conn.execute(query)}


def revoke_api_key(conn: Connection, access_key_id: str, now: int) -> None:
    """Mark a key revoked at ``now``; a key revoked before keeps its first revocation time."""
    query = (
        update(api_keys)
        .where(api_keys.c.access_key_id == access_key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    conn.execute(query)


# -- payment methods ---------------------------------------------------------------------


def insert_payment_method(conn: Connection, method: PaymentMethod) -> None:
    conn.execute(insert(payment_methods), [_METHOD.row(method)])


def payment_methods_of(conn: Connection, party_id: str) -> list[PaymentMethod]:
    """A party's payment methods: the balance first, then the others oldest first."""
    balance_first = case((payment_methods.c.kind == PaymentMethodKind.balance.value, 0), else_=1)
    query = (
        select(payment_methods)
        .where(payment_methods.c.party_id == party_id)
        .order_by(balance_first, payment_methods.c.created_at, payment_methods.c.id)
    )
    return [_METHOD.record(row) for row in conn.execute(query).mappings()]


def delete_payment_method(conn: Connection, method_id: str) -> None:
    """Forget a payment method (its last four digits and fingerprint; nothing refers to it by
    a foreign key: tokens and transactions keep its id or kind as history)."""
    conn.execute(delete(payment_methods).where(payment_methods.c.id == method_id))


def load_payment_methods(conn: Connection, ids: Iterable[str]) -> dict[str, PaymentMethod]:
    """Payment methods by id, in one query (for adapters charging them in a batch)."""
    return driver.records_by_id(conn, "payment_methods", _METHOD_NAMES, ids, _METHOD.record)


def payment_method_by_fingerprint(
    conn: Connection, party_id: str, fingerprint: str
) -> PaymentMethod | None:
    query = select(payment_methods).where(
        payment_methods.c.party_id == party_id, payment_methods.c.fingerprint == fingerprint
    )
    row = conn.execute(query).mappings().first()
    return None if row is None else _METHOD.record(row)
