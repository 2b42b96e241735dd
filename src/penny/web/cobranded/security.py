"""What keeps the Co-Branded UI pages safe: random ids and their hashes, CSRF checks, cookie
attributes, response headers (a strict Content-Security-Policy with ``frame-ancestors
'none'``), and the sign-in rate limit's numbers. No I/O here."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from penny.domain.parties import Party, PartyKind

if TYPE_CHECKING:
    from penny.parties import Directory

COOKIE_NAME: Final = "penny_cbui"
COOKIE_PATH: Final = "/cobranded-ui"
#: A browser session lives this long after it was made or last signed in (µs).
SESSION_TTL_US: Final = 60 * 60 * 1_000_000
#: A pipeline must be finished within this long after its start (µs).
PIPELINE_TTL_US: Final = 60 * 60 * 1_000_000
#: Sign-in rate limit: failures counted over this window (µs) ...
SIGNIN_WINDOW_US: Final = 15 * 60 * 1_000_000
#: ... at most this many per email address ...
SIGNIN_MAX_PER_EMAIL: Final = 5
#: ... and this many per client address.
SIGNIN_MAX_PER_CLIENT: Final = 30
#: Accounts one client address may try to create in the same window (each costs an argon2 hash).
REGISTER_MAX_PER_CLIENT: Final = 10

_ORIGIN_HOST: Final = re.compile(
    r"\A[a-z0-9.\-]+(:[0-9]{1,5})?\Z|\A\[[0-9a-f:.]+\](:[0-9]{1,5})?\Z"
)


def new_secret() -> str:
    """A random, URL-safe value with 256 bits of entropy (session ids, CSRF tokens, pipelines)."""
    return secrets.token_urlsafe(32)


def hash_id(value: str) -> str:
    """What is stored for a cookie value: its SHA-256 (a database leak gives no session)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, or ``None`` when it is not safe to put in a
    Content-Security-Policy (anything but a plain host name or IP literal)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or "@" in parts.netloc:
        return None
    netloc = parts.netloc.lower()
    if not _ORIGIN_HOST.match(netloc):
        return None
    return f"{parts.scheme}://{netloc}"


def security_headers(form_targets: tuple[str, ...] = ()) -> dict[str, str]:
    """Headers of every page. ``form_targets`` are the origins a form on the page may end up at
    (the merchant's return URL: a confirm or cancel is answered with a redirect there, and
    ``form-action`` applies to redirects)."""
    form_action = " ".join(("'self'", *form_targets))
    policy = (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def merchant_of(directory: Directory, party_id: str) -> Party:
    """The merchant a known API key or an open pipeline names (``party_id``: the key's party,
    the pipeline's caller): it exists, as accounts are never deleted."""
    merchant = directory.party(party_id)
    assert merchant is not None
    return merchant


def merchant_by_key(directory: Directory, access_key: str, secret: str) -> Party | None:
    """The business account whose API key is ``access_key`` with ``secret`` (the only
    credentials a business has: the account site and the Recipient pipeline sign in with
    them), or None."""
    key = directory.api_key(access_key) if access_key and secret else None
    expected = directory.secret_for(access_key) if key is not None else None
    if key is None or expected is None or not same_token(expected, secret):
        return None
    party = directory.party(key.party_id)
    return party if party is not None and party.kind is PartyKind.business else None
