"""One way to build what a test needs (issue #15), on the factory and the sandbox builder.

* :func:`open_store` — the services over a store (:func:`penny.services.factory.build_services`:
  every Payments notifies through the IPN outbox) with a manual clock (or the shared sandbox
  clock) and a fresh server key; :func:`manual_clock` is that manual clock, typed;
  :func:`quiet_payments` is the one Payments without the outbox, for set-ups that must notify
  nobody.
* :func:`new_merchant` (a business with its API key), :func:`new_buyer`, :func:`add_card`,
  :func:`add_bank` — the parties the tests share ("DigitalDownload", "Elsewhere",
  "Bea Buyer"), and the sandbox's test card and bank numbers.
* :func:`usd` — a Money in US dollars; :func:`amount_params` — an amount's FPS request
  parameters; :func:`signed_fps` — a signed FPS request (:func:`fps_timestamp`, its time).
* :func:`refusal` — the refusal a request is answered with (the test fails if it is accepted).
* :func:`top_up_balance` — money into a buyer's Penny balance (a ledger journal: no service
  credits a balance yet).
* :func:`prepaid` / :func:`postpaid` — instruments issued through
  :mod:`penny.sandbox.instruments`, valid for 30 days from the store's clock.
* :func:`sender_token` — a SingleUse, MultiUse or Recurring token (issue #19).
* :class:`BuyerWorld` / :func:`flat_fee_parties` — a store with flat fees on a manual clock,
  a merchant and a buyer with a card (the reserve and sender-token tests' worlds).
* :func:`Shop` / :func:`new_shop` — the usual world: a merchant, another merchant, a buyer with
  a card and a bank account.
* :func:`application` — the ASGI application over the same store, clock and key;
  :func:`serving` runs an application on uvicorn on 127.0.0.1 in a thread.

``tests/test_wiring.py`` checks that no other test module constructs the services by hand.
"""

from __future__ import annotations

import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette

from penny.check.servers import free_port
from penny.clock import MICROS_PER_SECOND, Clock, ManualClock
from penny.domain.errors import PaymentsError, Refusal
from penny.domain.fees import FeeSchedule
from penny.domain.model import RecipientToken, TokenKind
from penny.domain.parties import Party, PaymentMethod, random_id
from penny.fps.signature import sign_v2
from penny.ipn.settings import IpnSettings
from penny.ledger.model import Leg, NewJournal
from penny.money import Money, parse_amount
from penny.parties import Directory
from penny.sandbox.clock import SandboxClock
from penny.sandbox.instruments import (
    postpaid_setup,
    prepaid_setup,
    sender_token_setup,
    valid_for_days,
)
from penny.security import ServerKey, load_server_key
from penny.services.factory import Services, build_services
from penny.services.marketplace import SetupRecipient, issue_recipient_token
from penny.services.payments import InstrumentSetup, PaymentRequest, Payments, SenderTokenSetup
from penny.storage.database import open_database
from penny.web.app import create_app

if TYPE_CHECKING:  # importing it warns (see the tests that import it)
    from starlette.testclient import TestClient

CARD = "4111111111111111"
DECLINED_CARD = "4000000000000002"
LATE_FAILING_CARD = "4000000000000341"
ROUTING = "110000000"
BANK_ACCOUNT = "000123456789"
RETURNED_BANK_ACCOUNT = "000111110000"
BUYER_PASSWORD = "correct horse battery"
VALID_DAYS = 30
SERVER_WAIT = 20.0


def usd(text: str) -> Money:
    return parse_amount(text, "USD")


def amount_params(name: str, value: str) -> dict[str, str]:
    """The FPS request parameters of the amount ``name`` (``name.Value``, ``name.CurrencyCode``)
    for ``value`` US dollars."""
    return {f"{name}.Value": value, f"{name}.CurrencyCode": "USD"}


# -- signed FPS requests ---------------------------------------------------------------------


def fps_timestamp(us: int | None = None, *, millis: bool = False, offset_s: int = 0) -> str:
    """A request's ``Timestamp`` (UTC, to the second; with ``.000`` milliseconds if ``millis``,
    as Java clients write it) for the time ``us`` (microseconds since the epoch; the wall clock
    when None) plus ``offset_s`` seconds."""
    seconds = (int(time.time()) if us is None else us // MICROS_PER_SECOND) + offset_s
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z" if millis else "%Y-%m-%dT%H:%M:%SZ")


def signed_fps(
    action: str,
    key: str,
    secret: str,
    params: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    host: str = "testserver",
    timestamp: str | None = None,
    version: str = "2010-08-28",
) -> dict[str, str]:
    """An FPS request of ``action`` with ``params``, signed (Signature V2, HmacSHA256) with the
    API key ``key`` and ``secret`` for ``method`` at ``host`` (path ``/``); ``timestamp``
    defaults to now (:func:`fps_timestamp`)."""
    request = {
        "Action": action,
        "AWSAccessKeyId": key,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": timestamp or fps_timestamp(),
        "Version": version,
        **(params or {}),
    }
    request["Signature"] = sign_v2(secret, method, host, "/", request)
    return request


# -- the store and its services --------------------------------------------------------------


def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    sandbox_clock: bool = False,
    server_key: ServerKey | None = None,
    fees: FeeSchedule | None = None,
    new_id: Any = random_id,
) -> Services:
    """The services over the store at ``url`` (migrated): a :class:`ManualClock` unless
    ``clock`` is given or ``sandbox_clock`` asks for the shared sandbox clock; a new server
    key unless ``server_key`` is given. Dispose of ``services.database`` when done."""
    database = open_database(url)
    if sandbox_clock:
        clock = SandboxClock(database)
    return build_services(
        database,
        clock=clock or ManualClock(),
        server_key=server_key or ServerKey.generate(),
        fees=fees,
        new_id=new_id,
    )


@contextmanager
def store(url: str, **options: Any) -> Iterator[Services]:
    """:func:`open_store`, disposed of afterwards."""
    services = open_store(url, **options)
    try:
        yield services
    finally:
        services.database.dispose()


def open_command_store(url: str) -> Services:
    """The services over a store the ``penny`` command made: the shared sandbox clock and the
    server key :func:`penny.security.load_server_key` finds (``$PENNY_SECRET_KEY``, or the key
    file beside an SQLite store). Dispose of ``services.database`` when done."""
    return open_store(url, sandbox_clock=True, server_key=load_server_key(url, create=False))


def manual_clock(services: Services) -> ManualClock:
    """The :class:`ManualClock` :func:`open_store` gave ``services`` (asked for by type)."""
    clock = services.clock
    assert isinstance(clock, ManualClock)
    return clock


def quiet_payments(services: Services, *, fees: FeeSchedule | None = None) -> Payments:
    """A Payments over the same ledger that tells no listener (no IPN is written)."""
    return Payments(services.ledger, clock=services.clock, fees=fees)


def other_directory(services: Services, server_key: ServerKey) -> Directory:
    """The directory of the same store read with another server key."""
    return Directory(services.database, services.ledger, services.clock, server_key)


# -- parties ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Merchant:
    """A business account and its first API key."""

    party: Party
    access_key: str
    secret: str

    @property
    def id(self) -> str:
        return self.party.id


def new_merchant(
    services: Services, name: str = "DigitalDownload", email: str = "shop@example.com"
) -> Merchant:
    party, key = services.directory.create_business(name, email)
    return Merchant(party, key.access_key_id, key.secret)


def new_buyer(
    services: Services,
    name: str = "Bea Buyer",
    email: str = "bea@example.com",
    password: str = BUYER_PASSWORD,
) -> Party:
    return services.directory.create_personal(name, email, password)


def add_card(
    services: Services, buyer_id: str, number: str = CARD, year: int = 2030
) -> PaymentMethod:
    return services.directory.add_card(buyer_id, number, 12, year)


def add_bank(services: Services, buyer_id: str, account: str = BANK_ACCOUNT) -> PaymentMethod:
    return services.directory.add_bank(buyer_id, ROUTING, account)


def refusal(payments: Payments, request: PaymentRequest) -> Refusal:
    """The refusal ``payments`` answers ``request`` with; fails the test if it is accepted."""
    (result,) = payments.submit([request])
    assert isinstance(result, PaymentsError), f"expected a refusal, got {result}"
    return result.refusal


def top_up_balance(payments: Payments, buyer: Party, minor: int) -> int:
    """Money arrives in a buyer's Penny balance (no service does it yet: a ledger journal from
    external funding, as a deposit would book it); the journal's id."""
    assert buyer.balance_account_id is not None
    external = payments.chart().external_funding
    legs = (Leg(external, minor, "USD"), Leg(buyer.balance_account_id, -minor, "USD"))
    (outcome,) = payments.ledger.execute([NewJournal("test-top-up", uuid.uuid4().hex, legs)])
    assert outcome.ok, outcome
    assert outcome.journal_id is not None
    return outcome.journal_id


# -- instruments -----------------------------------------------------------------------------


def prepaid(
    payments: Payments,
    merchant_id: str,
    buyer_id: str,
    method_id: str,
    ref: str | tuple[str, str] = "p",
    *,
    limit: str | None = "100",
    days: int = VALID_DAYS,
    reason: str = "",
) -> InstrumentSetup:
    """A prepaid instrument (references ``{ref}-sender`` / ``{ref}-funding``)."""
    return payments.setup_prepaid(
        prepaid_setup(
            merchant_id,
            buyer_id,
            method_id,
            ref,
            funding_limit=None if limit is None else usd(limit),
            valid_until=valid_for_days(payments.clock.now_us(), days),
            payment_reason=reason,
        )
    )


def postpaid(
    payments: Payments,
    merchant_id: str,
    buyer_id: str,
    method_id: str,
    ref: str | tuple[str, str] = "c",
    *,
    limit: str = "100",
    days: int = VALID_DAYS,
    global_amount_limit: Money | None = None,
    min_charge: Money | None = None,
    max_charge: Money | None = None,
) -> InstrumentSetup:
    """A credit instrument (references ``{ref}-sender`` / ``{ref}-settlement``)."""
    return payments.setup_postpaid(
        postpaid_setup(
            merchant_id,
            buyer_id,
            method_id,
            ref,
            credit_limit=usd(limit),
            global_amount_limit=global_amount_limit,
            min_charge=min_charge,
            max_charge=max_charge,
            valid_until=valid_for_days(payments.clock.now_us(), days),
        )
    )


def recipient_token(
    services: Services,
    caller_id: str,
    recipient_id: str,
    ref: str = "r",
    *,
    max_fixed: str = "1.00",
    max_variable: int = 1000,
    recipient_pays_fee: bool = True,
) -> RecipientToken:
    """A recipient token (the Recipient pipeline's consent): ``recipient_id`` lets the
    marketplace ``caller_id`` take up to ``max_fixed`` plus ``max_variable`` hundredths of a
    percent from each Pay."""
    return issue_recipient_token(
        services.payments,
        SetupRecipient(
            caller_id=caller_id,
            recipient_id=recipient_id,
            caller_reference=ref,
            max_fixed_fee=usd(max_fixed),
            max_variable_fee=max_variable,
            recipient_pays_fee=recipient_pays_fee,
        ),
    )


def sender_token(
    payments: Payments,
    merchant_id: str,
    buyer_id: str,
    method_id: str,
    ref: str,
    kind: TokenKind,
    **terms: Any,
) -> SenderTokenSetup:
    """A SingleUse, MultiUse or Recurring token (issue #19) under the caller reference
    ``ref``; ``terms`` are :func:`penny.sandbox.instruments.sender_token_setup`'s (amounts as
    text are read as USD)."""
    for name in ("transaction_amount", "global_amount_limit"):
        if isinstance(terms.get(name), str):
            terms[name] = usd(terms[name])
    return payments.setup_sender_token(
        sender_token_setup(merchant_id, buyer_id, method_id, ref, kind, **terms)
    )


def edited_token(
    payments: Payments, old: SenderTokenSetup, method_id: str, ref: str, **terms: Any
) -> SenderTokenSetup:
    """EditToken (issue #19): ``old`` replaced by a token of the same kind with ``terms`` (all
    of them, as :func:`sender_token` takes them) on ``method_id``, under the reference
    ``ref``."""
    for name in ("transaction_amount", "global_amount_limit"):
        if isinstance(terms.get(name), str):
            terms[name] = usd(terms[name])
    token = old.token
    request = sender_token_setup(
        token.caller_id, token.sender_id, method_id, ref, token.kind, **terms
    )
    return payments.edit_sender_token(token.id, request)


# -- the usual world -------------------------------------------------------------------------


@dataclass
class Shop:
    """A store with a merchant, another merchant, and a buyer with a card and a bank account."""

    services: Services
    merchant: Merchant
    other: Merchant
    buyer: Party
    card: PaymentMethod
    bank: PaymentMethod | None

    def prepaid(self, ref: str = "p", limit: str | None = "100") -> InstrumentSetup:
        payments, merchant_id = self.services.payments, self.merchant.id
        return prepaid(payments, merchant_id, self.buyer.id, self.card.id, ref, limit=limit)

    def postpaid(self, ref: str = "c", limit: str = "100") -> InstrumentSetup:
        payments, merchant_id = self.services.payments, self.merchant.id
        return postpaid(payments, merchant_id, self.buyer.id, self.card.id, ref, limit=limit)

    def recipient_token(self, ref: str = "r", **terms: Any) -> RecipientToken:
        """The other merchant's consent that the merchant (the marketplace) pays it."""
        return recipient_token(self.services, self.merchant.id, self.other.id, ref, **terms)

    def token(
        self, kind: TokenKind, ref: str = "t", method: PaymentMethod | None = None, **terms: Any
    ) -> SenderTokenSetup:
        """A SingleUse, MultiUse or Recurring token on ``method`` (the card by default)."""
        method_id = (method or self.card).id
        payments, merchant_id = self.services.payments, self.merchant.id
        return sender_token(payments, merchant_id, self.buyer.id, method_id, ref, kind, **terms)


FLAT_FEES = FeeSchedule.flat(card=50, bank=20, balance=5)


@dataclass
class BuyerWorld:
    """A store on a manual clock with a merchant and a buyer with a card; a test module's
    ``World`` extends it with its own helpers (and more payment methods)."""

    services: Services
    clock: ManualClock
    merchant: Party
    buyer: Party
    card: PaymentMethod


def flat_fee_parties(url: str) -> tuple[Services, ManualClock, Party, Party]:
    """A store with :data:`FLAT_FEES` on a manual clock, a merchant and a buyer (in this
    order)."""
    services = open_store(url, fees=FLAT_FEES)
    merchant = new_merchant(services).party
    return services, manual_clock(services), merchant, new_buyer(services)


def new_shop(services: Services, *, bank: bool = True) -> Shop:
    """The usual world (in this order: the ids of the FPS snapshots depend on it)."""
    merchant = new_merchant(services)
    other = new_merchant(services, "Elsewhere", "else@example.com")
    buyer = new_buyer(services)
    card = add_card(services, buyer.id)
    account = add_bank(services, buyer.id) if bank else None
    return Shop(services, merchant, other, buyer, card, account)


# -- the application -------------------------------------------------------------------------


def application(
    services: Services,
    *,
    request_clock: bool = False,
    ipn: IpnSettings | None = None,
    complete_every_us: int | None = None,
) -> Starlette:
    """The application over ``services``' store, clock and server key; with
    ``request_clock`` signed requests' timestamps are checked against that clock too;
    ``complete_every_us``: its lifespan finishes what is due that often (``penny serve``'s)."""
    return create_app(
        services.database,
        clock=services.clock,
        server_key=services.server_key,
        request_clock=services.clock if request_clock else None,
        ipn=ipn,
        complete_every_us=complete_every_us,
    )


@contextmanager
def serving(app: Starlette, *, lifespan: bool = False) -> Iterator[int]:
    """Run ``app`` on uvicorn on 127.0.0.1 in a thread (without its lifespan unless asked:
    IPN delivery, the sweeps); yields its port."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on" if lifespan else "off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_WAIT
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        assert thread.is_alive(), "the server stopped"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(SERVER_WAIT)
        assert not thread.is_alive(), "the server did not stop"


def verify_signature(client: TestClient, endpoint: str, http_parameters: str) -> str:
    """FPS VerifySignature of ``http_parameters`` as received at ``endpoint``, asked over
    ``client``: the VerificationStatus Penny answers (``Success`` or ``Failure``)."""
    response = client.get(
        "/",
        params={
            "Action": "VerifySignature",
            "Version": "2010-08-28",
            "UrlEndPoint": endpoint,
            "HttpParameters": http_parameters,
        },
    )
    assert response.status_code == 200, response.text
    namespace = {"f": "http://fps.amazonaws.com/doc/2010-08-28/"}
    status = ET.fromstring(response.text).find(".//f:VerificationStatus", namespace)
    assert status is not None
    return status.text or ""
