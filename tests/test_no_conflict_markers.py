"""No tracked file keeps a merge-conflict marker (one slipped into a template once: Jinja
ignores text outside macros, so no rendering test saw it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKERS = ("<<<<<<< ", ">>>>>>> ")


def test_no_tracked_file_has_a_conflict_marker() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    found = []
    for name in filter(None, listed):
        path = ROOT / name.decode()
        if not path.is_file() or path.suffix in {".png", ".ico", ".gz"}:
            continue
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if line.startswith(tuple(m.encode() for m in MARKERS)) or line == b"=======":
                found.append(f"{name.decode()}:{number}")
    assert found == []
