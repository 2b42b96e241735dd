"""What the Co-Branded UI browser tests share (tests/test_cobranded*_browser.py,
tests/test_sender_token_browser.py): :class:`BrowserFlow`, one buyer in one phone-width browser
context with the live server and the merchant's return-URL receiver (and the steps every pipeline
shares: start, sign in, choose, confirm, return), and :func:`running_flow`,
which starts both around a flow and closes everything after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from playwright.sync_api import Browser, Page, expect

from browser_support import PHONE, axe_violations, screenshot, store_label
from cobranded_support import BUYER_PASSWORD, LiveServer, Receiver, World, live_server, receiver


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

    def heading_is(self, text: str) -> None:
        """The page's one ``h1`` reads ``text``."""
        expect(self.page.get_by_role("heading", level=1)).to_have_text(text)

    def shows(self, *texts: str) -> None:
        """The page's main region contains each of ``texts``."""
        main = self.page.locator("main")
        for text in texts:
            expect(main).to_contain_text(text)

    def start(self, params: dict[str, str]) -> None:
        """Open the pipeline's signed start URL."""
        self.page.goto(self.server.start_url(params))

    def sign_in(self, email: str, password: str = BUYER_PASSWORD) -> None:
        self.page.get_by_label("Email address").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()

    def choose(self, label: str) -> None:
        """Pick the payment method labelled ``label`` and continue."""
        self.page.get_by_label(label).check()
        self.page.get_by_role("button", name="Continue").click()

    def confirm(self) -> dict[str, str]:
        """Confirm on the review page; the return's parameters (see :meth:`returned`)."""
        self.heading_is("Review and confirm")
        self.page.get_by_role("button", name="Confirm").click()
        return self.returned()

    def returned(self) -> dict[str, str]:
        """Back at the shop: the return URL's parameters, its signature verified."""
        self.heading_is("Thanks, back at the shop")
        url, params = self.shop.last()
        assert self.server.verify(url) == "Success"
        return params

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
