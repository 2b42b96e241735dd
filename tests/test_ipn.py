"""Instant Payment Notification (issue #6, docs/ipn.md), on SQLite and PostgreSQL.

A real merchant endpoint (:mod:`ipn_receiver`, HTTP on 127.0.0.1) receives the notifications.
Each event kind arrives with exactly the documented parameters, signed so that Penny's
``VerifySignature`` (over the FPS API) and the certificate alone (offline) accept it and any
altered parameter is refused. Retries are driven by a manual clock: no real sleeping.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from builders import (
    add_card,
    amount_params,
    application,
    fps_timestamp,
    new_buyer,
    new_merchant,
    open_store,
    prepaid,
    quiet_payments,
    signed_fps,
    usd,
    verify_signature,
)
from ipn_receiver import Received, Receiver, Reply
from penny.cli.main import app as cli_app
from penny.clock import MICROS_PER_DAY, MICROS_PER_SECOND, ManualClock
from penny.domain.model import (
    PENDING_MESSAGE,
    SUCCESS_MESSAGE,
    Status,
    StatusCode,
    Token,
    Transaction,
)
from penny.domain.parties import Party, PaymentMethod
from penny.engine.ledger import Ledger, LedgerSession
from penny.ipn.delivery import Deliverer, DrainReport, drain, retry_delay
from penny.ipn.guard import BlockedAddressError, allowed, pinned_target
from penny.ipn.outbox import IpnOutbox
from penny.ipn.settings import IpnConfigError, IpnSettings
from penny.parties import Directory
from penny.security import ServerKey
from penny.services import instructions
from penny.services.factory import Services
from penny.services.payments import (
    FundPrepaidRequest,
    InstrumentSetup,
    Known,
    Payments,
    PayRequest,
    RefundRequest,
    TransactionChange,
)
from penny.signing import Signer, load_signer
from penny.storage import ipn_sql
from penny.storage.database import Database

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PUBLIC = "https://penny.example:8443"
SIGNATURE_NAMES = ("signatureVersion", "signatureMethod", "certificateUrl", "signature")


@dataclass
class World:
    services: Services
    db: Database
    url: str
    clock: ManualClock
    key_hex: str
    key: ServerKey
    ledger: Ledger
    directory: Directory
    payments: Payments
    signer: Signer
    merchant: Party
    access_key: str
    secret: str
    buyer: Party
    card: PaymentMethod
    receiver: Receiver

    def settings(self, **changes: Any) -> IpnSettings:
        base = IpnSettings(
            public_url=PUBLIC, timeout_us=2 * MICROS_PER_SECOND, lease_us=10 * MICROS_PER_SECOND
        )
        return replace(base, **changes)

    def drain(self, **changes: Any) -> DrainReport:
        deliverer = Deliverer(self.db, self.signer, self.clock, self.settings(**changes))
        return drain(deliverer)

    def notifications(self, subject: str | None = None) -> list[ipn_sql.Notification]:
        with self.db.read() as conn:
            return ipn_sql.listing(conn, subject_id=subject, limit=10_000)

    def notification(self, notification_id: str) -> ipn_sql.Notification:
        with self.db.read() as conn:
            found = ipn_sql.load(conn, notification_id)
        assert found is not None
        return found

    def attempts(self, notification_id: str) -> list[ipn_sql.Attempt]:
        with self.db.read() as conn:
            return ipn_sql.load_attempts(conn, notification_id)

    def prepaid(
        self, method: PaymentMethod, ref: str, reason: str = "", limit: str = "100"
    ) -> InstrumentSetup:
        return prepaid(
            self.payments,
            self.merchant.id,
            self.buyer.id,
            method.id,
            ref,
            limit=limit,
            reason=reason,
        )

    def funded(self, ref: str = "music", reason: str = "") -> InstrumentSetup:
        """A prepaid instrument with $50 on it, funded without a notification."""
        setup = self.prepaid(self.card, ref, reason=reason)
        quiet_payments(self.services).execute(
            FundPrepaidRequest(
                self.merchant.id,
                f"{ref}-fund",
                setup.second_token.id,
                setup.instrument.id,
                usd("50"),
            )
        )
        return setup

    def fund(self, setup: InstrumentSetup, amount: str, ref: str) -> Transaction:
        return self.payments.execute(
            FundPrepaidRequest(
                self.merchant.id, ref, setup.second_token.id, setup.instrument.id, usd(amount)
            )
        )

    def cli(self, *args: str) -> Any:
        result = CliRunner().invoke(
            cli_app,
            [*args, "--database", self.url, "--json"],
            env={"PENNY_SECRET_KEY": self.key_hex, "PENNY_PUBLIC_URL": PUBLIC},
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@contextmanager
def make_world(database_url: str) -> Iterator[World]:
    # The manual clock starts at the real time, so that `penny ipn retry` (sandbox clock) and
    # the tests' clock agree on what "now" is.
    clock = ManualClock(datetime.now(UTC).timestamp().__int__() * MICROS_PER_SECOND)
    key_hex = secrets.token_hex(32)
    key = ServerKey.from_hex(key_hex, source="test")
    services = open_store(database_url, clock=clock, server_key=key)
    merchant = new_merchant(services)
    buyer = new_buyer(services)
    card = add_card(services, buyer.id)
    with Receiver() as receiver:
        party = services.directory.set_ipn_url(merchant.id, receiver.url("/ipn?shop=1"))
        yield World(
            services=services,
            db=services.database,
            url=database_url,
            clock=clock,
            key_hex=key_hex,
            key=key,
            ledger=services.ledger,
            directory=services.directory,
            payments=services.payments,
            signer=load_signer(services.database, key, clock),
            merchant=party,
            access_key=merchant.access_key,
            secret=merchant.secret,
            buyer=buyer,
            card=card,
            receiver=receiver,
        )
    assert services.ledger.audit().ok
    services.database.dispose()


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with make_world(database_url) as made:
        yield made


# -- what a merchant does with a notification (the snippet of docs/ipn.md) --------------------


def string_to_sign(endpoint: str, params: Sequence[tuple[str, str]]) -> bytes:
    """docs/ipn.md: POST, host[:port], path, then every parameter but ``signature`` (the
    URL's own query parameters included), sorted, RFC 3986-encoded."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if parts.port and parts.port != {"http": 80, "https": 443}[parts.scheme]:
        host += f":{parts.port}"
    signed = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in params if k != "signature"
    )
    query = "&".join(f"{k}={v}" for k, v in signed)
    return f"POST\n{host}\n{quote(parts.path or '/', safe='/-_.~')}\n{query}".encode()


def verify_offline(certificate_pem: bytes, url: str, params: Sequence[tuple[str, str]]) -> bool:
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    signature = base64.b64decode("".join(dict(params)["signature"].split()))
    try:
        public_key.verify(signature, string_to_sign(url, params), padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        return False
    return True


def _with_url_query(received: Received) -> list[tuple[str, str]]:
    """Every parameter the merchant received: the URL's own query and the form body."""
    query = urlsplit(received.path).query
    own = [tuple(p.split("=", 1)) for p in query.split("&")] if query else []
    return [*((k, v) for k, v in own), *received.pairs]


# -- the event kinds ------------------------------------------------------------------------


def _expected_txn(
    world: World,
    received: Received,
    txn: Transaction,
    *,
    status: str,
    code: str,
    message: str,
    operation: str,
    method: str,
    amount: str,
    reason: str | None = None,
    refund_of: str | None = None,
) -> dict[str, str]:
    expected = {
        "notificationId": received.headers["x-penny-notification-id"],
        "notificationType": "TransactionStatus",
        "transactionId": txn.id,
        "transactionDate": str(txn.received_at // MICROS_PER_SECOND),
        "transactionStatus": status,
        "statusCode": code,
        "statusMessage": message,
        "operation": operation,
        "paymentMethod": method,
        "transactionAmount": amount,
        "callerReference": txn.caller_reference,
        **({} if reason is None else {"paymentReason": reason}),
        "buyerName": "Bea Buyer",
        "buyerEmail": "bea@example.com",
        "recipientName": "DigitalDownload",
        "recipientEmail": "shop@example.com",
        "signatureVersion": "2",
        "signatureMethod": "RSA-SHA1",
        "certificateUrl": f"{PUBLIC}/certs/{world.signer.current.key_id}/PKICert.pem",
        "signature": received.params["signature"],
    }
    if refund_of is not None:
        signature = {name: expected.pop(name) for name in SIGNATURE_NAMES}
        expected.update(parentTransactionId=refund_of, status="SUCCESS", **signature)
    return expected


@dataclass
class Events:
    """Every event kind, made on one store and delivered to the merchant's endpoint."""

    world: World
    transactions: dict[str, Transaction]
    cancelled: Token
    received: list[Received]
    by_key: dict[tuple[str, str], Received]


def _make_events(world: World) -> Events:
    d = world.directory
    music = world.prepaid(world.card, "music", reason="Music card")
    by_card = world.fund(music, "25", "fund-card")  # SUCCESS at once (CC)
    pay = world.payments.execute(  # SUCCESS at once, to the OverrideIPNURL
        PayRequest(
            world.merchant.id,
            "pay-1",
            music.sender_token.id,
            usd("2.22"),
            ipn_url=world.receiver.url("/override"),
        )
    )
    refund = world.payments.execute(  # a new transaction: REFUND with parentTransactionId
        RefundRequest(world.merchant.id, "refund-1", pay.id, usd("1.00"))
    )
    bank = world.prepaid(d.add_bank(world.buyer.id, "110000000", "000123456789"), "bank")
    by_bank = world.fund(bank, "10", "fund-bank")  # PENDING, SUCCESS after 4 days
    late = world.prepaid(d.add_card(world.buyer.id, "4000000000000341", 12, 2030), "late")
    by_late_card = world.fund(late, "5", "fund-late")  # PENDING, FAILURE after a day
    declined = world.prepaid(d.add_card(world.buyer.id, "4000000000000002", 12, 2030), "no")
    by_declined = world.fund(declined, "7.5", "fund-declined")  # FAILURE at once
    assert [t.status for t in (by_card, pay, refund, by_bank, by_late_card, by_declined)] == [
        Status.success,
        Status.success,
        Status.success,
        Status.pending,
        Status.pending,
        Status.failure,
    ]
    world.clock.advance(4 * MICROS_PER_DAY)
    completed = {t.id: t for t in world.payments.complete_due()}
    assert [completed[by_bank.id].status, completed[by_late_card.id].status] == [
        Status.success,
        Status.failure,
    ]
    cancelled = world.payments.cancel_token(world.merchant.id, music.sender_token.id)
    # Reserve is not an operation Penny offers yet: the listener is told directly.
    reserved = replace(
        pay, status=Status.reserved, status_code=StatusCode.success, completed_at=None
    )
    world.ledger.run(
        lambda session: IpnOutbox().transactions_changed(
            session, [TransactionChange(reserved, replace(pay, status=Status.pending))]
        )
    )
    report = world.drain()
    assert (report.attempts, report.delivered) == (10, 10)
    received = world.receiver.received
    by_key: dict[tuple[str, str], Received] = {}
    for r in received:
        key = (
            r.params.get("transactionId") or r.params["tokenId"],
            r.params.get("transactionStatus", "CANCELLED-TOKEN"),
        )
        assert key not in by_key
        by_key[key] = r
    made = {
        "by_card": by_card,
        "pay": pay,
        "refund": refund,
        "by_bank": by_bank,
        "by_late_card": by_late_card,
        "by_declined": by_declined,
        "reserved": reserved,
    }
    return Events(world, made, cancelled, list(received), by_key)


@pytest.fixture(scope="module")
def events(database_url_for_module: str) -> Iterator[Events]:
    """The event kinds, made once per store for the table below."""
    with make_world(database_url_for_module) as world:
        yield _make_events(world)


SUCCESS = {"code": "Success", "message": SUCCESS_MESSAGE}
PENDING = {"code": "PendingNetworkResponse", "message": PENDING_MESSAGE}
MUSIC = {"method": "Prepaid", "reason": "Music card"}
MUSIC_PAY = {"operation": "PAY", "amount": "USD 2.22", **MUSIC}
ACH = {"operation": "FUND_PREPAID", "method": "ACH", "amount": "USD 10.00"}
FUND_CC = {"operation": "FUND_PREPAID", "method": "CC"}
CC5 = {**FUND_CC, "amount": "USD 5.00"}

#: (the transaction, its status) → what its notification says besides the common parameters.
EVENT_TABLE = [
    pytest.param(
        "by_card",
        "SUCCESS",
        {**SUCCESS, **FUND_CC, "amount": "USD 25.00", "reason": "Music card"},
        id="fund-by-card",
    ),
    pytest.param("pay", "SUCCESS", {**SUCCESS, **MUSIC_PAY}, id="pay"),
    pytest.param(
        "refund",
        "SUCCESS",
        {**SUCCESS, "operation": "REFUND", "amount": "USD 1.00", **MUSIC, "refund_of": "pay"},
        id="refund",
    ),
    pytest.param("by_bank", "PENDING", {**PENDING, **ACH}, id="fund-by-bank-pending"),
    pytest.param("by_bank", "SUCCESS", {**SUCCESS, **ACH}, id="fund-by-bank-completed"),
    pytest.param("by_late_card", "PENDING", {**PENDING, **CC5}, id="late-failing-card-pending"),
    pytest.param(
        "by_late_card",
        "FAILURE",
        {
            "code": "TransactionDenied",
            "message": "The payment method was declined after processing.",
            **CC5,
        },
        id="late-failing-card-failed",
    ),
    pytest.param(
        "by_declined",
        "FAILURE",
        {
            "code": "TransactionDenied",
            "message": "The card was declined by the issuing bank.",
            **FUND_CC,
            "amount": "USD 7.50",
        },
        id="declined-card",
    ),
    pytest.param("reserved", "RESERVED", {**SUCCESS, **MUSIC_PAY}, id="reserved"),
]


@pytest.mark.parametrize(("name", "status", "fields"), EVENT_TABLE)
def test_each_event_kind_arrives_with_exactly_the_documented_parameters(
    events: Events, name: str, status: str, fields: dict[str, str]
) -> None:
    txn = events.transactions[name]
    r = events.by_key[(txn.id, status)]
    refund_of = fields.get("refund_of")
    expected_fields: dict[str, Any] = {
        **fields,
        "status": status,
        "refund_of": None if refund_of is None else events.transactions[refund_of].id,
    }
    expected = _expected_txn(events.world, r, txn, **expected_fields)
    assert r.params == expected
    assert [key for key, _ in r.pairs][: len(r.pairs) - 4] == [
        key for key in expected if key not in SIGNATURE_NAMES
    ]  # the documented order, signature parameters last


def test_every_event_is_delivered_once_signed_to_its_url(events: Events) -> None:
    world, received = events.world, events.received
    pay = events.transactions["pay"]
    assert len(received) == 10
    assert len(events.by_key) == 10
    for r in received:
        assert r.headers["content-type"] == "application/x-www-form-urlencoded; charset=utf-8"
        assert r.headers["x-penny-notification-id"] == r.params["notificationId"]
        assert r.path == ("/override" if r.params.get("transactionId") == pay.id else "/ipn?shop=1")
    cancelled = events.cancelled
    token = events.by_key[(cancelled.id, "CANCELLED-TOKEN")]
    assert token.params == {
        "notificationId": token.headers["x-penny-notification-id"],
        "notificationType": "TokenCancellation",
        "tokenId": cancelled.id,
        "tokenType": "MultiUse",
        "callerReference": "music-sender",
        "dateInstalled": _human(cancelled),
        "customerName": "Bea Buyer",
        "customerEmail": "bea@example.com",
        "paymentReason": "Music card",
        "signatureVersion": "2",
        "signatureMethod": "RSA-SHA1",
        "certificateUrl": f"{PUBLIC}/certs/{world.signer.current.key_id}/PKICert.pem",
        "signature": token.params["signature"],
    }
    # The refunded original changed (its refunded amount) but not its status: no notification.
    assert len(world.notifications(subject=pay.id)) == 2  # SUCCESS and the synthetic RESERVED

    # Every notification verifies, offline with the certificate and with Penny's signer.
    pem = world.signer.current.certificate_pem.encode()
    for r in received:
        everything = _with_url_query(r)
        url = world.receiver.url(urlsplit(r.path).path)
        assert verify_offline(pem, url, everything), r.params
        assert world.signer.verify(world.receiver.url(r.path), r.pairs)


def _human(token: Token) -> str:
    moment = datetime.fromtimestamp(token.created_at // MICROS_PER_SECOND, tz=UTC)
    return f"{moment:%b} {moment.day}, {moment.year}"  # "Nov 24, 2026"


def test_verify_signature_over_the_fps_api_accepts_them_and_refuses_any_change(
    world: World,
) -> None:
    music = world.funded(reason="Music card")
    pay = world.payments.execute(
        PayRequest(world.merchant.id, "pay-1", music.sender_token.id, usd("3"))
    )
    world.payments.execute(RefundRequest(world.merchant.id, "refund-1", pay.id, usd("1.25")))
    world.payments.cancel_token(world.merchant.id, music.sender_token.id)
    world.drain()
    received = world.receiver.wait_for(3)
    app = application(world.services)
    with TestClient(app) as client:
        verify = partial(verify_signature, client)

        # What Penny serves at certificateUrl verifies them offline too.
        certificate_path = urlsplit(received[0].params["certificateUrl"]).path
        pem = client.get(certificate_path)
        assert pem.status_code == 200
        for r in received:
            endpoint = world.receiver.url(r.path)  # the IPN URL, its own query included
            assert verify(endpoint, r.body.decode()) == "Success"
            assert verify_offline(pem.content, endpoint.split("?")[0], _with_url_query(r))
            for index, (name, value) in enumerate(r.pairs):
                altered = list(r.pairs)
                # Another first character for the signature ("A" + the rest would leave one
                # that already starts with "A" unchanged: a 1-in-64 false alarm).
                other = ("B" if value.startswith("A") else "A") + value[1:]
                altered[index] = (name, value + "x" if name != "signature" else other)
                assert verify(endpoint, urlencode(altered)) == "Failure", name
                assert not verify_offline(pem.content, endpoint.split("?")[0], altered)
            dropped = [p for p in r.pairs if p[0] != "buyerEmail" and p[0] != "customerEmail"]
            assert verify(endpoint, urlencode(dropped)) == "Failure"
            assert verify(endpoint, urlencode([*r.pairs, ("extra", "1")])) == "Failure"
            assert verify(endpoint.replace("shop=1", "shop=2"), r.body.decode()) == "Failure"


# -- which changes notify, and where --------------------------------------------------------


class _Hooked(IpnOutbox):
    """Writes its rows, then calls ``after`` (which may make the batch fail)."""

    def __init__(self, after: Callable[[], None]) -> None:
        super().__init__()
        self.after = after

    def transactions_changed(
        self,
        session: LedgerSession,
        changes: Sequence[TransactionChange],
        known: Known | None = None,
    ) -> None:
        super().transactions_changed(session, changes, known)
        self.after()


def test_the_outbox_commits_with_the_change_and_only_the_last_run(world: World) -> None:
    music = world.funded()
    runs: list[int] = []

    def conflict_once() -> None:
        """The batch conflicts once (the engine re-runs it)."""
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))

    world.payments.listener = _Hooked(conflict_once)
    pay = world.payments.execute(
        PayRequest(world.merchant.id, "pay-1", music.sender_token.id, usd("1"))
    )
    assert len(runs) == 2
    (only,) = world.notifications(subject=pay.id)  # the first run's row rolled back
    assert only.state == ipn_sql.PENDING

    def fail() -> None:
        raise RuntimeError("the batch fails after the outbox write")

    world.payments.listener = _Hooked(fail)
    with pytest.raises(RuntimeError):
        world.payments.execute(
            PayRequest(world.merchant.id, "pay-2", music.sender_token.id, usd("1"))
        )
    assert len(world.notifications()) == 1  # no change, no notification
    # A retried request (same CallerReference, same content) changes nothing: no notification.
    world.payments.listener = IpnOutbox()
    again = world.payments.execute(
        PayRequest(world.merchant.id, "pay-1", music.sender_token.id, usd("1"))
    )
    assert again.id == pay.id
    assert len(world.notifications()) == 1


def test_no_url_no_notification_and_a_url_that_is_not_http_fails_visibly(world: World) -> None:
    music = world.funded()
    world.directory.set_ipn_url(world.merchant.id, None)
    quiet = world.payments.execute(
        PayRequest(world.merchant.id, "pay-1", music.sender_token.id, usd("1"))
    )
    assert world.notifications(subject=quiet.id) == []
    odd = world.payments.execute(
        PayRequest(
            world.merchant.id,
            "pay-2",
            music.sender_token.id,
            usd("1"),
            ipn_url="ftp://shop.example/ipn",
        )
    )
    (failed,) = world.notifications(subject=odd.id)
    assert failed.state == ipn_sql.FAILED
    assert failed.last_error is not None
    assert "http" in failed.last_error
    assert world.drain().attempts == 0
    listed = world.cli("ipn", "list", "--failed")
    assert [n["id"] for n in listed["notifications"]] == [failed.id]
    # --account takes the merchant's id or its email (any case), and names an unknown email.
    for account in (world.merchant.id, world.merchant.email.upper()):
        mine = world.cli("ipn", "list", "--failed", "--account", account)
        assert [n["id"] for n in mine["notifications"]] == [failed.id]
    assert world.cli("ipn", "list", "--account", world.buyer.id)["notifications"] == []
    unknown = CliRunner().invoke(
        cli_app, ["ipn", "list", "--account", "nobody@example.com", "--database", world.url]
    )
    assert unknown.exit_code != 0
    assert "no account has the email 'nobody@example.com'" in unknown.output


def test_cancel_token_notifies_its_override_url_else_the_accounts(world: World) -> None:
    first, second = world.funded("one"), world.funded("two")
    override = world.receiver.url("/override")
    world.payments.cancel_token(world.merchant.id, first.sender_token.id, override)
    world.payments.cancel_token(world.merchant.id, second.sender_token.id)
    (to_override,) = world.notifications(subject=first.sender_token.id)
    (to_account,) = world.notifications(subject=second.sender_token.id)
    assert to_override.url == override
    assert to_account.url.startswith(world.receiver.url() + "?")  # the account's (with a query)
    assert world.drain().delivered == 2
    paths = sorted(r.path.partition("?")[0] for r in world.receiver.received)
    assert paths == ["/ipn", "/override"]


def test_cancelling_an_installed_payment_instruction_notifies_too(world: World) -> None:
    installed = instructions.install(
        world.payments,
        instructions.InstallRequest(
            world.merchant.id,
            "house-rules",
            "MyRole == 'Recipient' orSay 'Only as the recipient';",
            "SingleUse",
            payment_reason="House rules",
        ),
    )
    override = world.receiver.url("/rules")
    instructions.cancel_instruction(world.payments, world.merchant.id, installed.id, override)
    instructions.cancel_instruction(
        world.payments, world.merchant.id, installed.id
    )  # twice: no effect
    (notification,) = world.notifications(subject=installed.id)
    assert notification.url == override
    assert world.drain().delivered == 1
    (received,) = world.receiver.received
    params = received.params
    assert [name for name, _ in received.pairs][:6] == [
        "notificationId",
        "notificationType",
        "tokenId",
        "tokenType",
        "callerReference",
        "dateInstalled",
    ]
    assert params["notificationType"] == "TokenCancellation"
    assert (params["tokenId"], params["tokenType"]) == (installed.id, "SingleUse")
    assert params["callerReference"] == "house-rules"
    assert params["paymentReason"] == "House rules"
    assert "customerName" not in params  # an installed token has no sender
    assert world.signer.verify(world.receiver.url("/rules"), received.pairs)


# -- retries -------------------------------------------------------------------------------


def test_500_three_times_then_200_is_one_accepted_delivery(world: World) -> None:
    world.receiver.script(Reply(500), Reply(500), Reply(500), Reply(200))
    music = world.funded()
    pay = world.payments.execute(
        PayRequest(world.merchant.id, "pay-1", music.sender_token.id, usd("1"))
    )
    (notification,) = world.notifications(subject=pay.id)
    base = 30 * MICROS_PER_SECOND  # the default first delay: 30 s, then doubling, jittered
    for attempt in (1, 2, 3):
        report = world.drain()
        assert (report.attempts, report.retrying) == (1, 1)
        now = world.clock.now_us()
        due = world.notification(notification.id).next_attempt_at
        assert due is not None
        full = base * 2 ** (attempt - 1)
        assert now + full // 2 <= due <= now + full, (attempt, due - now)
        world.clock.set(due - 1)
        assert world.drain().attempts == 0  # not due yet: nothing is sent
        world.clock.set(due)
    report = world.drain()
    assert (report.attempts, report.delivered) == (1, 1)
    assert world.drain().attempts == 0
    received = world.receiver.received
    assert [r.status for r in received] == [500, 500, 500, 200]
    assert len({r.body for r in received}) == 1  # the same notification, same signature
    done = world.notification(notification.id)
    assert (done.state, done.attempts, done.next_attempt_at) == (ipn_sql.DELIVERED, 4, None)
    shown = world.cli("ipn", "show", notification.id)
    assert [(a["number"], a["http_status"], a["outcome"]) for a in shown["attempt_log"]] == [
        (1, 500, "http_error"),
        (2, 500, "http_error"),
        (3, 500, "http_error"),
        (4, 200, "delivered"),
    ]
    assert all(a["duration_ms"] is not None and a["duration_ms"] >= 0 for a in shown["attempt_log"])
    assert shown["params"]["transactionId"] == pay.id


def test_one_transactions_notifications_arrive_in_the_order_they_were_made(world: World) -> None:
    """A bank FundPrepaid's PENDING and SUCCESS are both due when the deliverer next runs; the
    receiver takes half a second over the first, and the SUCCESS still waits for it."""
    bank = world.prepaid(world.directory.add_bank(world.buyer.id, "110000000", "000123456789"), "b")
    funded = world.fund(bank, "10", "fund-bank")
    world.clock.advance(4 * MICROS_PER_DAY)  # the bank answers after four days
    assert [t.id for t in world.payments.complete_due()] == [funded.id]
    world.receiver.script(Reply(delay_s=0.5))
    report = world.drain(horizon_us=5 * MICROS_PER_DAY)
    assert (report.delivered, report.retrying) == (2, 0)
    arrived = [
        (r.params["transactionId"], r.params["transactionStatus"]) for r in world.receiver.received
    ]
    assert arrived == [(funded.id, "PENDING"), (funded.id, "SUCCESS")]


def test_retry_delays_grow_to_the_cap_with_jitter() -> None:
    import random

    settings = IpnSettings()
    rng = random.Random(7)
    for attempt, full_s in ((1, 30), (2, 60), (5, 480), (10, 15_360), (11, 21_600), (99, 21_600)):
        delays = {retry_delay(settings, attempt, rng) for _ in range(50)}
        full = full_s * MICROS_PER_SECOND
        assert all(full // 2 <= d <= full for d in delays), attempt
        assert len(delays) > 40  # jittered, not one fixed time


def test_past_the_horizon_it_fails_then_an_operator_replays_it(world: World) -> None:
    world.receiver.state.default_status = 503
    music = world.funded()
    pay = world.payments.execute(
        PayRequest(world.merchant.id, "pay-1", music.sender_token.id, usd("1"))
    )
    (notification,) = world.notifications(subject=pay.id)
    horizon = {"horizon_us": 600 * MICROS_PER_SECOND, "base_delay_us": 60 * MICROS_PER_SECOND}
    start = world.clock.now_us()
    for _ in range(20):
        world.drain(**horizon)
        state = world.notification(notification.id)
        if state.state != ipn_sql.PENDING:
            break
        assert state.next_attempt_at is not None
        assert state.next_attempt_at <= start + 600 * MICROS_PER_SECOND
        world.clock.set(state.next_attempt_at)
    failed = world.notification(notification.id)
    assert failed.state == ipn_sql.FAILED
    assert failed.last_error == "HTTP 503"
    assert 3 <= failed.attempts <= 5  # 60 s, 120 s, 240 s … each jittered, within 10 minutes
    assert world.clock.now_us() <= start + 600 * MICROS_PER_SECOND
    listed = world.cli("ipn", "list", "--failed")
    assert [n["id"] for n in listed["notifications"]] == [notification.id]
    assert listed["counts"] == {"pending": 0, "delivered": 0, "failed": 1}

    world.receiver.state.default_status = 200
    retried = world.cli("ipn", "retry", notification.id)
    assert retried["state"] == "pending"
    delivered = world.cli("ipn", "deliver")  # the CLI drains with the sandbox clock
    assert (delivered["attempts"], delivered["delivered"]) == (1, 1)
    assert world.notification(notification.id).state == ipn_sql.DELIVERED
    # A delivered notification can be replayed too: the same notification id again.
    world.cli("ipn", "retry", notification.id)
    assert world.cli("ipn", "deliver")["delivered"] == 1
    ids = {r.params["notificationId"] for r in world.receiver.received}
    assert ids == {notification.id}


def test_redirects_timeouts_and_refused_connections_are_retried(world: World) -> None:
    music = world.funded()
    closed = Receiver()
    closed_url = closed.url("/gone")
    closed.server.server_close()  # nothing listens there any more
    world.receiver.state.routes.update(
        {
            "/moved": Reply(302, headers=(("Location", world.receiver.url("/elsewhere")),)),
            "/slow": Reply(200, delay_s=1.5),
        }
    )
    targets = {
        "redirect": world.receiver.url("/moved"),
        "timeout": world.receiver.url("/slow"),
        "network": closed_url,
    }
    for index, url in enumerate(targets.values()):
        world.payments.execute(
            PayRequest(
                world.merchant.id, f"pay-{index}", music.sender_token.id, usd("1"), ipn_url=url
            )
        )
    report = Deliverer(world.db, world.signer, world.clock, world.settings(timeout_us=500_000))
    result = drain(report)
    assert result.outcomes == {"redirect": 1, "timeout": 1, "network": 1}
    assert result.retrying == 3
    by_url = {n.url: n for n in world.notifications()}
    for outcome, url in targets.items():
        (attempt,) = world.attempts(by_url[url].id)
        assert attempt.outcome == outcome
        assert by_url[url].state == ipn_sql.PENDING
    (redirect,) = world.attempts(by_url[targets["redirect"]].id)
    assert redirect.http_status == 302
    assert not any(r.path == "/elsewhere" for r in world.receiver.received)


def test_ssrf_guard_refuses_private_targets_in_production(world: World) -> None:
    music = world.funded()
    pay = world.payments.execute(
        PayRequest(world.merchant.id, "pay-1", music.sender_token.id, usd("1"))
    )
    report = world.drain(ssrf_guard=True)
    assert (report.attempts, report.failed) == (1, 1)
    (notification,) = world.notifications(subject=pay.id)
    assert notification.state == ipn_sql.FAILED
    assert notification.last_error is not None
    assert "SSRF guard" in notification.last_error
    assert world.receiver.received == []
    # Sandbox mode (the guard off) delivers to the same loopback URL once replayed.
    world.cli("ipn", "retry", notification.id)
    world.clock.set(max(world.clock.now_us(), time.time_ns() // 1000 + MICROS_PER_SECOND))
    assert world.drain().delivered == 1


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
    ],
)
def test_the_guard_allows_only_global_unicast(address: str, ok: bool) -> None:
    import ipaddress

    assert allowed(ipaddress.ip_address(address)) is ok


def test_the_guard_resolves_names_and_pins_the_address() -> None:
    import asyncio

    with pytest.raises(BlockedAddressError):
        asyncio.run(pinned_target("http://localhost:9/ipn"))
    with pytest.raises(BlockedAddressError):
        asyncio.run(pinned_target("http://[::1]/ipn"))
    public = asyncio.run(pinned_target("https://8.8.8.8/ipn?a=1"))
    assert (public.url, public.host_header) == ("https://8.8.8.8/ipn?a=1", None)


def test_settings_from_the_environment() -> None:
    default = IpnSettings.from_env({})
    assert (default.ssrf_guard, default.horizon_us, default.public_url) == (
        False,
        3 * MICROS_PER_DAY,
        "http://127.0.0.1:8080",
    )
    production = IpnSettings.from_env(
        {"PENNY_MODE": "production", "PENNY_PUBLIC_URL": "https://pay.example/"}
    )
    assert (production.ssrf_guard, production.public_url) == (True, "https://pay.example")
    assert not IpnSettings.from_env(
        {"PENNY_MODE": "production", "PENNY_IPN_SSRF_GUARD": "off"}
    ).ssrf_guard
    tuned = IpnSettings.from_env(
        {
            "PENNY_IPN_HORIZON_SECONDS": "3600",
            "PENNY_IPN_WORKERS": "0",
            "PENNY_IPN_TIMEOUT_SECONDS": "1",
        }
    )
    assert (tuned.horizon_us, tuned.lanes, tuned.timeout_us) == (
        3600 * MICROS_PER_SECOND,
        0,
        1_000_000,
    )
    for bad in (
        {"PENNY_MODE": "live"},
        {"PENNY_IPN_SSRF_GUARD": "maybe"},
        {"PENNY_IPN_TIMEOUT_SECONDS": "soon"},
        {"PENNY_IPN_TIMEOUT_SECONDS": "90"},  # longer than the lease
        {"PENNY_PUBLIC_URL": "ftp://x"},
    ):
        with pytest.raises(IpnConfigError):
            IpnSettings.from_env(bad)


# -- through the server ----------------------------------------------------------------------


def test_the_server_delivers_a_pay_made_over_the_fps_api(world: World) -> None:
    music = world.funded()
    world.fund(music, "10", "fund-1")
    world.drain()
    settings = world.settings(poll_us=50_000, lanes=2)
    app = application(world.services, request_clock=True, ipn=settings)
    pay = {
        "SenderTokenId": music.sender_token.id,
        **amount_params("TransactionAmount", "2.50"),
        "CallerReference": "over-http",
        "OverrideIPNURL": world.receiver.url("/from-the-api"),
    }
    moment = fps_timestamp(world.clock.now_us())
    request = signed_fps("Pay", world.access_key, world.secret, pay, timestamp=moment)
    with TestClient(app) as client:
        response = client.get("/?" + urlencode(request))
        assert response.status_code == 200, response.text
        received = world.receiver.wait_for(2, timeout_s=20)
    arrived = received[-1]
    assert arrived.path == "/from-the-api"
    assert (arrived.params["callerReference"], arrived.params["transactionAmount"]) == (
        "over-http",
        "USD 2.50",
    )
    assert world.signer.verify(world.receiver.url("/from-the-api"), arrived.pairs)


def test_set_ipn_url_command(world: World) -> None:
    result = world.cli(
        "accounts", "set-ipn-url", "https://shop.example/ipn", "-a", world.merchant.id
    )
    assert result == {"id": world.merchant.id, "ipn_url": "https://shop.example/ipn"}
    assert (
        world.cli("accounts", "set-ipn-url", "--clear", "-a", world.merchant.id)["ipn_url"] is None
    )
    bad = CliRunner().invoke(
        cli_app,
        ["accounts", "set-ipn-url", "ftp://x", "-a", world.merchant.id, "--database", world.url],
        env={"PENNY_SECRET_KEY": world.key_hex},
    )
    assert bad.exit_code == 2
    assert "http" in bad.output


POSTGRESQL_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)


@POSTGRESQL_ONLY
def test_concurrent_claims_on_postgresql_take_disjoint_rows(world: World) -> None:
    music = world.funded()
    world.payments.submit(
        [
            PayRequest(world.merchant.id, f"pay-{n}", music.sender_token.id, usd("0.01"))
            for n in range(10)
        ]
    )
    now = world.clock.now_us()

    def claim(conn: Any, worker: str) -> set[str]:
        claimed = ipn_sql.claim_due(
            conn,
            now=now,
            limit=6,
            lease_until=now + 60 * MICROS_PER_SECOND,
            worker=worker,
            claim=worker,
            skip_locked=True,
        )
        return {c.id for c in claimed}

    with world.db.write() as first:
        mine = claim(first, "a")
        with world.db.write() as second:  # another process, while the first holds its rows
            theirs = claim(second, "b")
    assert (len(mine), len(theirs)) == (6, 4)
    assert not mine & theirs
    with world.db.write() as third:  # both claims committed: nothing is due any more
        assert claim(third, "c") == set()


def test_the_sandbox_and_withdraw_commands_notify(world: World) -> None:
    """`penny sandbox advance` completes pending transactions and `penny accounts withdraw`
    books one: both go through the outbox like the server."""
    bank = world.prepaid(world.directory.add_bank(world.buyer.id, "110000000", "000123456789"), "b")
    pending = world.fund(bank, "10", "fund-bank")
    world.funded("cash")  # $50 by card, so the merchant has something to withdraw
    withdrawn = world.cli(
        "accounts", "withdraw", "--amount", "5", "--reference", "w-1", "-a", world.merchant.id
    )
    assert withdrawn["status"] == "Pending"
    world.cli("sandbox", "advance", "--days", "4", "--hours", "1")
    statuses = {
        (n.subject_id, dict(n.params)["transactionStatus"], dict(n.params)["operation"])
        for n in world.notifications()
    }
    assert statuses == {
        (pending.id, "PENDING", "FUND_PREPAID"),
        (pending.id, "SUCCESS", "FUND_PREPAID"),
        (withdrawn["transaction_id"], "PENDING", "WITHDRAW_FUNDS"),
        (withdrawn["transaction_id"], "SUCCESS", "WITHDRAW_FUNDS"),
    }
