"""Merchants' webhook endpoints: add, list, remove, rotate a secret (the API and
``penny webhooks`` both come here).

An endpoint's ``whsec_`` secret is made here, returned once, and stored sealed with the server
key (:meth:`penny.security.ServerKey.encrypt_secret`, the endpoint id bound in), as API secrets
are: the delivering process unseals it to sign.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from sqlalchemy import Connection

from penny.domain.parties import random_id
from penny.ipn.outbox import refusal_of
from penny.security import ServerKey
from penny.storage import webhooks_sql
from penny.storage.webhooks_sql import Endpoint
from penny.webhooks.signature import new_secret

ENDPOINT_PREFIX: Final = "we_"
MAX_URL: Final = 2048


class EndpointError(ValueError):
    """An endpoint that cannot be made as asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class WithSecret:
    """An endpoint and its clear secret, the one time it is shown."""

    endpoint: Endpoint
    secret: str


def create(
    conn: Connection,
    server_key: ServerKey,
    account_id: str,
    url: str,
    *,
    event_types: Sequence[str] = (),
    description: str = "",
    enabled: bool = True,
    now: int,
) -> WithSecret:
    """A new endpoint of ``account_id`` (``event_types`` empty: every type)."""
    if not url.isascii() or not url.isprintable() or " " in url or len(url) > MAX_URL:
        raise EndpointError("a URL is at most 2048 printable ASCII characters, no spaces")
    refusal = refusal_of(url)
    if refusal is not None or not url.startswith(("http://", "https://")):
        raise EndpointError(f"the URL is {refusal or 'not http(s)'}")
    endpoint_id = ENDPOINT_PREFIX + random_id(24)
    secret = new_secret()
    endpoint = Endpoint(
        id=endpoint_id,
        account_id=account_id,
        url=url,
        sealed_secret=server_key.encrypt_secret(secret, endpoint_id),
        event_types=tuple(dict.fromkeys(event_types)),
        enabled=enabled,
        description=description,
        created_at=now,
    )
    webhooks_sql.insert_endpoint(conn, endpoint)
    return WithSecret(endpoint, secret)


def rotate_secret(
    conn: Connection, server_key: ServerKey, endpoint_id: str, account_id: str | None = None
) -> WithSecret | None:
    """A new secret for the endpoint (deliveries from now on are signed with it)."""
    found = webhooks_sql.load_endpoint(conn, account_id, endpoint_id)
    if found is None:
        return None
    secret = new_secret()
    sealed = server_key.encrypt_secret(secret, endpoint_id)
    webhooks_sql.set_secret(conn, endpoint_id, sealed)
    return WithSecret(replace(found, sealed_secret=sealed), secret)


def remove(conn: Connection, endpoint_id: str, account_id: str | None = None) -> Endpoint | None:
    """Delete the endpoint; its deliveries not yet sent fail (``endpoint removed``)."""
    found = webhooks_sql.load_endpoint(conn, account_id, endpoint_id)
    if found is not None:
        webhooks_sql.delete_endpoint(conn, endpoint_id)
    return found


def secret_of(server_key: ServerKey, endpoint: Endpoint) -> str:
    return server_key.decrypt_secret(endpoint.sealed_secret, endpoint.id)
