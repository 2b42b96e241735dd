"""Outbound signatures: what Penny signs on Co-Branded UI return URLs and IPNs (spec §3).

Penny signs with its own RSA key (:mod:`penny.signing`), as FPS did after 2009:
``signatureVersion=2``, ``signatureMethod=RSA-SHA1``, ``certificateUrl`` (where Penny serves the
PEM certificate of that key) and ``signature`` (base64 RSA-SHA1, PKCS#1 v1.5) over

    VERB "\\n" host[:port] "\\n" path "\\n" canonical query of every parameter but ``signature``

where VERB is ``GET`` for a return-URL redirect and ``POST`` for an IPN, the host is the
receiving URL's lower-cased host (with its port unless it is the scheme's default), the path is
the receiving URL's path (decoded, then re-encoded with ``/`` kept; ``/`` when empty) and the
canonical query is the one of inbound Signature Version 2 (:func:`canonical_query`): the
receiving URL's own query parameters and the ones Penny adds, sorted by name.

Verification (:func:`verify_params`) is what the ``VerifySignature`` action and a merchant with
the certificate do: the parameter set and the endpoint must be exactly what Penny signed, the
verb is not transmitted, so both are tried. Whitespace in the signature is ignored (FPS sent
MIME-style base64 with line feeds). Nothing here reads the clock, a database or the network.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from penny.fps.signature import string_to_sign_v2

SIGNATURE_VERSION: Final = "2"
SIGNATURE_METHOD: Final = "RSA-SHA1"
#: The parameters that carry the signature (all four are added to what is signed but the last).
SIGNATURE_PARAMETERS: Final = ("signatureVersion", "signatureMethod", "certificateUrl", "signature")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class OutboundError(ValueError):
    """A URL that cannot carry a signed message (not absolute http(s), or malformed)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a signed message goes: the parts of the receiving URL the signature covers."""

    host: str
    path: str
    query: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """The endpoint of an absolute ``http(s)`` URL (its fragment is ignored)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise OutboundError(f"not a valid URL: {error}") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise OutboundError("the URL must be an absolute http or https URL")
        host = parts.hostname.lower()
        if ":" in host:  # an IPv6 literal keeps its brackets
            host = f"[{host}]"
        if port is not None and port != _DEFAULT_PORTS[scheme]:
            host = f"{host}:{port}"
        query = tuple(parse_qsl(parts.query, keep_blank_values=True))
        return cls(host, unquote(parts.path) or "/", query)


def string_to_sign(verb: str, endpoint: Endpoint, params: Mapping[str, str]) -> str:
    """The text Penny signs for ``params`` (all of them: the URL's own and the added ones)."""
    return string_to_sign_v2(verb, endpoint.host, endpoint.path, params, signature_name="signature")


def rsa_sha1_sign(private_key: rsa.RSAPrivateKey, text: str) -> str:
    """Base64 (one line) of the PKCS#1 v1.5 RSA-SHA1 signature of ``text``'s UTF-8 bytes."""
    raw = private_key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    return base64.b64encode(raw).decode("ascii")


def rsa_sha1_verify(public_key: rsa.RSAPublicKey, text: str, signature: str) -> bool:
    """True when ``signature`` (base64, whitespace ignored) is ``text``'s under ``public_key``."""
    try:
        raw = base64.b64decode("".join(signature.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw, text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    except InvalidSignature:
        return False
    return True


def sign_params(
    private_key: rsa.RSAPrivateKey,
    certificate_url: str,
    verb: str,
    url: str,
    params: Mapping[str, str],
) -> dict[str, str]:
    """``params`` with the four signature parameters added, signed for ``verb`` to ``url``.

    The URL's own query parameters are signed too (the receiver sees them among the others)
    but are not repeated in the answer. A name in both is refused: the receiver could not tell
    which value was signed.
    """
    endpoint = Endpoint.parse(url)
    own = dict(endpoint.query)
    if len(own) != len(endpoint.query):
        raise OutboundError("the URL repeats a query parameter")
    clash = sorted(set(own) & (set(params) | set(SIGNATURE_PARAMETERS)))
    if clash:
        raise OutboundError(f"the URL already has the parameter {clash[0]}")
    added = {
        **params,
        "signatureVersion": SIGNATURE_VERSION,
        "signatureMethod": SIGNATURE_METHOD,
        "certificateUrl": certificate_url,
    }
    text = string_to_sign(verb, endpoint, {**own, **added})
    return {**added, "signature": rsa_sha1_sign(private_key, text)}


def signed_redirect(
    private_key: rsa.RSAPrivateKey, certificate_url: str, url: str, params: Mapping[str, str]
) -> str:
    """``url`` with ``params`` and their GET signature appended to its query."""
    signed = sign_params(private_key, certificate_url, "GET", url, params)
    parts = urlsplit(url)
    extra = urlencode(signed)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))


def verify_params(
    public_key: rsa.RSAPublicKey, url_endpoint: str, pairs: Sequence[tuple[str, str]]
) -> bool:
    """True when ``pairs`` (every received parameter, ``signature`` included) are exactly a
    message Penny signed for ``url_endpoint`` (by GET or by POST)."""
    params = dict(pairs)
    if len(params) != len(pairs):
        return False  # Penny never sends a name twice
    try:
        endpoint = Endpoint.parse(url_endpoint)
    except OutboundError:
        return False
    for name, value in endpoint.query:
        if params.setdefault(name, value) != value:
            return False
    signature = params.get("signature")
    if signature is None:
        return False
    if params.get("signatureVersion") != SIGNATURE_VERSION:
        return False
    if params.get("signatureMethod") != SIGNATURE_METHOD:
        return False
    return any(
        rsa_sha1_verify(public_key, string_to_sign(verb, endpoint, params), signature)
        for verb in ("GET", "POST")
    )
