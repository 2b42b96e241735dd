"""``penny api …``: a merchant's shell over the JSON API, through penny-client (clients/python).

* ``pay SENDER_TOKEN AMOUNT`` — charge a sender token (AMOUNT in dollars: ``1.50``);
* ``refund TRANSACTION [--amount A]`` — refund a payment, in full or in part;
* ``transactions [--operation O] [--status S] [--limit N] [--all]`` — newest first;
* ``balance [INSTRUMENT]`` — an instrument's balance or debt, or the merchant's totals;
* ``session create prepaid|postpaid --return-url URL …`` and ``session show ID`` — send a
  buyer to the hosted pages and read the outcome.

The server is ``--url`` (``$PENNY_URL``, default ``http://127.0.0.1:8080``) and the key
``--api-key`` (``$PENNY_API_KEY``: ``sk_test_…``). POSTs carry ``--idempotency-key`` or a fresh
one that the client's retries repeat. Every command takes ``--json``. Registered by
:mod:`penny.cli.main`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from penny.cli.base import penny_typer
from penny.cli.common import JsonOption, emit, fail
from penny.money import MoneyError, parse_positive_amount

if TYPE_CHECKING:
    from penny_client import Penny

api_app: typer.Typer = penny_typer("The JSON API from the shell (penny-client): pay, refund, list.")
session_app: typer.Typer = penny_typer("Authorization sessions: the hosted pages for a buyer.")
api_app.add_typer(session_app, name="session")

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="PENNY_URL", metavar="URL", help="The Penny server."),
]
KeyOption = Annotated[
    str,
    typer.Option(
        "--api-key", envvar="PENNY_API_KEY", metavar="KEY", help="Secret key (sk_test_…).",
        show_default=False,
    ),
]  # fmt: skip
IdempotencyOption = Annotated[
    str | None,
    typer.Option("--idempotency-key", metavar="KEY", help="Makes a retry of this command safe."),
]
DEFAULT_URL = "http://127.0.0.1:8080"


def _minor(text: str, name: str) -> int:
    try:
        return parse_positive_amount(text, "USD").minor
    except MoneyError as error:
        raise fail(f"{name} {text!r} is not an amount of dollars, e.g. 1.50: {error}") from None


def _dollars(amount: dict[str, Any] | None) -> str:
    if amount is None:
        return "-"
    minor = int(amount["amount"])
    return f"{amount['currency']} {minor // 100}.{minor % 100:02d}"


@contextmanager
def _client(url: str, key: str) -> Iterator[Penny]:
    """The client; a refusal or a connection failure becomes one ``error:`` line."""
    try:
        from penny_client import Penny, PennyError
    except ImportError:
        raise fail("penny-client is not installed (pip install -e clients/python)") from None
    if not key:
        raise fail("no API key: pass --api-key or set PENNY_API_KEY (sk_test_…)")
    try:
        with Penny(key, url) as penny:
            yield penny
    except PennyError as error:
        about = f" ({error.param})" if error.param else ""
        raise fail(f"{error.code}{about}: {error.message}") from None


def _transaction_line(txn: dict[str, Any]) -> str:
    return (
        f"{txn['id']}  {txn['operation']:<14} {txn['status']:<9} {_dollars(txn['amount']):>12}"
        f"  {txn['created_at']}"
    )


def _show(as_json: bool, found: Any, line: Callable[[dict[str, Any]], str]) -> None:
    emit(as_json, dict(found), [line(found)])


@api_app.command("pay")
def pay(
    sender_token: Annotated[str, typer.Argument(metavar="SENDER_TOKEN")],
    amount: Annotated[str, typer.Argument(metavar="AMOUNT", help="Dollars, e.g. 1.50.")],
    description: Annotated[
        str | None, typer.Option(metavar="WORDS", help="Shown to the merchant.")
    ] = None,
    idempotency_key: IdempotencyOption = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = "",
    as_json: JsonOption = False,
) -> None:
    """Charge a sender token (prepaid: spends its balance; postpaid: adds to its debt)."""
    minor = _minor(amount, "AMOUNT")
    with _client(url, api_key) as penny:
        paid = penny.pay(
            sender_token, minor, description=description, idempotency_key=idempotency_key
        )
    _show(as_json, paid, _transaction_line)


@api_app.command("refund")
def refund(
    transaction: Annotated[str, typer.Argument(metavar="TRANSACTION")],
    amount: Annotated[
        str | None, typer.Option(metavar="AMOUNT", help="Part of it (default: all).")
    ] = None,
    idempotency_key: IdempotencyOption = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = "",
    as_json: JsonOption = False,
) -> None:
    """Refund a payment, in full or in part."""
    minor = None if amount is None else _minor(amount, "--amount")
    with _client(url, api_key) as penny:
        done = penny.refund(transaction, minor, idempotency_key=idempotency_key)
    _show(as_json, done, _transaction_line)


@api_app.command("transactions")
def transactions(
    operation: Annotated[str | None, typer.Option(metavar="OP", help="pay, refund, …")] = None,
    status: Annotated[str | None, typer.Option(metavar="S", help="success, pending, …")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=100, metavar="N", help="How many (one page, 1–100).")
    ] = 10,
    every: Annotated[bool, typer.Option("--all", help="Every page, not just the first.")] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = "",
    as_json: JsonOption = False,
) -> None:
    """The merchant's transactions, newest first."""
    filters: dict[str, str | int | None] = {"operation": operation, "status": status}
    with _client(url, api_key) as penny:
        if every:
            found = list(penny.iter_transactions(limit=100, **filters))
        else:
            found = penny.list_transactions(limit=limit, **filters)["data"]
    rows = [dict(txn) for txn in found]
    emit(as_json, {"data": rows}, [_transaction_line(txn) for txn in rows] or ["(none)"])


@api_app.command("balance")
def balance(
    instrument: Annotated[str | None, typer.Argument(metavar="[INSTRUMENT]")] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = "",
    as_json: JsonOption = False,
) -> None:
    """An instrument's balance (prepaid) or debt (credit); without one, the merchant's
    prepaid liability and outstanding debt."""
    with _client(url, api_key) as penny:
        if instrument is not None:
            found: dict[str, Any] = dict(penny.get_instrument(instrument))
            held = found["balance"] if found["kind"] == "prepaid" else found["debt"]
            what = "balance" if found["kind"] == "prepaid" else "debt"
            emit(as_json, found, [f"{found['id']}  {found['kind']}  {what} {_dollars(held)}"])
            return
        liability, debt = penny.prepaid_liability(), penny.outstanding_debt()
    data = {"prepaid_liability": dict(liability), "outstanding_debt": dict(debt)}
    lines = [
        f"prepaid liability  {_dollars(dict(liability['balance']))}",
        f"outstanding debt   {_dollars(dict(debt['balance']))}",
    ]
    emit(as_json, data, lines)


def _session_lines(found: dict[str, Any]) -> list[str]:
    lines = [f"{found['id']}  {found['kind']}  {found['status']}", f"url: {found['url']}"]
    for name in ("instrument", "sender_token", "funding_token", "settlement_token"):
        if found.get(name):
            lines.append(f"{name}: {found[name]}")
    return lines


@session_app.command("create")
def create_session(
    kind: Annotated[Literal["prepaid", "postpaid"], typer.Argument(metavar="prepaid|postpaid")],
    return_url: Annotated[str, typer.Option(metavar="URL", help="Where the buyer comes back.")],
    funding_amount: Annotated[str | None, typer.Option(metavar="AMOUNT")] = None,
    credit_limit: Annotated[str | None, typer.Option(metavar="AMOUNT")] = None,
    global_amount_limit: Annotated[str | None, typer.Option(metavar="AMOUNT")] = None,
    payment_reason: Annotated[str | None, typer.Option(metavar="WORDS")] = None,
    idempotency_key: IdempotencyOption = None,
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = "",
    as_json: JsonOption = False,
) -> None:
    """Create a session: send the buyer to its url (prepaid needs --funding-amount, postpaid
    --credit-limit and --global-amount-limit)."""

    def minor(text: str | None, name: str) -> int | None:
        return None if text is None else _minor(text, name)

    with _client(url, api_key) as penny:
        found = penny.create_authorization_session(
            kind,
            return_url,
            funding_amount=minor(funding_amount, "--funding-amount"),
            credit_limit=minor(credit_limit, "--credit-limit"),
            global_amount_limit=minor(global_amount_limit, "--global-amount-limit"),
            payment_reason=payment_reason,
            idempotency_key=idempotency_key,
        )
    emit(as_json, dict(found), _session_lines(dict(found)))


@session_app.command("show")
def show_session(
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = "",
    as_json: JsonOption = False,
) -> None:
    """A session's status; once the buyer completed the pages, its instrument and tokens."""
    with _client(url, api_key) as penny:
        found = dict(penny.get_authorization_session(session_id))
    emit(as_json, found, _session_lines(found))
