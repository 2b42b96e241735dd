"""Outbound signatures (spec §3): Penny's key pair, signed return URLs and POSTs, the
certificate Penny serves, and the VerifySignature action, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import select

from builders import verify_signature
from penny.clock import ManualClock
from penny.fps import outbound
from penny.security import ServerKey
from penny.signing import Signer, load_signer
from penny.storage import signing_sql
from penny.storage.database import Database, open_database
from penny.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "https://penny.example:8443"
RETURN = "https://shop.example/cbui/return?order=42"


@dataclass
class Fixture:
    db: Database
    key: ServerKey
    signer: Signer


@pytest.fixture
def signing(database_url: str) -> Iterator[Fixture]:
    db = open_database(database_url)
    key = ServerKey.generate()
    yield Fixture(db, key, load_signer(db, key, ManualClock()))
    db.dispose()


def _received(url: str) -> tuple[str, list[tuple[str, str]]]:
    """What a merchant's server sees: the endpoint and every query parameter."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qsl(parts.query, True)


# -- the key ---------------------------------------------------------------------------------


def test_the_key_is_made_once_and_kept_sealed(signing: Fixture) -> None:
    again = load_signer(signing.db, signing.key)
    assert again.current.key_id == signing.signer.current.key_id
    with signing.db.read() as conn:
        (row,) = conn.execute(select(signing_sql.signing_keys)).all()
    assert b"PRIVATE KEY" not in bytes(row.private_key)  # sealed, not PEM in clear
    assert row.slot == "current"
    certificate = x509.load_pem_x509_certificate(row.certificate_pem.encode())
    public = certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 2048


def test_a_second_process_uses_the_first_ones_key(signing: Fixture) -> None:
    # Simulates losing the race: a key is already current when another process makes its own.
    with signing.db.read() as conn:
        assert len(signing_sql.load_keys(conn)) == 1
    other = load_signer(signing.db, signing.key, ManualClock())
    assert other.current.key_id == signing.signer.current.key_id


# -- signing and verifying -------------------------------------------------------------------


def test_a_signed_redirect_verifies_and_any_change_fails(signing: Fixture) -> None:
    signer = signing.signer
    url = signer.signed_redirect(BASE, RETURN, {"status": "SC", "tokenID": "T1", "expiry": ""})
    endpoint, pairs = _received(url)
    assert endpoint == "https://shop.example/cbui/return"
    names = [name for name, _ in pairs]
    assert names[0] == "order"  # the return URL's own parameter stays first, unchanged
    assert set(names) == {
        "order",
        "status",
        "tokenID",
        "expiry",
        "signatureVersion",
        "signatureMethod",
        "certificateUrl",
        "signature",
    }
    values = dict(pairs)
    assert values["certificateUrl"] == f"{BASE}{signer.current.certificate_path()}"
    assert values["signatureMethod"] == "RSA-SHA1"
    assert signer.verify(endpoint, pairs)
    assert signer.verify(endpoint + "?order=42", [p for p in pairs if p[0] != "order"])

    def changed(name: str, value: str) -> list[tuple[str, str]]:
        return [(n, value if n == name else v) for n, v in pairs]

    assert not signer.verify(endpoint, changed("status", "SA"))  # altered
    assert not signer.verify(endpoint, changed("order", "43"))  # the URL's own parameter
    assert not signer.verify(endpoint, [*pairs, ("id", "7")])  # added
    assert not signer.verify(endpoint, [p for p in pairs if p[0] != "expiry"])  # removed
    assert not signer.verify(endpoint + "/", pairs)  # moved: trailing slash
    assert not signer.verify("https://evil.example/cbui/return", pairs)  # moved: host
    assert not signer.verify(endpoint, [*pairs, ("status", "SC")])  # a name twice
    assert not signer.verify(endpoint, changed("signatureMethod", "HmacSHA256"))
    assert not signer.verify(endpoint, changed("certificateUrl", f"{BASE}/certs/0/PKICert.pem"))


def test_the_signature_is_rsa_sha1_over_the_documented_string(signing: Fixture) -> None:
    """A merchant can verify offline with the certificate alone (docs/cobranded-ui.md)."""
    signer = signing.signer
    fields = signer.signed_post(BASE, "http://127.0.0.1:9000/ipn", {"transactionId": "X"})
    key_id = signer.current.key_id
    text = (
        "POST\n127.0.0.1:9000\n/ipn\n"
        f"certificateUrl=https%3A%2F%2Fpenny.example%3A8443%2Fcerts%2F{key_id}%2FPKICert.pem"
        "&signatureMethod=RSA-SHA1&signatureVersion=2&transactionId=X"
    )
    certificate = x509.load_pem_x509_certificate(signer.current.certificate_pem.encode())
    public = certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    signature = base64.b64decode(fields["signature"])
    public.verify(signature, text.encode(), padding.PKCS1v15(), hashes.SHA1())
    # A POST signature is not a GET one, but VerifySignature tries both verbs.
    assert signer.verify("http://127.0.0.1:9000/ipn", list(fields.items()))


def test_line_feeds_in_the_signature_are_ignored(signing: Fixture) -> None:
    signer = signing.signer
    fields = signer.signed_post(BASE, "https://shop.example/ipn", {"a": "1"})
    wrapped = fields["signature"]
    fields["signature"] = "\n".join(wrapped[i : i + 76] for i in range(0, len(wrapped), 76))
    assert signer.verify("https://shop.example/ipn", list(fields.items()))


def test_urls_that_cannot_be_signed_are_refused(signing: Fixture) -> None:
    signer = signing.signer
    for bad in ("javascript:alert(1)", "/relative", "ftp://shop.example/", "https://"):
        with pytest.raises(outbound.OutboundError):
            signer.signed_redirect(BASE, bad, {"status": "A"})
    with pytest.raises(outbound.OutboundError, match="already has the parameter status"):
        signer.signed_redirect(BASE, "https://shop.example/r?status=x", {"status": "A"})


# -- over HTTP -------------------------------------------------------------------------------


def test_penny_serves_its_certificate_and_verify_signature(signing: Fixture) -> None:
    app = create_app(signing.db, clock=ManualClock(), server_key=signing.key)
    signer = signing.signer
    url = signer.signed_redirect("http://testserver", RETURN, {"status": "SA", "tokenID": "T"})
    endpoint, pairs = _received(url)
    with TestClient(app) as client:
        pem = client.get(signer.current.certificate_path())
        assert pem.status_code == 200
        assert pem.text == signer.current.certificate_pem
        assert client.get("/certs/0123456789abcdef/PKICert.pem").status_code == 404

        def verify(http_parameters: str, url_endpoint: str = endpoint) -> str:
            return verify_signature(client, url_endpoint, http_parameters)

        assert verify(urlencode(pairs)) == "Success"
        altered = [(n, "SB" if n == "status" else v) for n, v in pairs]
        assert verify(urlencode(altered)) == "Failure"
        assert verify(urlencode([*pairs, ("id", "1")])) == "Failure"
        assert verify(urlencode(pairs), endpoint + "/") == "Failure"
