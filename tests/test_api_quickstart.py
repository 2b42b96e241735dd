"""docs/api.md's five-minute quick start, run as written: its Python blocks (taken from the page
by their ``<!-- quickstart: NAME -->`` markers) against ``penny serve`` on a store made by
``penny sandbox seed``, with the buyer's part (the hosted pages in a browser) played over HTTP
in between. On both stores. The shell steps are done the test's way (the seed's ``--json``, a
free port) and give the client the same ``PENNY_API_KEY`` and ``PENNY_URL``."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from cobranded_support import PIPELINE_PATH, csrf_of
from test_ipn_processes import Serve

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
_BLOCK = re.compile(r"<!-- quickstart: (?P<name>\w+) -->\n```python\n(?P<code>.*?)```", re.S)


def blocks() -> dict[str, str]:
    found = {m.group("name"): m.group("code") for m in _BLOCK.finditer(DOC.read_text())}
    assert list(found) == ["session", "pay"]
    return found


def complete_as_the_buyer(url: str, card: str) -> str:
    """What the quick start asks of the reader: sign in, choose the card, confirm."""
    with httpx.Client(follow_redirects=False, trust_env=False) as browser:
        started = browser.get(url)
        assert started.status_code == 303, started.text
        found = PIPELINE_PATH.search(started.headers["location"])
        assert found is not None
        pages = (
            url.split("/cobranded-ui/", maxsplit=1)[0] + f"/cobranded-ui/pipelines/{found.group(1)}"
        )
        csrf = csrf_of(browser.get(f"{pages}/signin").text)
        signin = {"csrf": csrf, "email": "buyer@example.com", "password": "sandbox-password"}
        assert browser.post(f"{pages}/signin", data=signin).status_code == 303
        csrf = csrf_of(browser.get(f"{pages}/method").text)
        chosen = browser.post(f"{pages}/method", data={"csrf": csrf, "method_id": card})
        assert chosen.status_code == 303, chosen.text
        done = browser.post(f"{pages}/confirm", data={"csrf": csrf})
        assert done.status_code == 303, done.text
        back: str = done.headers["location"]
        return back


def test_the_quick_start_runs_as_written(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"PENNY_SECRET_KEY": secrets.token_hex(32), "PENNY_PUBLIC_URL": ""}
    seeded = json.loads(
        subprocess.run(
            [sys.executable, "-c", "from penny.cli.main import main; main()",
             "sandbox", "seed", "--database", database_url, "--json"],
            env={**os.environ, **env}, capture_output=True, text=True, check=True, cwd=tmp_path,
        ).stdout
    )  # fmt: skip
    code = blocks()
    with Serve(database_url, tmp_path, "quickstart", env) as server:
        server.wait_ready()
        key = f"sk_test_{seeded['access_key_id']}.{seeded['secret_access_key']}"
        monkeypatch.setenv("PENNY_API_KEY", key)
        monkeypatch.setenv("PENNY_URL", server.base)
        reader: dict[str, Any] = {}
        exec(code["session"], reader)
        url = capsys.readouterr().out.strip()
        assert url.startswith(f"{server.base}/cobranded-ui/actions/start?")
        back = complete_as_the_buyer(url, seeded["card_payment_method_id"])
        assert back.startswith("https://shop.example/thanks?")
        exec(code["pay"], reader)
        printed = capsys.readouterr().out.splitlines()
        reader["penny"].close()
    assert printed[0] == "{'amount': 1900, 'currency': 'USD'}"
    operations = [line.split()[1:] for line in printed[1:]]
    assert operations == [["refund", "50"], ["pay", "150"], ["fund_prepaid", "2000"]]
