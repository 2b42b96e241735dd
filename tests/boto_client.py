"""Running the real boto 2.49.0 ``FPSConnection`` from tests, in a subprocess.

boto 2 is Python 2 era code: it imports on Python 3.11 only with a small runtime patch (the
one docs/fps-compatibility.md shows as ``penny_boto.py``), and its vendored ``six`` importer
and ``import imp`` would disturb this interpreter's warnings filters (which turn warnings
into errors). So each test runs a script in a fresh interpreter: :data:`BOTO_SHIM` followed
by the test's own lines, with the test's job as JSON on stdin and the script's findings as
JSON on stdout. A script usually starts with :data:`BOTO_CONNECT` (``conn`` to the server the
job names, ``out`` for the findings, ``pair``), and :func:`boto_server` serves the application
and gives the job's connection part.

The dev extra installs boto on Python < 3.12 only (it does not import on 3.12+). There the
boto tests must run, and a missing boto fails them; on 3.12+ they are skipped, because no
boto 2 exists for that interpreter — the signature and XML suites still cover the wire there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from builders import Merchant, application, serving
from penny.services.factory import Services

needs_boto = pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="boto 2.49.0 does not import on Python 3.12+ (docs/fps-compatibility.md)",
)

#: Imports boto's FPS module and applies the Python 3 shim; the script goes on from there with
#: ``m`` (the patched module) and ``json``/``sys`` imported.
BOTO_SHIM = r"""
import builtins, inspect, json, sys, warnings
warnings.simplefilter("ignore")
import boto.fps.connection as m

src = inspect.getsource(m)
src = src.replace("kw.has_key", "kw.__contains__")
src = src.replace("urllib.quote(", "urllib.parse.quote(")
src = src.replace("import urllib\n", "import urllib\nimport urllib.parse\n", 1)
m.__dict__["filter"] = lambda f, it: list(builtins.filter(f, it))
exec(compile(src, m.__file__, "exec"), m.__dict__)
"""

#: Connects ``conn`` (no retries) to the job's server as the job's merchant; ``out`` holds what
#: the script found, ``pair(result)`` is a result's transaction id and status, and
#: ``refusals(calls)`` runs each ``(name, call)`` and maps the names of those boto raised for
#: to the error's type, HTTP status and code (and, with ``retry=True``, whether boto may retry).
BOTO_CONNECT = r"""
job = json.load(sys.stdin)
conn = m.FPSConnection(
    aws_access_key_id=job["key"], aws_secret_access_key=job["secret"],
    host="127.0.0.1", port=job["port"], is_secure=False,
)
conn.num_retries = 0
out = {}


def pair(result):
    return [result.TransactionId, result.TransactionStatus]


def refusals(calls, retry=False):
    found = {}
    for name, call in calls:
        try:
            call()
        except Exception as error:
            found[name] = [type(error).__name__, error.status, error.error_code]
            if retry:
                found[name].append(bool(error.retry))
    return found

"""

_PROXIES = {"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}


def run_boto(script: str, job: dict[str, object], tmp_path: Path) -> dict[str, object]:
    """Run :data:`BOTO_SHIM` + ``script`` with ``job`` on stdin; return what it printed."""
    env = {name: value for name, value in os.environ.items() if name not in _PROXIES}
    env.update(HOME=str(tmp_path), BOTO_CONFIG=str(tmp_path / "no-boto.cfg"))
    completed = subprocess.run(
        [sys.executable, "-c", BOTO_SHIM + script],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, object] = json.loads(completed.stdout)
    return result


@contextmanager
def boto_server(services: Services, merchant: Merchant) -> Iterator[dict[str, object]]:
    """The application over ``services`` served on 127.0.0.1; yields the job's connection
    part for :data:`BOTO_CONNECT`: ``merchant``'s key and secret, and the port."""
    with serving(application(services)) as port:
        yield {"key": merchant.access_key, "secret": merchant.secret, "port": port}
