"""The live Penny the client's own live tests talk to: ``penny serve`` on 127.0.0.1 over a
fresh SQLite sandbox (``penny sandbox seed``, one prepaid and one credit instrument).

The ``penny`` command is ``$PENNY_BIN``, else the Penny repository's ``.venv/bin/penny`` (this
package lives in ``clients/python`` of it), else ``penny`` on PATH; it may run on another Python
than these tests (scripts/client-pythons runs them on 3.12 and 3.13 against the 3.11 server).
Both stores are covered by Penny's own suite (tests/test_client_live.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Live:
    base: str
    api_key: str
    prepaid: dict[str, str]
    credit: dict[str, str]


def _penny() -> str:
    for candidate in (os.environ.get("PENNY_BIN"), str(REPO / ".venv" / "bin" / "penny")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("penny")
    if found is None:
        pytest.fail("no penny command: set PENNY_BIN (these tests need a live Penny)")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _json(penny: str, where: Path, *args: str) -> dict[str, str]:
    done = subprocess.run(
        [penny, *args, "--json"], cwd=where, capture_output=True, text=True, check=True
    )
    found: dict[str, str] = json.loads(done.stdout)
    return found


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    penny, where = _penny(), tmp_path_factory.mktemp("penny")
    env = {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}
    database = f"sqlite:///{where / 'penny.db'}"
    seeded = _json(penny, where, "sandbox", "seed", "-d", database)
    who = ["--merchant", seeded["merchant_id"], "--buyer", seeded["buyer_id"], "-d", database]
    prepaid = _json(penny, where, "sandbox", "setup-prepaid", *who, "--reference", "p",
                    "--funding-limit", "100")  # fmt: skip
    credit = _json(penny, where, "sandbox", "setup-postpaid", *who, "--reference", "c",
                   "--credit-limit", "50")  # fmt: skip
    port = _free_port()
    log = (where / "serve.log").open("wb")
    server = subprocess.Popen(
        [penny, "serve", "-d", database, "--port", str(port)], cwd=where, env=env,
        stdout=log, stderr=log,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (where / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "penny serve did not start"
            time.sleep(0.1)
        key = f"sk_test_{seeded['access_key_id']}.{seeded['secret_access_key']}"
        yield Live(base, key, prepaid, credit)
    finally:
        server.terminate()
        server.wait(15)
        log.close()
