"""The Recipient pipeline (issue #19) in process (Starlette's TestClient), on both stores: a
recipient merchant signs in with its API key, accepts the marketplace's terms and is sent
back with ``status=SR`` and the token ids, signed; cancelling answers ``A``; the CSRF token,
the start request's signature and parameters, a reused ``callerReference`` (``NP``) and the
marketplace signing in as itself are all checked."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from builders import Merchant
from cobranded_support import UiClient, World, csrf_of, start_params, world
from penny.domain.model import TokenStatus
from penny.services import marketplace
from penny.signing import load_signer

RETURN = "https://shop.example/cbui/recipient?seller=7"


__all__ = ["world"]  # the fixture


def recipient_params(world: World, ref: str = "seller-7", **more: str) -> dict[str, str]:
    return start_params(
        world,
        "Recipient",
        RETURN,
        **{
            "callerReference": ref,
            "maxFixedFee": "0.25",
            "maxVariableFee": "5.5",
            "recipientPaysFee": "True",
            **more,
        },
    )


def returned(world: World, location: str) -> dict[str, str]:
    """The return URL's parameters, after checking Penny's signature on it."""
    parts = urlsplit(location)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    signer = load_signer(world.db, world.server_key)
    assert signer.verify(f"{parts.scheme}://{parts.netloc}{parts.path}", pairs)
    return dict(pairs)


def back_link(world: World, html: str) -> dict[str, str]:
    """The error page's signed link back to the marketplace, checked."""
    start = html.index('<a class="button" href="') + len('<a class="button" href="')
    return returned(world, html[start : html.index('"', start)].replace("&amp;", "&"))


def test_a_merchant_accepts_the_terms(world: World) -> None:
    party, key = world.directory.create_business("Elsewhere", "else@example.com")
    seller = Merchant(party, key.access_key_id, key.secret)
    ui = UiClient(world)
    pid, csrf = ui.open(recipient_params(world))
    page = ui.get(pid, "recipient")
    assert "Sign in to accept DigitalDownload" in page.text
    assert "$0.25 USD" in page.text
    assert "5.5%" in page.text
    wrong = ui.post(pid, "recipient/signin", {"csrf": csrf, "access_key": seller.access_key})
    assert wrong.status_code == 400
    assert "The access key or the secret is wrong." in wrong.text
    forged = {"csrf": "nope", "access_key": seller.access_key, "secret": seller.secret}
    assert ui.post(pid, "recipient/signin", forged).status_code == 403
    signed_in = ui.post(
        pid, "recipient/signin", {**forged, "csrf": csrf}
    )  # a new session: a new CSRF token
    assert signed_in.status_code == 303
    review = ui.get(pid, "recipient")
    assert "Accept DigitalDownload" in review.text
    assert "Elsewhere" in review.text
    new_csrf = csrf_of(review.text)
    assert new_csrf != csrf
    assert ui.post(pid, "recipient/confirm", {"csrf": csrf}).status_code == 403
    done = ui.post(pid, "recipient/confirm", {"csrf": new_csrf})
    assert done.status_code == 303
    got = returned(world, done.headers["location"])
    assert got["status"] == "SR"
    assert got["callerReference"] == "seller-7"
    assert got["seller"] == "7"  # the return URL's own query is kept
    token = marketplace.recipient_token(world.payments, world.merchant.id, got["tokenID"])
    assert (token.recipient_id, token.max_fixed_fee, token.max_variable_fee) == (
        seller.id,
        25,
        550,
    )
    assert token.recipient_pays_fee
    assert token.refund_token_id == got["refundTokenID"]
    assert token.status is TokenStatus.active
    # Confirming again answers the same return URL; the reference is now used (NP).
    again = ui.post(pid, "recipient/confirm", {"csrf": new_csrf})
    assert again.headers["location"] == done.headers["location"]
    reused = UiClient(world).start(recipient_params(world))
    assert reused.status_code == 400
    assert back_link(world, reused.text)["status"] == "NP"


def test_cancelling_answers_a(world: World) -> None:
    ui = UiClient(world)
    pid, csrf = ui.open(recipient_params(world, "seller-8"))
    gone = ui.post(pid, "recipient/cancel", {"csrf": csrf})
    got = returned(world, gone.headers["location"])
    assert (got["status"], got["callerReference"]) == ("A", "seller-8")
    assert "tokenID" not in got
    finished = ui.get(pid, "recipient")
    assert "This authorization is finished" in finished.text


def test_the_marketplace_cannot_be_its_own_recipient(world: World) -> None:
    ui = UiClient(world)
    pid, csrf = ui.open(recipient_params(world, "self"))
    own = {"csrf": csrf, "access_key": world.access_key, "secret": world.secret}
    answer = ui.post(pid, "recipient/signin", own)
    assert answer.status_code == 400
    assert "not as it" in answer.text


def test_bad_start_requests(world: World) -> None:
    ui = UiClient(world)
    bad = ui.start(recipient_params(world, maxVariableFee="101", recipientPaysFee="yes"))
    assert bad.status_code == 400
    assert "[maxVariableFee, recipientPaysFee]" in bad.text
    back = back_link(world, bad.text)
    assert (back["status"], back["callerReference"]) == ("CE", "seller-7")
    # The other pipelines' pages are not this pipeline's.
    pid, _csrf = ui.open(recipient_params(world, "seller-9"))
    assert ui.get(pid, "method").status_code == 404
