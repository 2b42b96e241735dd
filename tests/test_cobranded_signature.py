"""One Signature V2 verifier (issue #15): the hosted pages' start request accepts what the FPS
endpoint accepts, notably a signature whose ``+`` arrived as a space (a client that put the
base64 signature in the query string unencoded), on both stores."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from builders import signed_fps
from cobranded_support import START_PATH, UiClient, World, prepaid_params, world
from penny.fps.signature import matching_host, sign_v2

HOST = "testserver"
RETURN = "https://shop.example/cbui/return"


__all__ = ["world"]  # the fixture


def signed_start_with_plus(world: World) -> dict[str, str]:
    """Signed start parameters whose ``signature`` holds a ``+`` (varying the reference)."""
    for n in range(200):
        params = {
            **prepaid_params(world, RETURN, ref=f"plus-{n}"),
            "signatureVersion": "2",
            "signatureMethod": "HmacSHA256",
        }
        params["signature"] = sign_v2(
            world.secret, "GET", HOST, START_PATH, params, signature_name="signature"
        )
        if "+" in params["signature"]:
            return params
    raise AssertionError("no signature with a '+' in 200 tries")


def signed_fps_with_plus(world: World) -> dict[str, str]:
    """A signed FPS GetAccountBalance whose ``Signature`` holds a ``+``."""
    now = time.time()
    for n in range(200):  # the Timestamp varies, a second earlier each try
        moment = datetime.fromtimestamp(now - n, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        params = signed_fps(
            "GetAccountBalance", world.access_key, world.secret, host=HOST, timestamp=moment
        )
        if "+" in params["Signature"]:
            return params
    raise AssertionError("no signature with a '+' in 200 tries")


def raw_query(params: dict[str, str], signature_name: str) -> str:
    """The query string with the signature's ``+`` left unencoded (so it decodes as a space)."""
    rest = {name: value for name, value in params.items() if name != signature_name}
    return f"{urlencode(rest)}&{signature_name}={params[signature_name]}"


def test_the_pages_accept_a_plus_that_arrived_as_a_space_like_the_fps_endpoint(
    world: World,
) -> None:
    client = UiClient(world, base_url=f"http://{HOST}").client

    fps = signed_fps_with_plus(world)
    answer = client.get(f"/?{raw_query(fps, 'Signature')}")
    assert answer.status_code == 200, answer.text
    assert "GetAccountBalanceResponse" in answer.text

    start = signed_start_with_plus(world)
    started = client.get(f"{START_PATH}?{raw_query(start, 'signature')}")
    assert started.status_code == 303, started.text
    assert "/cobranded-ui/pipelines/" in started.headers["location"]

    # The repair is of a space only: a changed signature is still refused, by both.
    forged = {**start, "signature": start["signature"].replace("+", "-")}
    assert client.get(f"{START_PATH}?{urlencode(forged)}").status_code == 403
    forged_fps = {**fps, "Signature": fps["Signature"].replace("+", "-")}
    assert client.get(f"/?{urlencode(forged_fps)}").status_code == 403


def test_matching_host_names_the_signature_parameter_and_the_host_form() -> None:
    params = {"callerKey": "PNYKEY", "signatureVersion": "2", "signatureMethod": "HmacSHA1"}
    params["signature"] = sign_v2(
        "secret", "GET", "shop.example", START_PATH, params, "HmacSHA1", signature_name="signature"
    )
    hosts = ("shop.example:8080", "shop.example")
    found = matching_host(
        "secret", "GET", hosts, START_PATH, params, "HmacSHA1", signature_name="signature"
    )
    assert found == "shop.example"
    # Under the API's parameter name the lower-case one is signed data, and missing: no match.
    assert matching_host("secret", "GET", hosts, START_PATH, params, "HmacSHA1") is None
    assert matching_host("other", "GET", hosts, START_PATH, params, "HmacSHA1") is None
