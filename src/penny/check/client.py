"""A small signed FPS client for the bank test: one POST per call, retried on faults.

:func:`call` signs a request with Signature V2 (HmacSHA256, a fresh ``Timestamp`` per
attempt) and sends it to one of the servers. A timeout, a refused or reset connection, or an
HTTP 5xx is retried — with the *same* parameters, so the same ``CallerReference`` — on the
next server, until an answer comes or the deadline passes. An answer is a :class:`Reply`: HTTP
200 with the result's leaves, or a 4xx with its FPS error code.
"""

from __future__ import annotations

import http.client
import random
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlencode

from penny.fps.signature import sign_v2

VERSION: Final = "2010-08-28"
HOST: Final = "127.0.0.1"
REQUEST_TIMEOUT_S: Final = 10.0
FORM: Final = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret: str


@dataclass(slots=True)
class Reply:
    """A definite answer: ``status`` 200 with ``leaves`` (tag → text), else ``error``."""

    status: int
    leaves: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(slots=True)
class Attempts:
    """What happened on the way: how many sends, and the faults seen."""

    sent: int = 0
    faults: list[str] = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_reply(status: int, body: bytes) -> Reply:
    """The leaves of a success body (the ``…Result`` part), or the error code of a failure."""
    root = ET.fromstring(body)
    if status == 200:
        leaves: dict[str, str] = {}
        path: list[str] = []

        def walk(node: ET.Element) -> None:
            path.append(_local(node.tag))
            children = list(node)
            if not children:
                leaves[".".join(path[2:])] = node.text or ""
            for child in children:
                walk(child)
            path.pop()

        walk(root)
        return Reply(status, leaves)
    code = next((n.text for n in root.iter() if _local(n.tag) == "Code"), None)
    return Reply(status, error=code or f"HTTP{status}")


def signed_body(creds: Credentials, port: int, action: str, params: Mapping[str, str]) -> bytes:
    full = dict(params)
    full.update(
        Action=action,
        Version=VERSION,
        AWSAccessKeyId=creds.access_key_id,
        SignatureVersion="2",
        SignatureMethod="HmacSHA256",
        Timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    )
    full["Signature"] = sign_v2(creds.secret, "POST", f"{HOST}:{port}", "/", full)
    return urlencode(full).encode("ascii")


def send_once(port: int, body: bytes, timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", "/", body=body, headers={"Content-Type": FORM})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def call(
    creds: Credentials,
    ports: Sequence[int],
    action: str,
    params: Mapping[str, str],
    *,
    deadline: float,
    rng: random.Random,
    attempts: Attempts,
    first: int = 0,
    stop: Callable[[], bool] = lambda: False,
) -> Reply | None:
    """Send until a definite answer, or ``None`` when ``deadline`` (monotonic) passes first."""
    index = first
    while time.monotonic() < deadline and not stop():
        port = ports[index % len(ports)]
        attempts.sent += 1
        try:
            status, content = send_once(port, signed_body(creds, port, action, params))
        except (OSError, http.client.HTTPException) as exc:
            attempts.faults.append(type(exc).__name__)
        else:
            if status < 500:
                return parse_reply(status, content)
            attempts.faults.append(f"HTTP{status}")
        index += 1
        time.sleep(rng.uniform(0.02, 0.2))
    return None
