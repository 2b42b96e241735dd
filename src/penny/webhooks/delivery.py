"""The body and headers of a claimed webhook delivery, for :class:`penny.ipn.delivery.Deliverer`.

A delivery (an ``ipn_notifications`` row of kind ``webhook``) names its endpoint and event in
its parameters. When it is claimed, the event's stored JSON is POSTed as it is, with the
Standard Webhooks headers signed with the endpoint's current secret at the current wall-clock
second (each attempt is signed anew, so a retry's timestamp is fresh). ``webhook-id`` is the
event id: the same for every attempt and every endpoint, so a receiver can drop repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection

from penny.security import ServerKey, ServerKeyError
from penny.storage import ipn_sql, webhooks_sql
from penny.webhooks.endpoints import secret_of
from penny.webhooks.signature import headers

CONTENT_TYPE: Final = "application/json"


@dataclass(frozen=True, slots=True)
class Signed:
    body: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Material:
    """What the claimed deliveries need, read in the claiming transaction."""

    endpoints: dict[str, webhooks_sql.Endpoint]
    bodies: dict[str, bytes]


def load(conn: Connection, claimed: Sequence[ipn_sql.Claimed]) -> Material:
    params = [dict(c.params) for c in claimed]
    endpoints, bodies = webhooks_sql.delivery_material(
        conn,
        {p.get("endpoint", "") for p in params},
        {p.get("event", "") for p in params},
    )
    return Material(endpoints, bodies)


def sign(
    material: Material,
    claimed: ipn_sql.Claimed,
    server_key: ServerKey | None,
    timestamp: int,
) -> Signed | str:
    """The signed delivery, or why it can never be sent."""
    params = dict(claimed.params)
    endpoint = material.endpoints.get(params.get("endpoint", ""))
    body = material.bodies.get(params.get("event", ""))
    if endpoint is None:
        return "the webhook endpoint was removed"
    if body is None:
        return "no such event"
    if server_key is None:
        return "this process has no server key to unseal the endpoint's secret"
    try:
        secret = secret_of(server_key, endpoint)
    except ServerKeyError as error:
        return str(error)
    return Signed(body, headers(secret, params["event"], timestamp, body))
