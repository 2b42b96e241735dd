"""The Standard Webhooks signature scheme (https://www.standardwebhooks.com/).

A secret is ``whsec_`` and the base64 of 24 random bytes. A message is signed as
``v1,<base64 of HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`` where the key
is the secret's base64-decoded part after ``whsec_`` and the timestamp is in whole seconds
since the epoch; receivers refuse timestamps more than 5 minutes away from their clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 24


def new_secret() -> str:
    """A fresh ``whsec_`` secret."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def key_of(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret."""
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of ``body`` (``v1,<base64 HMAC-SHA256>``)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(
    secret: str, message_id: str, timestamp: int, body: bytes
) -> tuple[tuple[str, str], ...]:
    """The three headers a delivery carries."""
    return (
        ("webhook-id", message_id),
        ("webhook-timestamp", str(timestamp)),
        ("webhook-signature", sign(secret, message_id, timestamp, body)),
    )
