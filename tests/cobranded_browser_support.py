"""What the Co-Branded UI browser tests share (tests/test_cobranded*_browser.py,
tests/test_sender_token_browser.py): :class:`BrowserFlow`, one buyer in one phone-width browser
context with the live server and the merchant's return-URL receiver, and :func:`running_flow`,
which starts both around a flow and closes everything after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from playwright.sync_api import Browser, Page

from browser_support import PHONE, axe_violations, screenshot, store_label
from cobranded_support import LiveServer, Receiver, World, live_server, receiver


class BrowserFlow:
    """One buyer in one browser context (phone width), with the live server and receiver."""

    def __init__(
        self, browser: Browser, server: LiveServer, shop: Receiver, store: str, axe: str
    ) -> None:
        self.server, self.shop, self.store, self.axe = server, shop, store, axe
        self.context = browser.new_context(viewport=PHONE)
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(15_000)

    @property
    def world(self) -> World:
        return self.server.world

    def check_axe(self, name: str = "") -> None:
        """axe-core finds nothing on the page."""
        violations = axe_violations(self.page, self.axe)
        assert violations == [], (name, violations)

    def shot(self, name: str) -> None:
        """axe-core finds nothing on the page; screenshots at phone and desktop width (SQLite
        run only)."""
        self.check_axe(name)
        if self.store == "sqlite":
            screenshot(self.page, name)


FlowT = TypeVar("FlowT", bound=BrowserFlow)


@contextmanager
def running_flow(
    kind: type[FlowT], browser: Browser, axe: str, world: World, database_url: str
) -> Iterator[FlowT]:
    """A ``kind`` flow over ``world`` served live, with a receiver; closed (and the store
    disposed) after."""
    with live_server(world) as server, receiver() as shop:
        flow = kind(browser, server, shop, store_label(database_url), axe)
        try:
            yield flow
        finally:
            flow.context.close()
            world.db.dispose()
