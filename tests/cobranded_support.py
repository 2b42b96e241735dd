"""Shared set-up of the Co-Branded UI tests (tests/test_cobranded*.py).

A :class:`World` is a fresh store with a merchant (and its API key) and the application over it;
:class:`LiveServer` runs that application on uvicorn in a thread on 127.0.0.1 and
:class:`Receiver` is the merchant's return-URL endpoint, a small HTTP server that records every
request it gets. :func:`signed_start` builds a start URL signed as a merchant would (spec §2.4).
"""

from __future__ import annotations

import re
import secrets
import threading
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from builders import application, new_merchant, open_store, serving, signed_fps, top_up_balance
from penny.domain.parties import Party, PaymentMethodKind
from penny.fps.signature import sign_v2
from penny.parties import Directory
from penny.sandbox.clock import SandboxClock
from penny.security import ServerKey
from penny.services.payments import Payments
from penny.signing import load_signer
from penny.storage.database import Database

START_PATH = "/cobranded-ui/actions/start"
BUYER_PASSWORD = "correct horse battery"
SERVER_WAIT = 20.0


@dataclass
class World:
    db: Database
    key_hex: str
    server_key: ServerKey
    clock: SandboxClock
    directory: Directory
    payments: Payments
    merchant: Party
    access_key: str
    secret: str
    app: Starlette


def make_world(database_url: str, merchant_name: str = "DigitalDownload") -> World:
    key_hex = secrets.token_hex(32)
    server_key = ServerKey.from_hex(key_hex, source="test")
    services = open_store(database_url, sandbox_clock=True, server_key=server_key)
    clock = services.clock
    assert isinstance(clock, SandboxClock)
    merchant = new_merchant(services, merchant_name)
    return World(
        services.database,
        key_hex,
        server_key,
        clock,
        services.directory,
        services.payments,
        merchant.party,
        merchant.access_key,
        merchant.secret,
        application(services),
    )


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    """A merchant's Co-Branded world on the test's store, disposed of afterwards."""
    made = make_world(database_url)
    yield made
    made.db.dispose()


def start_params(world: World, pipeline: str, return_url: str, **more: str) -> dict[str, str]:
    """A start request's parameters (before signing): the merchant's key, the pipeline, the
    CBUI version and where to return, then ``more``."""
    return {
        "callerKey": world.access_key,
        "pipelineName": pipeline,
        "version": "2009-01-09",
        "returnURL": return_url,
        **more,
    }


def _setup_params(
    world: World, pipeline: str, return_url: str, ref: str, second: str, fields: dict[str, str]
) -> dict[str, str]:
    """A SetupPrepaid/SetupPostpaid start: the sender's reference and the ``second`` token's
    (``funding`` or ``settlement``) from ``ref``, then the pipeline's ``fields``."""
    references = {
        "callerReferenceSender": f"{ref}-sender",
        f"callerReference{second.title()}": f"{ref}-{second}",
    }
    return start_params(world, pipeline, return_url, **(references | fields))


def prepaid_params(
    world: World, return_url: str, ref: str = "order-1", **more: str
) -> dict[str, str]:
    expiry = str(world.clock.now_us() // 1_000_000 + 30 * 86_400)
    fields = {"fundingAmount": "25.00", "paymentReason": "Game credits", "validityExpiry": expiry}
    return _setup_params(world, "SetupPrepaid", return_url, ref, "funding", fields | more)


def postpaid_params(
    world: World, return_url: str, ref: str = "tab-1", **more: str
) -> dict[str, str]:
    fields = {"creditLimit": "50", "globalAmountLimit": "500", "paymentReason": "Monthly tab"}
    return _setup_params(world, "SetupPostpaid", return_url, ref, "settlement", fields | more)


def signed_start(world: World, host: str, params: Mapping[str, str], base: str = "") -> str:
    """The start URL with ``params`` signed (HmacSHA256, over the bare host like boto)."""
    signed = {**params, "signatureVersion": "2", "signatureMethod": "HmacSHA256"}
    signed["signature"] = sign_v2(
        world.secret, "GET", host, START_PATH, signed, signature_name="signature"
    )
    return f"{base}{START_PATH}?{urlencode(signed)}"


@dataclass
class LiveServer:
    world: World
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_url(self, params: Mapping[str, str]) -> str:
        return signed_start(self.world, "127.0.0.1", params, self.base)

    def fps(self, action: str, **params: str) -> ET.Element:
        """A signed FPS call (GET, like boto); the XML answer without namespaces."""
        query = fps_query(self.world, "127.0.0.1", action, params)
        return fps_root(httpx.get(f"{self.base}/?{query}", timeout=10).content)

    def verify(self, received: str) -> str:
        """VerifySignature (unsigned, as Amazon's Java library sends it) of a received URL."""
        parts = urlsplit(received)
        endpoint = f"{parts.scheme}://{parts.netloc}{parts.path}"
        query = urlencode(
            {
                "Action": "VerifySignature",
                "UrlEndPoint": endpoint,
                "HttpParameters": parts.query,
                "Version": "2010-08-28",
            }
        )
        answer = httpx.get(f"{self.base}/?{query}", timeout=10)
        return fps_text(fps_root(answer.content), "VerificationStatus")


def fps_query(world: World, host: str, action: str, params: Mapping[str, str]) -> str:
    """The query of an FPS call signed as the world's merchant (GET, like boto)."""
    return urlencode(signed_fps(action, world.access_key, world.secret, params, host=host))


def fps_root(content: bytes) -> ET.Element:
    """An FPS answer's XML without namespaces."""
    root = ET.fromstring(content)
    for node in root.iter():
        node.tag = node.tag.rpartition("}")[2]
    return root


def fps_text(root: ET.Element, tag: str) -> str:
    """The text of the one element named ``tag`` in an answer read by :func:`fps_root` (the
    test fails unless there is exactly one)."""
    found = [node.text for node in root.iter(tag)]
    assert len(found) == 1, (tag, found, ET.tostring(root))
    return found[0] or ""


@contextmanager
def live_server(world: World) -> Iterator[LiveServer]:
    with serving(world.app) as port:
        yield LiveServer(world, port)


@dataclass
class Receiver:
    """The merchant's return-URL endpoint: records each GET (full URL) and says thanks."""

    port: int
    received: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/shop/return"

    def last(self) -> tuple[str, dict[str, str]]:
        assert self.received, "the return URL got no request"
        url = self.received[-1]
        return url, dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


@contextmanager
def receiver() -> Iterator[Receiver]:
    got = Receiver(0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/shop/"):  # not the browser's /favicon.ico
                got.received.append(f"http://127.0.0.1:{got.port}{self.path}")
            body = b"<!doctype html><title>Shop</title><h1>Thanks, back at the shop</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(SERVER_WAIT)


# -- in-process client (Starlette's TestClient) -------------------------------------------------

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # this Starlette prefers the httpx2 fork and warns
    from starlette.testclient import TestClient

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PIPELINE_PATH = re.compile(r"/cobranded-ui/pipelines/([A-Za-z0-9_-]+)/")


class UiClient:
    """One browser, in process: its cookies persist across calls; redirects are not followed."""

    def __init__(
        self, world: World, base_url: str = "http://testserver", app: Starlette | None = None
    ) -> None:
        self.world = world
        self.client: Any = TestClient(app or world.app, base_url=base_url, follow_redirects=False)

    def start(self, params: Mapping[str, str]) -> httpx.Response:
        answer: httpx.Response = self.client.get(signed_start(self.world, "testserver", params))
        return answer

    def open(self, params: Mapping[str, str]) -> tuple[str, str]:
        """Start a pipeline; its id and the CSRF token of the page it lands on."""
        started = self.start(params)
        assert started.status_code == 303, started.text
        location = started.headers["location"]
        match = PIPELINE_PATH.search(location)
        assert match is not None, location
        page = self.client.get(location)
        assert page.status_code == 200, page.text
        return match.group(1), csrf_of(page.text)

    def post(self, pid: str, step: str, data: Mapping[str, str]) -> httpx.Response:
        answer: httpx.Response = self.client.post(
            f"/cobranded-ui/pipelines/{pid}/{step}", data=dict(data)
        )
        return answer

    def get(self, pid: str, step: str) -> httpx.Response:
        answer: httpx.Response = self.client.get(f"/cobranded-ui/pipelines/{pid}/{step}")
        return answer

    def fps(self, action: str, **params: str) -> ET.Element:
        """A signed FPS call in process; the XML answer without namespaces."""
        query = fps_query(self.world, "testserver", action, params)
        return fps_root(self.client.get(f"/?{query}").content)


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, html
    return match.group(1)


def confirmed(
    world: World, params: Mapping[str, str], kind: PaymentMethodKind, email: str
) -> dict[str, str]:
    """A token pipeline run in process: sign in as ``email`` (password
    :data:`BUYER_PASSWORD`), pick their method of ``kind``, review, confirm; the verified
    return parameters, and the review page's text as ``review``."""
    ui = UiClient(world)
    pid, csrf = ui.open({**params, "callerKey": world.access_key})
    signed_in = ui.post(pid, "signin", {"csrf": csrf, "email": email, "password": BUYER_PASSWORD})
    assert signed_in.status_code == 303, signed_in.text
    csrf = csrf_of(ui.get(pid, "method").text)
    buyer = world.directory.party_by_email(email)
    assert buyer is not None
    (method,) = [m for m in world.directory.payment_methods(buyer.id) if m.kind is kind]
    assert ui.post(pid, "method", {"csrf": csrf, "method_id": method.id}).status_code == 303
    review = ui.get(pid, "review")
    assert review.status_code == 200, review.text
    done = ui.post(pid, "confirm", {"csrf": csrf})
    assert done.status_code == 303, done.text
    target = urlsplit(done.headers["location"])
    pairs = parse_qsl(target.query, keep_blank_values=True)
    signer = load_signer(world.db, world.server_key)
    assert signer.verify(f"{target.scheme}://{target.netloc}{target.path}", pairs)
    return dict(pairs) | {"review": review.text}


def add_bea(world: World) -> Party:
    """Bea, a buyer with a card, a bank account and $100.00 on her balance (#16: a balance
    that cannot pay what an authorization may charge cannot be picked)."""
    buyer = world.directory.create_personal("Bea", "bea@example.com", BUYER_PASSWORD)
    world.directory.add_card(buyer.id, "4111111111111111", 12, 2030)
    world.directory.add_bank(buyer.id, "110000000", "000123456789")
    top_up_balance(world.payments, buyer, 10_000)
    return buyer
