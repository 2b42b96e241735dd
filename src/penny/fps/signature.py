"""AWS Signature Version 2, as FPS callers sign their requests (spec ``fps-api.md`` §2).

:func:`string_to_sign_v2` and :func:`sign_v2` are the exact construction of §2.2;
:func:`matching_host` is the one comparison of a given signature with the expected one (the
FPS API's ``Signature`` and the Co-Branded UI's ``signature`` alike); :func:`verify_request`
checks a parsed request's authentication parameters, timestamp, key and signature and answers
a :class:`VerifiedCaller` or a :class:`SignatureFailure` carrying the FPS error to send back.
Time is integer microseconds since the epoch throughout.

Decisions (also in ``docs/fps-wire.md``):

* Only ``SignatureVersion=2`` is accepted. 0 and 1 (spec §2.3) get ``InvalidParameterValue``:
  FPS itself stopped accepting them on 2011-02-10, and v1's case-insensitive, unencoded
  concatenation is ambiguous (two different requests can share a signature).
* An unknown or revoked access key is ``InvalidClientTokenId`` (HTTP 403): that is FPS's code
  (spec §4.3 table, boto's exception classes); ``InvalidAccessKeyId`` is S3's.
* A missing authentication parameter is ``MissingParameter``; a malformed one (version, method,
  Timestamp, Expires) ``InvalidParameterValue``, the code real FPS used for a malformed
  Timestamp; Timestamp and Expires together ``InvalidParameterCombination``; a stale or
  future Timestamp, or a past Expires, ``RequestExpired``; a wrong signature
  ``SignatureDoesNotMatch`` (HTTP 403), whose message shows the string to sign we computed
  (never the secret, never the signature we expected: that would be a valid signature).
* The host is tried as received in the Host header, then without its port if it has one
  (boto, the Java and the PHP API clients sign the bare host name), or with the server's port
  if it has none and the caller says which port it serves (a client that signs ``host:port``
  behind a proxy that dropped the port).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Final, Literal, TypeGuard
from urllib.parse import quote

from penny.epoch import from_datetime
from penny.fps.wire import (
    HTTP_FORBIDDEN,
    INVALID_CLIENT_TOKEN_ID,
    INVALID_PARAMETER_COMBINATION,
    MISSING_PARAMETER,
    REQUEST_EXPIRED,
    SIGNATURE_DOES_NOT_MATCH,
    WireFault,
    fps_datetime,
    invalid_value,
    missing_parameter,
)

SignatureMethod = Literal["HmacSHA256", "HmacSHA1"]

_DIGESTS: Final = {"HmacSHA256": hashlib.sha256, "HmacSHA1": hashlib.sha1}

#: Default tolerance between a request's Timestamp and the server's clock (AWS practice, §2.1).
DEFAULT_WINDOW_US: Final = 15 * 60 * 1_000_000

#: RFC 3986 unreserved characters, the only ones left unencoded (spec §2.2).
_UNRESERVED: Final = "-_.~"


@dataclass(frozen=True, slots=True)
class VerifiedCaller:
    """A request whose signature checked out: who signed it, how, and for which host form."""

    access_key_id: str
    signature_method: SignatureMethod
    signed_host: str


@dataclass(frozen=True, slots=True)
class SignatureFailure(WireFault):
    """A request refused by authentication: the FPS error code, message and HTTP status."""


# -- the string to sign ------------------------------------------------------------------------


def rfc3986(text: str) -> str:
    """Percent-encode the UTF-8 bytes of ``text`` except ``A-Z a-z 0-9 - _ . ~`` (uppercase hex)."""
    if _ALL_UNRESERVED.match(text):
        return text  # most names and values (ids, amounts, references): nothing to encode
    return quote(text.encode("utf-8"), safe=_UNRESERVED)


_ALL_UNRESERVED: Final = re.compile(r"[A-Za-z0-9_.~-]*\Z")


def canonical_query(params: Mapping[str, str], signature_name: str = "Signature") -> str:
    """Encoded ``name=value`` pairs sorted by the bytes of the name, without ``signature_name``."""
    # Code-point order is the order of the UTF-8 bytes (decoded names hold no surrogates).
    names = sorted(name for name in params if name != signature_name)
    return "&".join(f"{rfc3986(name)}={rfc3986(params[name])}" for name in names)


def string_to_sign_v2(
    method: str,
    host: str,
    path: str,
    params: Mapping[str, str],
    *,
    signature_name: str = "Signature",
) -> str:
    """The Signature Version 2 string to sign (spec §2.2).

    ``method`` is upper-cased, ``host`` (as signed, with or without a port) lower-cased;
    ``path`` is the decoded request path, encoded here with ``/`` kept (``/`` when empty).
    ``signature_name`` is the parameter left out: ``Signature`` for the API, ``signature`` for
    Co-Branded UI requests (spec §2.4).
    """
    query = canonical_query(params, signature_name)
    return _string_to_sign(method, host, path, query)


def _string_to_sign(method: str, host: str, path: str, query: str) -> str:
    encoded_path = quote((path or "/").encode("utf-8"), safe="/" + _UNRESERVED)
    return f"{method.upper()}\n{host.lower()}\n{encoded_path}\n{query}"


def _signature(secret: str, text: str, algorithm: SignatureMethod) -> str:
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), _DIGESTS[algorithm])
    return base64.b64encode(digest.digest()).decode("ascii")


def sign_v2(
    secret: str,
    method: str,
    host: str,
    path: str,
    params: Mapping[str, str],
    algorithm: SignatureMethod = "HmacSHA256",
    *,
    signature_name: str = "Signature",
) -> str:
    """The base64 ``Signature`` of a request, computed with ``secret`` by ``algorithm``."""
    text = string_to_sign_v2(method, host, path, params, signature_name=signature_name)
    return _signature(secret, text, algorithm)


# -- hosts -------------------------------------------------------------------------------------

_HOST_PORT: Final = re.compile(r"\A(?P<name>\[[^\]]*\]|[^:\[\]]*):(?P<port>[0-9]{1,5})\Z")


def split_host_port(host: str) -> tuple[str, str | None]:
    """``"example.com:8080"`` → ``("example.com", "8080")``; ``[::1]:80`` works, no port → None."""
    match = _HOST_PORT.match(host)
    if match is None:
        return host, None
    return match.group("name"), match.group("port")


def candidate_hosts(host: str, server_port: int | None = None) -> tuple[str, ...]:
    """The host forms a signature is checked against, in order (see the module docstring)."""
    name, port = split_host_port(host)
    if port is not None:
        return (host, name)
    if server_port is not None:
        return (host, f"{host}:{server_port}")
    return (host,)


# -- timestamps --------------------------------------------------------------------------------

_ISO8601: Final = re.compile(
    r"\A([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?\Z"
)


def _zone(designator: str | None) -> timezone:
    """``Z``, absent (UTC), ``±HH``, ``±HHMM`` or ``±HH:MM``; ValueError when out of range."""
    if designator is None or designator == "Z":
        return UTC
    digits = designator[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or "0")
    if minutes >= 60:
        raise ValueError("offset minutes out of range")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if designator[0] == "-" else offset)


def parse_timestamp(text: str) -> int | None:
    """An ISO 8601 date-time as microseconds since the epoch, or ``None`` if malformed.

    Accepts what FPS clients send (spec §2.1): ``2012-01-01T00:00:00Z`` (boto),
    ``2010-08-28T12:00:00.000Z`` (Java, PHP), ``2012-06-01T10:00:00-07:00`` (Ruby), also
    ``+0000`` and no zone at all (UTC). Fractions beyond microseconds are truncated.
    """
    match = _ISO8601.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "").ljust(6, "0")[:6])
    try:
        tzinfo = _zone(zone)
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo
        )
    except ValueError:
        return None
    return from_datetime(moment)


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claim:
    """The authentication parameters of a request, present and well-formed."""

    access_key_id: str
    method: SignatureMethod


def _failure(error: WireFault) -> SignatureFailure:
    return SignatureFailure(error.code, error.message, error.http_status)


def _claim(params: Mapping[str, str]) -> _Claim | SignatureFailure:
    for name in ("AWSAccessKeyId", "Signature", "SignatureVersion"):
        if not params.get(name):
            return _failure(missing_parameter(name))
    version = params["SignatureVersion"]
    if version != "2":
        why = "Only signature version 2 is supported (FPS retired versions 0 and 1 in 2011)."
        return _failure(invalid_value("SignatureVersion", version, why))
    method = params.get("SignatureMethod", "")
    if not method:
        return _failure(missing_parameter("SignatureMethod"))
    if not is_signature_method(method):
        why = "Supported values are HmacSHA256 and HmacSHA1."
        return _failure(invalid_value("SignatureMethod", method, why))
    return _Claim(params["AWSAccessKeyId"], method)


def _expired(message: str) -> SignatureFailure:
    return SignatureFailure(REQUEST_EXPIRED, message)


def _check_timestamp(text: str, now_us: int, window_us: int) -> SignatureFailure | None:
    moment = parse_timestamp(text)
    if moment is None:
        return _failure(invalid_value("Timestamp", text, "Must be in ISO8601 format."))
    server = f"the server's time is {fps_datetime(now_us)}"
    window = f"at most {window_us // 1_000_000} seconds of difference are accepted"
    if now_us - moment > window_us:
        return _expired(f"Request has expired. Timestamp date is {text}; {server}, {window}.")
    if moment - now_us > window_us:
        return _expired(
            f"Request timestamp is too far in the future. Timestamp date is {text}; "
            f"{server}, {window}."
        )
    return None


def _check_expires(text: str, now_us: int) -> SignatureFailure | None:
    moment = parse_timestamp(text)
    if moment is None:
        return _failure(invalid_value("Expires", text, "Must be in ISO8601 format."))
    if now_us > moment:
        return _expired(
            f"Request has expired. Expires date is {text}; the server's time is "
            f"{fps_datetime(now_us)}."
        )
    return None


def _check_time(params: Mapping[str, str], now_us: int, window_us: int) -> SignatureFailure | None:
    timestamp, expires = params.get("Timestamp", ""), params.get("Expires", "")
    if timestamp and expires:
        return SignatureFailure(
            INVALID_PARAMETER_COMBINATION,
            "The request may contain Timestamp or Expires, not both.",
        )
    if timestamp:
        return _check_timestamp(timestamp, now_us, window_us)
    if expires:
        return _check_expires(expires, now_us)
    return SignatureFailure(
        MISSING_PARAMETER, "The request must contain the parameter Timestamp or Expires."
    )


_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


def _mismatch(string_to_sign: str, method: SignatureMethod, hosts: tuple[str, ...]) -> str:
    others = "".join(f"; host {host} was tried too" for host in hosts[1:])
    return f"{_MISMATCH} The string to sign ({method}{others}) was:\n{string_to_sign}"


def is_signature_method(name: str) -> TypeGuard[SignatureMethod]:
    """Whether ``name`` is a supported ``SignatureMethod`` (HmacSHA256 or HmacSHA1)."""
    return name in _DIGESTS


def matching_host(
    secret: str,
    method: str,
    hosts: tuple[str, ...],
    path: str,
    params: Mapping[str, str],
    algorithm: SignatureMethod,
    *,
    signature_name: str = "Signature",
) -> str | None:
    """The first of ``hosts`` for which ``params[signature_name]`` is the request's signature
    under ``secret``, or ``None`` when it matches none (or is missing).

    The one Signature V2 comparison, for the FPS API (``Signature``) and the Co-Branded UI's
    start requests (``signature``, spec §2.4). A ``+`` sent unencoded in a query string
    arrives as a space; base64 never holds a space, so a space is compared as ``+``. The
    comparison takes constant time.
    """
    provided = params.get(signature_name, "").replace(" ", "+").encode("utf-8")
    if not provided:
        return None
    query = canonical_query(params, signature_name)  # the same for every host tried
    for host in hosts:
        expected = _signature(secret, _string_to_sign(method, host, path, query), algorithm)
        if hmac.compare_digest(expected.encode("ascii"), provided):
            return host
    return None


def _check_signature(
    method: str,
    hosts: tuple[str, ...],
    path: str,
    params: Mapping[str, str],
    secret: str,
    claim: _Claim,
) -> VerifiedCaller | SignatureFailure:
    host = matching_host(secret, method, hosts, path, params, claim.method)
    if host is not None:
        return VerifiedCaller(claim.access_key_id, claim.method, host)
    shown = string_to_sign_v2(method, hosts[0], path, params)
    return SignatureFailure(
        SIGNATURE_DOES_NOT_MATCH, _mismatch(shown, claim.method, hosts), HTTP_FORBIDDEN
    )


def verify_request(
    method: str,
    host: str,
    path: str,
    params: Mapping[str, str],
    *,
    secret_for: Callable[[str], str | None],
    now_us: int,
    window_us: int = DEFAULT_WINDOW_US,
    server_port: int | None = None,
) -> VerifiedCaller | SignatureFailure:
    """Authenticate a parsed FPS request (spec §2.1, §2.2).

    ``host`` is the Host header as received; ``path`` the decoded request path; ``params``
    every parameter of the request (as :func:`penny.fps.decode.parse_request` gives them),
    ``Signature`` included. ``secret_for`` maps an access key id to its secret, ``None`` for an
    unknown or revoked key (``Directory.secret_for``); it is asked only once the request is
    otherwise well-formed and in time. Checks, in order: the authentication parameters are
    present and supported, the Timestamp is within ``window_us`` of ``now_us`` (or Expires
    not past), the key is known, and the signature matches for one of :func:`candidate_hosts`.
    """
    claim = _claim(params)
    if isinstance(claim, SignatureFailure):
        return claim
    late = _check_time(params, now_us, window_us)
    if late is not None:
        return late
    secret = secret_for(claim.access_key_id)
    if secret is None:
        return SignatureFailure(
            INVALID_CLIENT_TOKEN_ID,
            "The AWS Access Key Id you provided does not exist in our records.",
            HTTP_FORBIDDEN,
        )
    hosts = candidate_hosts(host, server_port)
    return _check_signature(method, hosts, path, params, secret, claim)
