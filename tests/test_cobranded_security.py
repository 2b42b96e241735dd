"""Security of the Co-Branded UI pages, in process (Starlette's TestClient), on both stores:
CSRF on every form, no open redirect through returnURL, output escaping (merchant name,
paymentReason, websiteDescription and buyer name with ``<script>``), the sign-in rate limit,
session rotation, the Content-Security-Policy and frame headers, cookie flags, and a
hypothesis fuzz of the start URL and the forms (never a 5xx or a traceback, never a change
from a refused request).

The fuzz runs a few examples by default; ``PENNY_CBUI_FUZZ_EXAMPLES=N`` runs N of each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import quote_from_bytes, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from builders import top_up_balance
from cobranded_support import (
    BUYER_PASSWORD,
    START_PATH,
    UiClient,
    World,
    csrf_of,
    make_world,
    prepaid_params,
    signed_start,
)
from penny.web.cobranded import security

RETURN = "https://shop.example/cbui/return?order=7"
FORMS = ("signin", "register", "method", "card", "bank", "confirm", "cancel", "none", "signout")
STATE_TABLES = (
    "cbui_pipelines",
    "cbui_sessions",
    "parties",
    "payment_methods",
    "instruments",
    "tokens",
)
FUZZ_EXAMPLES = int(os.environ.get("PENNY_CBUI_FUZZ_EXAMPLES", "15"))


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    made = make_world(database_url, merchant_name="Evil <script>alert('m')</script> Shop")
    bea = made.directory.create_personal(
        "Bea <script>alert('b')</script>", "bea@example.com", BUYER_PASSWORD
    )
    top_up_balance(made.payments, bea, 10_000)  # her balance can pay the $25 pipelines
    yield made
    made.db.dispose()


def snapshot(world: World) -> dict[str, list[tuple[object, ...]]]:
    with world.db.read() as conn:
        return {
            table: sorted(
                (tuple(row) for row in conn.execute(text(f"SELECT * FROM {table}"))),
                key=repr,
            )
            for table in STATE_TABLES
        }


def signed_in(world: World, params: dict[str, str] | None = None) -> tuple[UiClient, str, str]:
    """A browser signed in as Bea on a fresh pipeline: the client, pipeline id, CSRF token."""
    ui = UiClient(world)
    pid, csrf = ui.open(params or prepaid_params(world, RETURN))
    answer = ui.post(
        pid, "signin", {"csrf": csrf, "email": "bea@example.com", "password": BUYER_PASSWORD}
    )
    assert answer.status_code == 303, answer.text
    page = ui.get(pid, "method")
    assert page.status_code == 200
    return ui, pid, csrf_of(page.text)


# -- CSRF ---------------------------------------------------------------------------------------


def test_every_form_needs_the_sessions_csrf_token(world: World) -> None:
    ui, pid, csrf = signed_in(world)
    card = {"number": "4111111111111111", "expiry": "12/2030"}
    bank = {"routing": "110000000", "account": "000123456789"}
    fields = {
        "signin": {"email": "bea@example.com", "password": BUYER_PASSWORD},
        "register": {
            "name": "Mal",
            "email": "mal@example.com",
            "password": "x" * 9,
            "password2": "x" * 9,
        },
        "method": {"method_id": "PM"},
        "card": card,
        "bank": bank,
    }
    before = snapshot(world)
    for form in FORMS:
        for token in (None, "", "forged-" + csrf[7:], csrf.upper()):
            data = dict(fields.get(form, {}))
            if token is not None:
                data["csrf"] = token
            answer = ui.post(pid, form, data)
            assert answer.status_code == 403, (form, token, answer.text)
            assert "This form has expired" in answer.text
    assert snapshot(world) == before
    # With the token the same forms work (the check is not refusing everything).
    assert ui.post(pid, "card", {**card, "csrf": csrf}).status_code == 303


def test_a_pipeline_belongs_to_the_browser_that_started_it(world: World) -> None:
    _, pid, csrf = signed_in(world)
    stranger = UiClient(world)
    stranger.open(prepaid_params(world, RETURN, ref="other"))  # has a session of its own
    before = snapshot(world)
    for form in FORMS:
        answer = stranger.post(pid, form, {"csrf": csrf})
        assert answer.status_code == 403
        assert "not open in this browser" in answer.text
    for step in ("signin", "method", "review"):
        assert stranger.get(pid, step).status_code == 403
    assert snapshot(world) == before


# -- redirects ------------------------------------------------------------------------------------


def test_no_redirect_to_an_unverified_return_url(world: World) -> None:
    ui = UiClient(world)
    evil = "https://evil.example/steal"
    params = prepaid_params(world, evil, fundingAmount="0")  # invalid, so an error redirect
    url = signed_start(world, "testserver", params)
    for tampered in (
        url.replace("signature=", "signature=A"),  # a wrong signature
        url.replace("fundingAmount=0", "fundingAmount=1"),  # altered after signing
        f"{START_PATH}?{urlencode(params)}",  # not signed at all
    ):
        answer = ui.client.get(tampered)
        assert answer.status_code == 403
        assert "location" not in answer.headers
        assert "evil.example" not in answer.text
    assert snapshot(world)["cbui_pipelines"] == []


def test_a_signed_error_goes_back_only_to_a_valid_return_url(world: World) -> None:
    ui = UiClient(world)
    for bad in ("javascript:alert(1)", "//evil.example/", "https://evil.example/#x", "data:,x"):
        answer = ui.start(prepaid_params(world, bad))
        assert answer.status_code == 400
        assert "returnURL" in answer.text
        assert 'http-equiv="refresh"' not in answer.text
        assert "Return to" not in answer.text
    answer = ui.start(prepaid_params(world, RETURN, fundingAmount="0"))
    assert answer.status_code == 400
    assert (
        '<a class="button" href="https://shop.example/cbui/return?order=7&amp;status=CE'
        in answer.text
    )


def test_the_success_redirect_goes_to_the_return_url_only(world: World) -> None:
    ui, pid, csrf = signed_in(world)
    methods = world.directory.payment_methods(world.directory.party_by_email("bea@example.com").id)  # type: ignore[union-attr]
    assert ui.post(pid, "method", {"csrf": csrf, "method_id": methods[0].id}).status_code == 303
    done = ui.post(pid, "confirm", {"csrf": csrf})
    assert done.status_code == 303
    target = urlsplit(done.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "shop.example", "/cbui/return")
    assert target.query.startswith("order=7&status=SA&")
    # The answer's CSP lets the form land there, and nowhere else.
    assert "form-action 'self' https://shop.example;" in done.headers["content-security-policy"]
    # Confirming again sends the same answer and creates nothing more.
    before = snapshot(world)
    again = ui.post(pid, "confirm", {"csrf": csrf})
    assert again.headers["location"] == done.headers["location"]
    assert snapshot(world) == before


# -- escaping ------------------------------------------------------------------------------


def test_script_in_any_displayed_field_is_shown_as_text(world: World) -> None:
    params = prepaid_params(
        world,
        RETURN,
        paymentReason="<script>alert('r')</script>",
        websiteDescription="\"><script>alert('w')</script>",
    )
    ui, pid, csrf = signed_in(world, params)
    pages = [ui.get(pid, "signin").text, ui.get(pid, "register").text, ui.get(pid, "method").text]
    bea = world.directory.party_by_email("bea@example.com")
    assert bea is not None
    balance = world.directory.payment_methods(bea.id)[0]
    ui.post(pid, "method", {"csrf": csrf, "method_id": balance.id})
    pages.append(ui.get(pid, "review").text)
    # An error echoing what was typed.
    pages.append(
        ui.post(pid, "card", {"csrf": csrf, "number": "<script>", "expiry": "<script>x"}).text
    )
    for html in pages:
        assert "<script" not in html.lower()
        assert "&lt;script&gt;" in html
    review = pages[3]
    assert "alert(&#39;r&#39;)" in review
    assert "alert(&#39;m&#39;)" in review
    assert "alert(&#39;b&#39;)" in review


# -- sign-in rate limit and sessions ---------------------------------------------------------------


def test_sign_in_is_rate_limited_per_email(world: World) -> None:
    ui = UiClient(world)
    pid, csrf = ui.open(prepaid_params(world, RETURN))
    for _ in range(security.SIGNIN_MAX_PER_EMAIL):
        wrong = ui.post(
            pid, "signin", {"csrf": csrf, "email": "bea@example.com", "password": "nope-nope"}
        )
        assert wrong.status_code == 400
        assert "The email address or the password is wrong." in wrong.text
    right = ui.post(
        pid, "signin", {"csrf": csrf, "email": "BEA@example.com", "password": BUYER_PASSWORD}
    )
    assert right.status_code == 429
    assert "Too many failed sign-in attempts" in right.text
    assert ui.get(pid, "method").status_code == 303  # still not signed in: back to sign-in


def test_sign_in_is_rate_limited_per_client(world: World) -> None:
    ui = UiClient(world)
    pid, csrf = ui.open(prepaid_params(world, RETURN))
    with world.db.write() as conn:  # 30 failures with other emails, as a guesser would make
        conn.execute(
            text("INSERT INTO cbui_signin_failures (subject, at) VALUES (:s, :at)"),
            [{"s": "client:testclient", "at": world.clock.now_us()}]
            * security.SIGNIN_MAX_PER_CLIENT,
        )
    right = ui.post(
        pid, "signin", {"csrf": csrf, "email": "bea@example.com", "password": BUYER_PASSWORD}
    )
    assert right.status_code == 429


def test_signing_in_rotates_the_session_and_the_csrf_token(world: World) -> None:
    ui = UiClient(world)
    pid, csrf = ui.open(prepaid_params(world, RETURN))
    anonymous = ui.client.cookies.get(security.COOKIE_NAME)
    answer = ui.post(
        pid, "signin", {"csrf": csrf, "email": "bea@example.com", "password": BUYER_PASSWORD}
    )
    assert answer.status_code == 303
    assert ui.client.cookies.get(security.COOKIE_NAME) != anonymous
    fresh = csrf_of(ui.get(pid, "method").text)
    assert fresh != csrf
    assert ui.post(pid, "signout", {"csrf": csrf}).status_code == 403  # the old token is dead
    with world.db.read() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT id_hash FROM cbui_sessions"))]
    assert anonymous is not None
    assert security.hash_id(anonymous) not in stored
    assert all(len(value) == 64 for value in stored)  # only hashes are stored


# -- headers and cookies --------------------------------------------------------------------------


def test_every_page_sends_a_strict_policy(world: World) -> None:
    ui, pid, _ = signed_in(world)
    answers = [
        ui.get(pid, "signin"),
        ui.get(pid, "register"),
        ui.get(pid, "method"),
        ui.get(pid, "review"),
        ui.client.get(START_PATH + "?callerKey=nobody"),
        UiClient(world).get(pid, "method"),
    ]
    for answer in answers:
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "script-src" not in policy
        assert "unsafe" not in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert "<script" not in answer.text.lower()
    css = ui.client.get("/cobranded-ui/static/penny.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_cookie_flags(world: World, scheme: str) -> None:
    ui = UiClient(world, base_url=f"{scheme}://testserver")
    answer = ui.start(prepaid_params(world, RETURN))
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    parts = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in parts
    assert "samesite=lax" in parts
    assert "path=/cobranded-ui" in parts
    assert ("secure" in parts) == (scheme == "https")


# -- fuzz -----------------------------------------------------------------------------------------

_NAMES = st.sampled_from(
    [
        "callerKey", "pipelineName", "returnURL", "version", "fundingAmount", "creditLimit",
        "callerReferenceSender", "callerReferenceFunding", "validityExpiry", "validityStart",
        "paymentMethod", "paymentReason", "signature", "signatureMethod", "signatureVersion",
        "recipientToken", "globalAmountLimit", "x",
    ]
)  # fmt: skip
_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "0", "-1", "1e9", "USD", "CC,ACH", "SetupPrepaid", "javascript:x", "%00"]),
)


_OPENED: dict[str, tuple[World, UiClient, str]] = {}


def _check_answer(answer: object) -> None:
    status: int = answer.status_code  # type: ignore[attr-defined]
    body: str = answer.text  # type: ignore[attr-defined]
    assert status < 500, body
    assert "Traceback" not in body


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    changes=st.dictionaries(_NAMES, _VALUES, max_size=4),
    sign=st.booleans(),
    raw=st.binary(max_size=60),
)
def test_fuzz_the_start_url(world: World, changes: dict[str, str], sign: bool, raw: bytes) -> None:
    ui = UiClient(world)
    before = snapshot(world)
    params = {**prepaid_params(world, RETURN, ref="fuzz"), **changes}
    url = signed_start(world, "testserver", params) if sign else f"{START_PATH}?{urlencode(params)}"
    answer = ui.client.get(url)
    _check_answer(answer)
    if answer.status_code != 303:
        assert snapshot(world) == before
    garbage = ui.client.get(START_PATH + "?" + quote_from_bytes(raw, safe="=&%+;"))
    _check_answer(garbage)
    assert garbage.status_code != 303


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    form=st.sampled_from(FORMS),
    data=st.dictionaries(
        st.sampled_from(
            [
                "csrf",
                "email",
                "password",
                "number",
                "expiry",
                "method_id",
                "routing",
                "account",
                "name",
                "password2",
            ]
        ),
        _VALUES,
        max_size=5,
    ),
    body=st.binary(max_size=80),
)
def test_fuzz_the_forms(world: World, form: str, data: dict[str, str], body: bytes) -> None:
    opened = _OPENED.get("last")
    if opened is None or opened[0] is not world:  # one pipeline per world, across examples
        ui = UiClient(world)
        opened = (world, ui, ui.open(prepaid_params(world, RETURN, ref="fuzzform"))[0])
        _OPENED["last"] = opened
    _, ui, pid = opened
    before = snapshot(world)
    answer = ui.post(pid, form, data)  # no valid CSRF token: refused, nothing changes
    _check_answer(answer)
    assert answer.status_code in {400, 403}
    raw = ui.client.post(
        f"/cobranded-ui/pipelines/{pid}/{form}",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    _check_answer(raw)
    assert snapshot(world) == before
