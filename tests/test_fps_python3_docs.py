"""docs/fps-compatibility.md's boto 2 snippets, run as written with boto 2.49.0 against a live
Penny: the Python 3.11 patch (saved as ``penny_boto.py``) lets a ``pay`` through, both ways to
a start URL (boto's ``cbui_url`` moved to Penny's host; one signed for Penny's host) open a
pipeline where boto's own URL on Amazon's host could not, and the GetDebtBalance reader shows
the debt boto's parsed object loses. On both stores.

The snippets are taken from the page by their ``<!-- snippet: NAME -->`` markers; the only
change made to them is the port (the page says 8080; the test server has a free one).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from boto_client import needs_boto
from builders import (
    add_card,
    application,
    new_buyer,
    new_merchant,
    postpaid,
    prepaid,
    serving,
    store,
)
from penny.clock import SystemClock
from penny.money import parse_amount
from penny.services.factory import Services
from penny.services.payments import FundPrepaidRequest

DOC = Path(__file__).resolve().parents[1] / "docs" / "fps-compatibility.md"
_SNIPPET = re.compile(r"<!-- snippet: (?P<name>[\w.]+) -->\n```python\n(?P<code>.*?)```", re.S)

DRIVER = r"""
import json, sys
job = json.load(sys.stdin)
ACCESS_KEY_ID, SECRET_KEY, SENDER_TOKEN = job["key"], job["secret"], job["sender"]
{connect}
out = {{"paid": [paid.PayResult.TransactionId, paid.PayResult.TransactionStatus]}}
{cbui_replace}
out["moved_url"] = url
{cbui}
out["penny_url"] = url
{debt}
conn.pay(SenderTokenId=job["credit_sender"], TransactionAmount="30")
debt, pending = debt_balance(conn, job["credit"])
boto = conn.get_debt_balance(CreditInstrumentId=job["credit"]).GetDebtBalanceResult
out["debt"] = [str(debt), str(pending), boto.Value]
print("RESULT " + json.dumps(out))
"""


def snippets() -> dict[str, str]:
    found = {m.group("name"): m.group("code") for m in _SNIPPET.finditer(DOC.read_text())}
    assert set(found) == {"penny_boto.py", "connect", "cbui_replace", "cbui", "debt"}, sorted(found)
    return found


@needs_boto
def test_the_boto_snippets_work_as_written(database_url: str, tmp_path: Path) -> None:
    with store(database_url, clock=SystemClock()) as services:
        out = _run_snippets(services, tmp_path)
    # The debt is 30.00 and nothing is pending; boto's object only kept the pending amount.
    assert out["debt"] == ["30.000000", "0.000000", "0.000000"]


def _run_snippets(services: Services, tmp_path: Path) -> dict[str, Any]:
    """Seed a shop, serve it, run the page's snippets with boto; what they found."""
    merchant = new_merchant(services)
    buyer = new_buyer(services)
    card = add_card(services, buyer.id)
    shop = prepaid(services.payments, merchant.id, buyer.id, card.id, "p")
    services.payments.execute(
        FundPrepaidRequest(
            merchant.id, "f", shop.second_token.id, shop.instrument.id, parse_amount("10", "USD")
        )
    )
    credit = postpaid(services.payments, merchant.id, buyer.id, card.id, "c")
    code = snippets()
    (tmp_path / "penny_boto.py").write_text(code["penny_boto.py"])
    env = {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}
    env.update(HOME=str(tmp_path), BOTO_CONFIG=str(tmp_path / "none.cfg"))
    with serving(application(services)) as port:
        script = DRIVER.format(
            connect=code["connect"].replace("8080", str(port)),
            cbui_replace=code["cbui_replace"].replace("8080", str(port)),
            cbui=code["cbui"].replace("8080", str(port)),
            debt=code["debt"],
        )
        job = {
            "key": merchant.access_key,
            "secret": merchant.secret,
            "sender": shop.sender_token.id,
            "credit_sender": credit.sender_token.id,
            "credit": credit.instrument.id,
        }
        done = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", script], input=json.dumps(job), cwd=tmp_path,
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        printed = done.stdout.splitlines()
        out: dict[str, Any] = json.loads(printed[-1].removeprefix("RESULT "))
        # The connect snippet's own print: the Pay went through.
        assert printed[0] == f"{out['paid'][0]} Success"
        assert out["paid"][1] == "Success"
        for name in ("moved_url", "penny_url"):
            assert out[name].startswith(f"http://127.0.0.1:{port}/cobranded-ui/actions/start?")
            started = httpx.get(out[name], follow_redirects=False)
            assert started.status_code == 303, (name, started.text)
            assert "/cobranded-ui/pipelines/" in started.headers["location"]
        # Tampered with, the URL is refused: the signature is checked, whatever the host.
        altered = httpx.get(out["moved_url"].replace("25.00", "95.00"), follow_redirects=False)
        assert altered.status_code == 403
        assert "altered" in altered.text
    return out
