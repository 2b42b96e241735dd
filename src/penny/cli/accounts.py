"""``penny accounts …`` and ``penny keys …``: parties, payment methods and API keys.

Two Typer sub-apps, registered by :mod:`penny.cli.main` (import that module, not this one, to
get the whole command line). Every command takes ``--database URL`` and, where it prints
something structured, ``--json``. User errors (an unknown account, a bad card number, a
duplicate email) print one line, ``error: …``, on stderr and exit with status 2. Secrets are
printed once, when a key is created, and never again; card and bank numbers never.
See docs/cli.md.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated, Any

import typer

from penny.api.auth import bearer_secret, live_from_env
from penny.cli.base import penny_typer
from penny.cli.common import DatabaseOption, JsonOption, emit, ensure_server_key, fail
from penny.cli.common import open_store as _database
from penny.domain.errors import PaymentsError
from penny.domain.parties import (
    ApiKey,
    ApiKeyWithSecret,
    DirectoryError,
    Party,
    PartyKind,
    PaymentMethod,
    UnknownAccountError,
    parse_expiry,
)
from penny.engine.ledger import Ledger
from penny.epoch import to_datetime
from penny.money import Money, MoneyError, parse_positive_amount
from penny.parties import Directory
from penny.security import ServerKeyError, load_server_key
from penny.services.factory import Services, build_services
from penny.services.payments import WithdrawRequest

accounts_app: typer.Typer = penny_typer(
    "Business (merchant) and personal (buyer) accounts and their payment methods."
)
keys_app: typer.Typer = penny_typer("API keys of business accounts.")

PASSWORD_ENV = "PENNY_PASSWORD"  # noqa: S105 (the name of a variable, not a password)

AccountOption = Annotated[
    str | None,
    typer.Option(
        "--account", "-a", metavar="ID|EMAIL", help="Account id (or email).", show_default=False
    ),
]
EmailLookupOption = Annotated[
    str | None,
    typer.Option(
        "--email",
        "-e",
        metavar="EMAIL",
        help="The account's email, instead of --account.",
        show_default=False,
    ),
]

#: Which side of each ledger account is its "normal" balance (docs/decisions.md, chart).
_CREDIT_NORMAL = {
    "payable": True,
    "prepaid_issued": False,
    "credit_extended": True,
    "balance": True,
}


# -- plumbing ----------------------------------------------------------------------------


@contextmanager
def open_services(url: str | None, *, create: bool = False) -> Iterator[Services]:
    """The services over the store at ``url`` (:func:`penny.services.factory.build_services`,
    on sandbox time shared with every Penny process); their user errors become one-line
    errors. A missing store (and its server key) is made only with ``create``."""
    with _database(url, create=create) as database:
        if create:
            ensure_server_key(database)
        try:
            server_key = load_server_key(database.url, create=False)
        except ServerKeyError as exc:
            raise fail(str(exc)) from None
        try:
            yield build_services(database, server_key=server_key)
        except (DirectoryError, PaymentsError) as exc:
            raise fail(str(exc)) from None


@contextmanager
def open_directory(url: str | None, *, create: bool = False) -> Iterator[Directory]:
    """The :class:`Directory` of :func:`open_services`."""
    with open_services(url, create=create) as services:
        yield services.directory


def _account_id(directory: Directory, account: str | None, email: str | None = None) -> str:
    """Resolve ``--account ID|EMAIL`` or ``--email EMAIL`` (exactly one) to an account id."""
    if (account is None) == (email is None):
        raise fail("name the account with exactly one of --account ID or --email EMAIL")
    wanted = account if account is not None else email
    assert wanted is not None
    party = directory.find(wanted)
    if party is None:
        raise UnknownAccountError(f"no account has the id or email {wanted!r}")
    return party.id


def _when(micros: int | None) -> str:
    if micros is None:
        return "-"
    return to_datetime(micros).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- JSON shapes -------------------------------------------------------------------------


def party_json(party: Party) -> dict[str, Any]:
    """An account as JSON (``accounts show``; ``accounts list`` drops the ledger accounts)."""
    return {
        "id": party.id,
        "kind": party.kind.value,
        "name": party.name,
        "email": party.email,
        "created_at": party.created_at,
        "ipn_url": party.ipn_url,
        "ledger_accounts": party.ledger_accounts,
    }


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "access_key_id": key.access_key_id,
        "active": key.active,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def _method_json(method: PaymentMethod) -> dict[str, Any]:
    return {
        "id": method.id,
        "kind": method.kind.value,
        "description": method.describe(),
        "brand": None if method.brand is None else method.brand.value,
        "last4": method.last4,
        "exp_month": method.exp_month,
        "exp_year": method.exp_year,
        "routing_last4": method.routing_last4,
        "sandbox_behaviour": method.behaviour.value,
    }


def _method_line(method: PaymentMethod) -> str:
    return f"  {method.id}  {method.kind.value:<7}  {method.describe()}  [{method.behaviour.value}]"


def _key_lines(key: ApiKeyWithSecret) -> list[str]:
    return [
        f"access key id: {key.access_key_id}",
        f"secret key:    {key.secret}",
        "The secret key is shown only now: store it safely (Penny keeps it encrypted).",
        f"JSON API:      Authorization: Bearer {_bearer(key)}",
    ]


def _bearer(key: ApiKeyWithSecret) -> str:
    """The key pair as the JSON API's bearer secret, for this server's mode (PENNY_MODE)."""
    return bearer_secret(key.access_key_id, key.secret, live=live_from_env())


# -- accounts ----------------------------------------------------------------------------


@accounts_app.command("create-business")
def create_business(
    name: Annotated[str, typer.Option(metavar="NAME", help="The business's name.")],
    email: Annotated[str, typer.Option(metavar="EMAIL", help="Contact email (unique).")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a merchant account (FPS recipient and caller) with its first API key."""
    with open_directory(database) as directory:
        party, key = directory.create_business(name, email)
    data = party_json(party) | {
        "access_key_id": key.access_key_id,
        "secret_key": key.secret,
        "bearer_secret": _bearer(key),
    }
    lines = [f"business account {party.id}: {party.name} <{party.email}>", *_key_lines(key)]
    emit(as_json, data, lines)


@accounts_app.command("create-personal")
def create_personal(
    name: Annotated[str, typer.Option(metavar="NAME", help="The buyer's name.")],
    email: Annotated[str, typer.Option(metavar="EMAIL", help="Sign-in email (unique).")],
    password: Annotated[
        str | None,
        typer.Option(
            metavar="PASSWORD",
            envvar=PASSWORD_ENV,
            help="Sign-in password (at least 8 characters). Prefer --password-stdin or "
            f"${PASSWORD_ENV}: a command line is visible to other users and kept in history.",
            show_default=False,
        ),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
    ] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a buyer account (FPS sender) that signs in with email and password."""
    secret = _password(password, password_stdin)
    with open_directory(database) as directory:
        party = directory.create_personal(name, email, secret)
        methods = directory.payment_methods(party.id)
    data = party_json(party) | {"payment_methods": [_method_json(m) for m in methods]}
    lines = [f"personal account {party.id}: {party.name} <{party.email}>"]
    lines += ["payment methods:", *(_method_line(m) for m in methods)]
    emit(as_json, data, lines)


def _password(given: str | None, from_stdin: bool) -> str:
    if from_stdin and given is not None:
        raise fail(f"give the password one way: --password-stdin, ${PASSWORD_ENV} or --password")
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if given is None:
        raise fail(f"a password is needed: use --password-stdin, ${PASSWORD_ENV} or --password")
    return given


@accounts_app.command("add-card")
def add_card(
    number: Annotated[
        str,
        typer.Option(
            "--number",
            metavar="NUMBER",
            help="Card number (sandbox test numbers: docs/sandbox.md).",
        ),
    ],
    exp: Annotated[
        str, typer.Option("--exp", metavar="MM/YYYY", help="Expiry month and year, MM/YYYY.")
    ],
    account: AccountOption = None,
    email: EmailLookupOption = None,
    holder: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Name on the card.", show_default=False),
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a sandbox credit card to a personal account (only its last four digits are kept)."""
    with open_directory(database) as directory:
        party_id = _account_id(directory, account, email)
        month, year = parse_expiry(exp)
        method = directory.add_card(party_id, number, month, year, holder)
    emit(as_json, _method_json(method), [_method_line(method).strip()])


@accounts_app.command("add-bank")
def add_bank(
    routing: Annotated[
        str, typer.Option("--routing", metavar="NUMBER", help="9-digit ABA routing number.")
    ],
    number: Annotated[
        str,
        typer.Option("--number", metavar="NUMBER", help="Bank account number (4 to 17 digits)."),
    ],
    account: AccountOption = None,
    email: EmailLookupOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a sandbox bank account to a personal account (only its last four digits are kept)."""
    with open_directory(database) as directory:
        party_id = _account_id(directory, account, email)
        method = directory.add_bank(party_id, routing, number)
    emit(as_json, _method_json(method), [_method_line(method).strip()])


@accounts_app.command("withdraw")
def withdraw(
    amount: Annotated[
        str, typer.Option("--amount", metavar="AMOUNT", help="How much, e.g. 25.00 (USD).")
    ],
    reference: Annotated[
        str,
        typer.Option(
            "--reference", metavar="REFERENCE", help="Your unique reference for this withdrawal."
        ),
    ],
    account: AccountOption = None,
    email: EmailLookupOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Withdraw from a merchant's payments balance to its bank (sandbox: arrives in 4 days;
    the money is held as pending out until then)."""
    try:
        money = parse_positive_amount(amount, "USD")
    except MoneyError as exc:
        raise fail(f"--amount: {exc}") from None
    with open_services(database) as services:
        party_id = _account_id(services.directory, account, email)
        try:
            txn = services.payments.execute(WithdrawRequest(party_id, reference, money))
        except PaymentsError as exc:
            raise fail(exc.detail) from None
    data = {
        "transaction_id": txn.id,
        "status": txn.status.value,
        "amount": money.plain(),
        "completes_at": _when(txn.completes_at),
    }
    emit(
        as_json,
        data,
        [f"withdrawal {txn.id}: {money} {txn.status.value}, arrives {_when(txn.completes_at)}"],
    )


@accounts_app.command("show")
def show(
    target: Annotated[str, typer.Argument(metavar="ID|EMAIL", help="Account id or email.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """An account: its details, API key ids, payment methods and ledger balances."""
    with open_directory(database) as directory:
        party = directory.find(target)
        if party is None:
            raise fail(f"no account has the id or email {target!r}")
        business = party.kind is PartyKind.business
        keys = directory.list_keys(party.id) if business else []
        methods = [] if business else directory.payment_methods(party.id)
        balances = _balances(directory.ledger, party)
    data = {
        "account": party_json(party),
        "api_keys": [_key_json(k) for k in keys],
        "payment_methods": [_method_json(m) for m in methods],
        "balances": balances,
    }
    emit(as_json, data, _show_lines(party, keys, methods, balances))


def _balances(ledger: Ledger, party: Party) -> dict[str, dict[str, Any]]:
    """Each ledger account's counters and its balance on its normal side, in USD."""
    result: dict[str, dict[str, Any]] = {}
    for role, account_id in party.ledger_accounts.items():
        balance = ledger.balance(account_id)
        assert balance is not None, f"ledger account {account_id} of {party.id} is missing"
        credit_normal = _CREDIT_NORMAL[role]
        posted = balance.net_credit_posted if credit_normal else balance.net_debit_posted
        pending_in, pending_out = balance.credits_pending, balance.debits_pending
        if not credit_normal:
            pending_in, pending_out = pending_out, pending_in
        result[role] = {
            "ledger_account_id": account_id,
            "currency": "USD",
            "balance": Money(posted, "USD").plain(),
            "pending_in": Money(pending_in, "USD").plain(),
            "pending_out": Money(pending_out, "USD").plain(),
        } | asdict(balance)
    return result


def _show_lines(
    party: Party,
    keys: list[ApiKey],
    methods: list[PaymentMethod],
    balances: dict[str, dict[str, Any]],
) -> list[str]:
    lines = [
        f"{party.kind.value} account {party.id}: {party.name} <{party.email}>",
        f"created {_when(party.created_at)}",
    ]
    if party.kind is PartyKind.business:
        lines.append(f"IPN URL: {party.ipn_url or '-'}")
        lines.append("API keys:")
        lines += [_key_line(k) for k in keys] or ["  (none)"]
    else:
        lines.append("payment methods:")
        lines += [_method_line(m) for m in methods]
    lines.append("balances:")
    for role, entry in balances.items():
        lines.append(
            f"  {role:<16} USD {entry['balance']:>12}  (pending in {entry['pending_in']}, "
            f"out {entry['pending_out']}; ledger account {entry['ledger_account_id']})"
        )
    return lines


def _key_line(key: ApiKey) -> str:
    state = "active" if key.active else f"revoked {_when(key.revoked_at)}"
    return f"  {key.access_key_id}  created {_when(key.created_at)}  {state}"


# -- keys --------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    account: AccountOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create another API key for a business account; prints its secret, once."""
    with open_directory(database) as directory:
        key = directory.create_key(_account_id(directory, account))
    data = _key_json(key.key) | {"secret_key": key.secret, "bearer_secret": _bearer(key)}
    emit(as_json, data, _key_lines(key))


@keys_app.command("list")
def keys_list(
    account: AccountOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """A business account's API keys (ids and state only: secrets are never shown again)."""
    with open_directory(database) as directory:
        party_id = _account_id(directory, account)
        keys = directory.list_keys(party_id)
    data = {"account_id": party_id, "api_keys": [_key_json(k) for k in keys]}
    emit(as_json, data, [_key_line(k).strip() for k in keys] or ["(no keys)"])


@keys_app.command("revoke")
def keys_revoke(
    access_key_id: Annotated[str, typer.Argument(metavar="KEYID", help="Access key id.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke an API key: requests signed with it are refused from now on."""
    with open_directory(database) as directory:
        key = directory.revoke_key(access_key_id)
    emit(as_json, _key_json(key), [f"revoked {key.access_key_id} at {_when(key.revoked_at)}"])
