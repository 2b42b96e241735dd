"""Standard Webhooks verification: the ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` headers Penny's webhook deliveries carry.

The signature is ``v1,`` + base64(HMAC-SHA256(key, ``"{id}.{timestamp}.{body}"``)) where the
key is the base64-decoded part of the ``whsec_…`` secret after the prefix; the header may hold
several space-separated signatures (during a secret's rotation), any one of which may match.
The timestamp must be within five minutes of now, so an old delivery cannot be replayed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Final

SECRET_PREFIX: Final = "whsec_"  # noqa: S105  (a prefix, not a secret)
#: How far (seconds) a delivery's timestamp may be from now, either way.
TOLERANCE: Final = 5 * 60


class WebhookVerificationError(Exception):
    """The delivery is not one signed with this secret, or it is too old (or too new)."""


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not whsec_ followed by base64") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (one ``v1,`` signature) of a delivery."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing header {name}")


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE,
) -> bytes:
    """Check a delivery; its body (bytes) when it is genuine, else WebhookVerificationError.

    ``headers`` may be any mapping (names compared without case); ``body`` is the raw body as
    received, before any JSON parsing."""
    raw = body.encode() if isinstance(body, str) else body
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not stamp.isdigit() or len(stamp) > 12:
        raise WebhookVerificationError("webhook-timestamp is not whole seconds")
    moment = int(stamp)
    current = time.time() if now is None else now
    if moment < current - tolerance:
        raise WebhookVerificationError("the delivery is too old")
    if moment > current + tolerance:
        raise WebhookVerificationError("the delivery's timestamp is in the future")
    expected = sign(secret, msg_id, moment, raw).encode()
    for candidate in signatures.split(" "):
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            return raw
    raise WebhookVerificationError("no signature matches")
