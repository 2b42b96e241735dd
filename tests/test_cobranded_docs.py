"""The merchant's code in docs/cobranded-ui.md works: the start-URL signer, the online
(VerifySignature) and offline (certificate) verifiers, and the worked string to sign, run
against a real server on 127.0.0.1 on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from cobranded_support import live_server, make_world
from penny.fps.outbound import Endpoint, string_to_sign
from penny.signing import load_signer

DOC = Path(__file__).resolve().parent.parent / "docs" / "cobranded-ui.md"


def _snippet(marker: str) -> dict[str, Any]:
    """Run the ```python block of the guide whose first line is ``# <marker>``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    (code,) = [block for block in blocks if block.startswith(f"# {marker}")]
    namespace: dict[str, Any] = {"__name__": "guide"}
    exec(compile(code, f"docs/cobranded-ui.md:{marker}", "exec"), namespace)
    return namespace


def test_the_worked_string_to_sign() -> None:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(
        r"comes back to\n\n```\n(.*?)\n```.*?signed.*?\n\n```\n(.*?)\n```", text, re.S
    )
    assert found is not None
    url, signed = found.groups()
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    assert string_to_sign("GET", Endpoint.parse(url), params) == signed


def test_the_guides_code_against_a_live_server(database_url: str) -> None:
    world = make_world(database_url)
    sign: Callable[..., str] = _snippet("cbui-sign")["signed_start_url"]
    online: Callable[[str, str], bool] = _snippet("cbui-verify-online")["verify_with_penny"]
    offline: Callable[[str, bytes, str], bool] = _snippet("cbui-verify-offline")["verify_offline"]
    with live_server(world) as server:
        url = sign(
            server.base,
            "127.0.0.1",
            world.access_key,
            world.secret,
            {
                "pipelineName": "SetupPrepaid",
                "returnURL": "https://shop.example/cbui/return?order=42",
                "callerReferenceSender": "order-42-sender",
                "callerReferenceFunding": "order-42-funding",
                "fundingAmount": "25",
            },
        )
        started = httpx.get(url, follow_redirects=False)
        assert started.status_code == 303, started.text
        altered = httpx.get(url.replace("fundingAmount=25", "fundingAmount=26"))
        assert altered.status_code == 403

        signer = load_signer(world.db, world.server_key)
        received = signer.signed_redirect(
            server.base,
            "https://shop.example/cbui/return?order=42",
            {"status": "SC", "senderTokenID": "ST42", "expiry": "12/2026"},
        )
        certificate_url = dict(parse_qsl(urlsplit(received).query))["certificateUrl"]
        pem = httpx.get(certificate_url).content
        assert online(server.base, received)
        assert offline(received, pem, server.base)
        for forged in (
            received.replace("status=SC", "status=SA"),
            received.replace("order=42", "order=43"),
            received + "&id=1",
            received.replace("/cbui/return", "/cbui/return/"),
        ):
            assert not online(server.base, forged)
            assert not offline(forged, pem, server.base)
        assert not offline(received, pem, "https://other-penny.example")
    world.db.dispose()
