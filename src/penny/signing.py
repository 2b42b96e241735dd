"""Penny's own signing key pair: it signs return URLs and IPNs, and serves its certificate.

The first Penny process that needs it makes a 2048-bit RSA key and a self-signed X.509
certificate and stores them in the database (table ``signing_keys``): the private key sealed
with the server key (:class:`~penny.security.ServerKey`, AES-GCM), so a database dump does not
reveal it. Every process sharing the database then signs with that one key; when two start at
once, the unique ``current`` slot lets one win and the other reads the winner's key.

The certificate is served at ``/certs/<key id>/PKICert.pem`` (the path FPS used); the key id
names the key, so a retired key's signatures stay verifiable after a new one is made.
The wire format is in :mod:`penny.fps.outbound`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy.exc import IntegrityError

from penny.clock import Clock, SystemClock
from penny.epoch import second_of
from penny.fps import outbound
from penny.security import ServerKey
from penny.storage import signing_sql
from penny.storage.database import Database

KEY_BITS: Final = 2048
CERTIFICATE_YEARS: Final = 20
_CERTIFICATE_PATH: Final = re.compile(r"\A/certs/(?P<key_id>[0-9a-f]{16})/PKICert\.pem\Z")


@dataclass(frozen=True, slots=True)
class SigningKey:
    key_id: str
    private_key: rsa.RSAPrivateKey
    certificate_pem: str

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def certificate_path(self) -> str:
        return f"/certs/{self.key_id}/PKICert.pem"


class Signer:
    """Signs with the current key; verifies with whichever key a message names."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        assert keys, "a signer needs at least its current key"
        self.current = keys[0]
        self._by_id = {key.key_id: key for key in keys}

    def certificate_url(self, base_url: str) -> str:
        """Where ``base_url`` (Penny's public address) serves the current certificate."""
        return base_url.rstrip("/") + self.current.certificate_path()

    def certificate_pem(self, key_id: str) -> str | None:
        key = self._by_id.get(key_id)
        return None if key is None else key.certificate_pem

    def signed_redirect(self, base_url: str, url: str, params: Mapping[str, str]) -> str:
        """``url`` with ``params`` and a GET signature added (a return-URL redirect)."""
        return outbound.signed_redirect(
            self.current.private_key, self.certificate_url(base_url), url, params
        )

    def signed_post(self, base_url: str, url: str, params: Mapping[str, str]) -> dict[str, str]:
        """The form fields of a POST of ``params`` to ``url`` (an IPN), signature included."""
        return outbound.sign_params(
            self.current.private_key, self.certificate_url(base_url), "POST", url, params
        )

    def verify(self, url_endpoint: str, pairs: Sequence[tuple[str, str]]) -> bool:
        """True when ``pairs`` are exactly what Penny signed for ``url_endpoint``."""
        certificate_url = dict(pairs).get("certificateUrl", "")
        match = _CERTIFICATE_PATH.match(urlsplit(certificate_url).path)
        key = None if match is None else self._by_id.get(match["key_id"])
        if key is None:
            return False
        return outbound.verify_params(key.public_key, url_endpoint, pairs)


def load_signer(database: Database, server_key: ServerKey, clock: Clock | None = None) -> Signer:
    """The signer of ``database``'s keys, making the first key if there is none."""
    with database.read() as conn:
        stored = signing_sql.load_keys(conn)
    if not any(key.current for key in stored):
        made = new_signing_key(clock or SystemClock())
        sealed = server_key.encrypt_secret(_private_pem(made.private_key), _label(made.key_id))
        row = signing_sql.StoredKey(made.key_id, True, sealed, made.certificate_pem)
        try:
            with database.write() as conn:
                signing_sql.insert_current_key(conn, row, (clock or SystemClock()).now_us())
        except IntegrityError:
            pass  # another process stored its key first: use that one
        with database.read() as conn:
            stored = signing_sql.load_keys(conn)
    keys = [
        SigningKey(
            key.key_id,
            _load_private(server_key.decrypt_secret(key.sealed_private_key, _label(key.key_id))),
            key.certificate_pem,
        )
        for key in stored
    ]
    return Signer(keys)


def new_signing_key(clock: Clock) -> SigningKey:
    """A new RSA key and its self-signed certificate (valid from now for 20 years)."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_id = hashlib.sha256(public_der).hexdigest()[:16]
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Penny"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Penny outbound signing key {key_id}"),
        ]
    )
    start = second_of(clock.now_us())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(days=1))
        .not_valid_after(start + dt.timedelta(days=365 * CERTIFICATE_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return SigningKey(key_id, private_key, pem)


def _label(key_id: str) -> str:
    return f"signing-key:{key_id}"


def _private_pem(private_key: rsa.RSAPrivateKey) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _load_private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    assert isinstance(key, rsa.RSAPrivateKey), "Penny only stores RSA signing keys"
    return key
