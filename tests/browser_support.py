"""What browser tests share: Debian's Chromium under Playwright, page sizes, the screenshot
folder, and axe-core (the accessibility checker) installed from the npm registry (the
``browser`` and ``axe`` fixtures over them are in conftest.py).

axe-core is never vendored: :func:`axe_source` runs ``npm install --prefix`` for the pinned
version into a cache folder the first time (``$PENNY_AXE_CACHE``, else
``~/.cache/penny-tests``), installing into a private folder and renaming it into place, so two
test workers never see half an install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
AXE_VERSION = "4.10.2"


@contextmanager
def chromium() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "scripts/test installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def store_label(database_url: str) -> str:
    """``sqlite`` or ``postgresql``: which store a test runs on (screenshots: SQLite only)."""
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


def axe_source() -> str:
    """The text of ``axe.min.js`` at :data:`AXE_VERSION`, installed with npm when missing."""
    cache = Path(os.environ.get("PENNY_AXE_CACHE") or Path.home() / ".cache" / "penny-tests")
    home = cache / f"axe-core-{AXE_VERSION}"
    script = home / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to install axe-core (apt-get install npm)"
        cache.mkdir(parents=True, exist_ok=True)
        private = cache / f"axe-core-{AXE_VERSION}.{os.getpid()}"
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(private),
                "--no-audit",
                "--no-fund",
                f"axe-core@{AXE_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        try:
            private.rename(home)
        except OSError:  # another worker got there first
            shutil.rmtree(private, ignore_errors=True)
    return script.read_text(encoding="utf-8")


def axe_violations(page: Page, source: str) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (injected through the DevTools
    protocol, which the page's Content-Security-Policy does not govern)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(f"{source}\n;0")
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    return found


def screenshot(page: Page, name: str) -> None:
    """Screenshots of the page at phone and desktop width (the page is left at phone width)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(PHONE)
