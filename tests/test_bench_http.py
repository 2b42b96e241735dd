"""``penny bench http`` in short, on both stores, and the server's group commit.

The benchmark runs here for about a second per workload with a small seed and no django-hordak
peer (``--peer none``: installing it takes longer than CI allows; the full run documented in
docs/performance.md exercises it). The checks: every workload leaves a clean audit and the
ledger holds exactly the successful Pays/SettleDebts the clients saw, the JSON has every field,
and every ratio and target verdict is computed from the same run.

The group-commit tests drive the ASGI application directly with concurrent signed requests.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from typer.testing import CliRunner

from builders import signed_fps, store
from penny.bench.chart import write_chart
from penny.bench.http import TARGETS, WORKLOADS, Options, run_http_bench
from penny.bench.seed import Merchant, Seed, seed
from penny.cli.main import app as cli
from penny.engine.ledger import Ledger
from penny.security import ServerKey
from penny.storage.database import open_database
from penny.web.app import create_app

SMALL = {
    "buyers": 60,
    "merchants": 3,
    "seconds": 1.0,
    "warmup": 0.3,
    "connections": 8,
    "processes": 1,
    "peer": "none",
    "baseline_seconds": 0.5,
}


def _noop(_label: str, _fraction: float) -> None:
    return None


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_short_run_is_correct_and_reports_every_ratio(store: str, tmp_path: Path) -> None:
    options = Options(stores=(store,), history=(1_500, 2_500), **SMALL)  # type: ignore[arg-type]
    summary = run_http_bench(options, _noop)
    assert summary["correct"] is True
    data = summary["stores"][store]
    assert set(data["workloads"]) == set(WORKLOADS)
    for name, workload in data["workloads"].items():
        check = workload["check"]
        assert check["audit_clean"], (name, check)
        assert check["ledger_pays"] == check["successful_pays"] > 0, (name, check)
        assert check["ledger_settles"] == check["successful_settles"], (name, check)
        assert workload["errors"] == 0, (name, workload["error_samples"])
        ops = workload["ops"]["all"]
        assert 0 < ops["p50_ms"] <= ops["p95_ms"] <= ops["p99_ms"]
        assert workload["per_s"] > 0
        # CPU per request, from /proc (server) and the load generators' own process time.
        assert workload["server_cpu_us_per_request"] > 0, name
        assert workload["client_cpu_us_per_request"] > 0, name
    # W4 retried references: the retries succeeded and booked nothing new.
    assert data["workloads"]["W4"]["ops"]["retry"]["count"] > 0
    # W6 read balances.
    assert data["workloads"]["W6"]["ops"]["balance"]["count"] > 0
    ratios = summary["ratios"]
    for workload in WORKLOADS[1:]:
        assert ratios[f"{store}.{workload}/W1"] is not None
    assert ratios[f"{store}.rss_last/rss_first"] is not None
    assert ratios[f"{store}.balance_p99_end/start"] is not None
    assert [
        p["journals"] >= target
        for p, target in zip(data["history"]["points"], (1_500, 2_500), strict=True)
    ] == [True, True]
    if store == "sqlite":
        raw = data["baselines"]["sqlite_raw"]
        assert raw == max(data["baselines"]["sqlite_raw_runs"]) > 0
        assert ratios["sqlite.W1/raw_loop"] == round(data["workloads"]["W1"]["per_s"] / raw, 3)
    else:
        pgbench = data["baselines"]["pgbench"]
        assert set(pgbench["runs"]) == {"4", "16", "64"}
        assert pgbench["peak_tps"] == max(r["tps"] for r in pgbench["runs"].values()) > 0
        assert ratios["postgresql.W1/pgbench_peak"] is not None
        assert "hordak" not in data["baselines"]  # --peer none
    assert set(summary["targets"]) == set(TARGETS)
    verdicts = summary["targets"]
    assert verdicts["P3"]["pass"] is not None
    assert verdicts["P5"]["pass"] is not None
    assert verdicts["P6"]["pass"] is not None
    assert verdicts["memory"]["pass"] is not None
    assert verdicts["P4"]["pass"] is None  # no peer: not measured, and said so
    chart = tmp_path / "chart.png"
    write_chart(summary, chart)
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_cli_writes_json_and_chart(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "http",
            "--store",
            "sqlite",
            "--workloads",
            "W1",
            "--buyers",
            "40",
            "--merchants",
            "2",
            "--seconds",
            "1",
            "--warmup",
            "0.2",
            "--connections",
            "4",
            "--processes",
            "1",
            "--history",
            "none",
            "--peer",
            "none",
            "--baseline-seconds",
            "0.5",
            "--output",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    written = json.loads((tmp_path / "bench-http.json").read_text())
    assert printed["ratios"] == written["ratios"]
    assert written["targets"]["P1"]["value"] == written["ratios"]["sqlite.W1/raw_loop"]
    assert (tmp_path / "bench-http.png").read_bytes().startswith(b"\x89PNG")


def test_cli_refuses_unknown_options(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_peer = runner.invoke(cli, ["bench", "http", "--peer", "sqlalchemy"])
    assert bad_peer.exit_code == 2
    assert "--peer must be" in bad_peer.output
    bad_workload = runner.invoke(cli, ["bench", "http", "--workloads", "W3"])
    assert bad_workload.exit_code == 2


# -- group commit in the server --------------------------------------------------------------


def _signed(the_seed: Seed, buyer: int, reference: str) -> bytes:
    b = the_seed.buyers[buyer]
    merchant = the_seed.merchants[b.merchant]
    pay = {
        "SenderTokenId": b.prepaid_token,
        "TransactionAmount.Value": "1.25",
        "CallerReference": reference,
    }
    return _posted("Pay", merchant, pay)


def test_concurrent_pays_share_commits_and_keep_idempotency(database_url: str) -> None:
    database = open_database(database_url)
    key = ServerKey.generate()
    try:
        the_seed = seed(database, key, buyers=8, merchants=2, progress=_noop)
        application = create_app(database, server_key=key)
        journals_before = Ledger(database).count_journals()

        async def drive() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                headers = {"content-type": "application/x-www-form-urlencoded"}
                # 40 distinct payments, and each of the first 10 sent twice at the same time.
                bodies = [_signed(the_seed, i % 8, f"ref-{i}") for i in range(40)]
                bodies += bodies[:10]
                return list(
                    await asyncio.gather(*(c.post("/", content=b, headers=headers) for b in bodies))
                )

        responses = asyncio.run(drive())
        assert [r.status_code for r in responses] == [200] * 50, responses[0].text
        ids = [re.search(r"<TransactionId>(\w+)</TransactionId>", r.text) for r in responses]
        found = [m.group(1) for m in ids if m is not None]
        assert len(found) == 50
        assert found[40:] == found[:10]  # a retry answers with the original transaction
        assert len(set(found)) == 40
        assert Ledger(database).count_journals() - journals_before == 40
        assert Ledger(database).audit().ok
        endpoint_batches = _batches(application)
        assert 1 <= endpoint_batches < 50  # requests shared commits
    finally:
        database.dispose()


def _batches(application: object, counter: str = "batches") -> int:
    """The FPS endpoint's group-commit batch count (or ``read_batches``), found through the
    app's route for ``/``."""
    for route in application.routes:  # type: ignore[attr-defined]
        endpoint = getattr(getattr(route, "endpoint", None), "endpoint", None)
        batched = getattr(endpoint, "batched", None)
        if batched is not None:
            return int(getattr(batched, counter))
    raise AssertionError("no FPS endpoint found")


def _balance_request(the_seed: Seed, merchant: int, action: str, instrument: str) -> bytes:
    name = "PrepaidInstrumentId" if action == "GetPrepaidBalance" else "CreditInstrumentId"
    return _posted(action, the_seed.merchants[merchant], {name: instrument})


def _posted(action: str, merchant: Merchant, params: dict[str, str]) -> bytes:
    """The form body of ``action`` POSTed by a seeded ``merchant`` (the 2008-09-17 API)."""
    signed = signed_fps(
        action,
        merchant.access_key_id,
        merchant.secret,
        params,
        method="POST",
        version="2008-09-17",
    )
    return urlencode(signed).encode()


def test_concurrent_balance_reads_share_reads_and_each_gets_its_own_answer(
    database_url: str,
) -> None:
    """GetPrepaidBalance and GetDebtBalance arriving together are read in batches (one
    statement each), and a refused one (another merchant's instrument, the wrong kind) does not
    disturb its neighbours (both stores)."""
    database = open_database(database_url)
    key = ServerKey.generate()
    try:
        the_seed = seed(database, key, buyers=8, merchants=2, progress=_noop)
        application = create_app(database, server_key=key)
        # Buyer 0 has paid $1.25 from the prepaid instrument it bought of merchant 0.
        first = asyncio.run(_post_all(application, [_signed(the_seed, 0, "pay-once")]))
        assert first[0].status_code == 200, first[0].text
        buyers = the_seed.buyers
        asks: list[tuple[bytes, str]] = []
        for index, b in enumerate(buyers):
            funded = "999998.750000" if index == 0 else "1000000.000000"
            asks.append(
                (
                    _balance_request(
                        the_seed, b.merchant, "GetPrepaidBalance", b.prepaid_instrument
                    ),
                    f"<AvailableBalance><CurrencyCode>USD</CurrencyCode><Value>{funded}</Value>",
                )
            )
            asks.append(
                (
                    _balance_request(the_seed, b.merchant, "GetDebtBalance", b.credit_instrument),
                    "<AvailableBalance><CurrencyCode>USD</CurrencyCode><Value>0.000000</Value>",
                )
            )
            # Another merchant's instrument, and a credit instrument asked as prepaid.
            other = 1 - b.merchant
            asks.append(
                (
                    _balance_request(the_seed, other, "GetPrepaidBalance", b.prepaid_instrument),
                    "<Code>InstrumentAccessDenied</Code>",
                )
            )
            asks.append(
                (
                    _balance_request(
                        the_seed, b.merchant, "GetPrepaidBalance", b.credit_instrument
                    ),
                    "<Code>InstrumentAccessDenied</Code>",
                )
            )
        responses = asyncio.run(_post_all(application, [body for body, _ in asks * 3]))
        for response, (_, expected) in zip(responses, asks * 3, strict=True):
            assert expected in response.text, (expected, response.text)
        reads = _batches(application, "read_batches")
        assert 1 <= reads < len(responses)  # requests shared reads
    finally:
        database.dispose()


async def _post_all(application: object, bodies: list[bytes]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=application)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        headers = {"content-type": "application/x-www-form-urlencoded"}
        return list(
            await asyncio.gather(*(client.post("/", content=b, headers=headers) for b in bodies))
        )


def test_revoked_key_is_refused_once_the_cache_lapses(tmp_path: Path) -> None:
    from penny.fps.keys import KeyCache

    with store(f"sqlite:///{tmp_path / 'k.db'}", sandbox_clock=True) as services:
        directory = services.directory
        party, key = directory.create_business("Cache Co", f"{secrets.token_hex(4)}@x.invalid")
        cache = KeyCache(directory, ttl_ms=200)
        assert cache.secret_for(key.access_key_id) == key.secret
        assert cache.party_of(key.access_key_id) == party.id
        directory.revoke_key(key.access_key_id)
        assert cache.secret_for(key.access_key_id) == key.secret  # within the TTL
        import time

        time.sleep(0.25)
        assert cache.secret_for(key.access_key_id) is None
        assert cache.secret_for("PNYNOSUCHKEY00000000") is None


def test_key_cache_checks_many_keys_in_one_read_and_drops_a_revoked_one(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 merchants' keys cost a read or two per TTL, not one each; a secret is decrypted
    once; a revoked key is dropped at its next check while the others stay (both stores)."""
    import time
    from types import SimpleNamespace

    from penny.fps import keys as keys_module
    from penny.fps.keys import KeyCache

    with store(database_url, sandbox_clock=True) as services:
        directory = services.directory
        keys = [
            directory.create_business(f"Co {i}", f"{secrets.token_hex(4)}@x.invalid")
            for i in range(100)
        ]
        decrypted: list[str] = []
        real_decrypt = directory.decrypt_secret

        def counting_decrypt(ciphertext: bytes, access_key_id: str) -> str:
            decrypted.append(access_key_id)
            return real_decrypt(ciphertext, access_key_id)

        monkeypatch.setattr(directory, "decrypt_secret", counting_decrypt)
        # The cache's own clock, moved by hand: a loaded machine cannot age keys mid-loop.
        now_ns = [time.monotonic_ns()]
        monkeypatch.setattr(keys_module, "time", SimpleNamespace(monotonic_ns=lambda: now_ns[0]))
        cache = KeyCache(directory, ttl_ms=300)
        for party, key in keys:
            assert cache.secret_for(key.access_key_id) == key.secret
            assert cache.party_of(key.access_key_id) == party.id
        assert cache.reads == 100  # each first sight is a read
        assert len(decrypted) == 100
        directory.revoke_key(keys[7][1].access_key_id)
        now_ns[0] += 350_000_000  # past the 300 ms lifetime
        reads = cache.reads
        for party, key in keys:
            if key is keys[7][1]:
                assert cache.secret_for(key.access_key_id) is None
            else:
                assert cache.secret_for(key.access_key_id) == key.secret
                assert cache.party_of(key.access_key_id) == party.id
        # Every stale key was checked with the first one to be asked for; the revoked key,
        # gone from the cache, costs one more read when asked for again.
        assert cache.reads - reads <= 2
        assert len(decrypted) == 100  # unchanged ciphertexts are not decrypted again
        assert cache.secret_for("PNYNOSUCHKEY00000000") is None
