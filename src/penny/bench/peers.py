"""Same-run baselines of ``penny bench http`` on PostgreSQL: pgbench TPC-B and django-hordak.

* :func:`pgbench_peak`: ``pgbench -i -s 10`` into its own database of the run's cluster, then
  the default TPC-B-like script (durable commits) at 4, 16 and 64 clients; the best tps is the
  baseline.
* :func:`hordak_rate`: django-hordak, the double-entry ledger a Python developer would build on,
  installed from PyPI into a throwaway virtualenv (never vendored), migrated into its own
  database of the same cluster, then several processes doing account-to-account transfers
  (``Account.transfer_to``, one per transaction, as Hordak does them) for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

Progress = Callable[[str, float], None]

PGBENCH_CLIENTS = (4, 16, 64)
#: What the benchmark installs for the peer (ranges, newest that resolve).
HORDAK_REQUIREMENTS = ("django-hordak>=1.17,<3", "psycopg2-binary>=2.9,<3")


def _conn_args(url: str) -> tuple[list[str], str]:
    parsed = make_url(url)
    args = ["-h", str(parsed.host), "-p", str(parsed.port), "-U", str(parsed.username)]
    return args, str(parsed.database)


def pgbench_peak(
    bindir: Path, server_url: str, seconds: float, progress: Progress
) -> dict[str, Any]:
    """Best TPC-B tps over :data:`PGBENCH_CLIENTS` (and every client count's figures)."""
    from penny.devtools.pgcluster import create_database_at

    url = create_database_at(server_url, "pgbench_tpcb")
    args, dbname = _conn_args(url)
    pgbench = str(bindir / "pgbench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    progress("pgbench init", 0.0)
    subprocess.run(
        [pgbench, *args, "-i", "-s", "10", "-q", dbname],
        check=True,
        capture_output=True,
        env=env,
        timeout=600,
    )
    progress("pgbench init", 1.0)
    runs: dict[str, dict[str, float]] = {}
    for position, clients in enumerate(PGBENCH_CLIENTS):
        progress("pgbench", position / len(PGBENCH_CLIENTS))
        duration = str(max(1, round(seconds)))
        completed = subprocess.run(
            [pgbench, *args, "-c", str(clients), "-j", "2", "-T", duration, "-n", dbname],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            timeout=seconds + 300,
        )
        tps = re.search(r"tps = ([0-9.]+) \(without initial", completed.stdout)
        latency = re.search(r"latency average = ([0-9.]+) ms", completed.stdout)
        assert tps is not None, completed.stdout
        runs[str(clients)] = {
            "tps": round(float(tps.group(1)), 1),
            "latency_avg_ms": float(latency.group(1)) if latency else 0.0,
        }
    progress("pgbench", 1.0)
    best = max(runs, key=lambda c: runs[c]["tps"])
    return {"peak_tps": runs[best]["tps"], "best_clients": int(best), "runs": runs}


# -- django-hordak -------------------------------------------------------------------------

_HORDAK_SCRIPT = textwrap.dedent(
    """
    import json, os, random, sys, time
    import django
    from django.conf import settings

    url = json.loads(os.environ["HORDAK_DB"])
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", **url}},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "mptt", "hordak"],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        HORDAK_DECIMAL_PLACES=2,
        HORDAK_MAX_DIGITS=20,
        DEFAULT_CURRENCY="USD",
        CURRENCIES=["USD"],
    )
    django.setup()
    from django.core.management import call_command
    from djmoney.money import Money
    from hordak.models import Account

    mode = sys.argv[1]
    if mode == "setup":
        call_command("migrate", verbosity=0)
        accounts = int(sys.argv[2])
        Account.objects.create(name="Funding", type="IN", currencies=["USD"], code="0")
        for i in range(accounts):
            Account.objects.create(name=f"A{i}", type="AS", currencies=["USD"], code=str(i + 1))
        print(json.dumps({"accounts": Account.objects.count()}))
    else:
        seconds, warmup, seed = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
        ids = list(Account.objects.filter(type="AS").values_list("pk", flat=True))
        accounts = {a.pk: a for a in Account.objects.filter(pk__in=ids)}
        rng = random.Random(seed)
        start = time.perf_counter()
        measure_from = start + warmup
        end = measure_from + seconds
        done = 0
        lat = []
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            a, b = rng.sample(ids, 2)
            accounts[a].transfer_to(accounts[b], Money(rng.randint(1, 500) / 100, "USD"))
            t1 = time.perf_counter()
            if t0 >= measure_from:
                done += 1
                lat.append(int((t1 - t0) * 1e6))
        print(json.dumps({"transfers": done, "seconds": seconds, "latencies": lat}))
    """
)


def _venv_python(directory: Path) -> Path:
    return directory / "bin" / "python"


def hordak_rate(
    server_url: str,
    *,
    seconds: float,
    warmup: float,
    processes: int,
    progress: Progress,
    accounts: int = 1000,
) -> dict[str, Any]:
    """Transfers/s of django-hordak with ``processes`` processes on the run's PostgreSQL."""
    from penny.devtools.pgcluster import create_database_at

    url = make_url(create_database_at(server_url, "hordak_peer"))
    db = {
        "NAME": url.database,
        "USER": url.username,
        "HOST": url.host,
        "PORT": str(url.port),
        "PASSWORD": url.password or "",
    }
    with tempfile.TemporaryDirectory(prefix="penny-hordak-") as tmp:
        home = Path(tmp)
        python, version, install_s = _install_hordak(home, progress)
        script = home / "peer.py"
        script.write_text(_HORDAK_SCRIPT)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["HORDAK_DB"] = json.dumps(db)
        subprocess.run(
            [str(python), str(script), "setup", str(accounts)],
            check=True,
            capture_output=True,
            env=env,
            timeout=600,
        )
        total, latencies = _run_hordak(
            python,
            script,
            env,
            seconds=seconds,
            warmup=warmup,
            processes=processes,
            progress=progress,
        )
    latencies.sort()
    from penny.bench.stats import quantile_ms

    return {
        "transfers_per_s": round(total / seconds, 1),
        "processes": processes,
        "p50_ms": quantile_ms(latencies, 50),
        "p99_ms": quantile_ms(latencies, 99),
        "version": version,
        "install_seconds": round(install_s, 1),
        "python": sys.version.split()[0],
    }


def _install_hordak(home: Path, progress: Progress) -> tuple[Path, str, float]:
    """A virtualenv under ``home`` with django-hordak installed from PyPI: its python, the
    installed django-hordak version (``"unknown"`` if pip does not say) and the seconds taken."""
    progress("hordak install", 0.0)
    started = time.perf_counter()
    venv.create(home / "venv", with_pip=True)
    python = _venv_python(home / "venv")
    subprocess.run(
        [
            str(python),
            *("-m", "pip", "install", "-q", "--disable-pip-version-check"),
            *HORDAK_REQUIREMENTS,
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    installed = subprocess.run(
        [str(python), "-m", "pip", "show", "django-hordak"],
        check=True,
        capture_output=True,
        text=True,
    )
    version = re.search(r"^Version: (.+)$", installed.stdout, re.MULTILINE)
    install_s = time.perf_counter() - started
    progress("hordak install", 1.0)
    return python, version.group(1).strip() if version else "unknown", install_s


def _run_hordak(
    python: Path,
    script: Path,
    env: dict[str, str],
    *,
    seconds: float,
    warmup: float,
    processes: int,
    progress: Progress,
) -> tuple[int, list[int]]:
    """Run ``processes`` peer processes for ``warmup + seconds``: the transfers they made while
    measuring and those transfers' latencies (µs, unsorted)."""
    progress("hordak", 0.0)
    children = [
        subprocess.Popen(
            [str(python), str(script), "run", str(seconds), str(warmup), str(index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for index in range(processes)
    ]
    deadline = time.perf_counter() + warmup + seconds
    while any(child.poll() is None for child in children):
        left = deadline - time.perf_counter()
        progress("hordak", min(1.0, max(0.0, 1 - left / (warmup + seconds))))
        time.sleep(0.25)
    total = 0
    latencies: list[int] = []
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"the django-hordak peer failed: {err.decode()[-2000:]}")
        data = json.loads(out.decode().strip().splitlines()[-1])
        total += data["transfers"]
        latencies.extend(data["latencies"])
    progress("hordak", 1.0)
    return total, latencies


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
