"""The account site (issue #16): Penny's own pages for the people behind the accounts.

``landing`` is ``GET /`` for browsers; ``site`` the plumbing (sessions, sign-in, CSRF, the
action log); ``merchant`` the merchant console (business accounts); ``buyer`` the buyer account
(personal accounts); ``views`` the formatting and filters they share; ``charts`` the
server-drawn SVG charts. Templates are in ``templates/``, one style sheet in ``static/``; no
script and nothing third-party. docs/console.md describes the pages.
"""

from __future__ import annotations

from typing import Final

from starlette.routing import BaseRoute

from penny.parties import Directory
from penny.services.payments import Payments
from penny.web.console.buyer import BuyerPages
from penny.web.console.landing import Landing, wants_landing
from penny.web.console.merchant import MerchantPages
from penny.web.console.merchant_more import MoreMerchantPages
from penny.web.console.site import ConsoleSite, PagesOf
from penny.web.console.wallet import WalletPages

__all__ = ["ConsoleSite", "Landing", "console_routes", "wants_landing"]

#: The account site's groups of pages, in the order their routes are matched.
GROUPS: Final[tuple[type[PagesOf], ...]] = (
    MerchantPages,
    MoreMerchantPages,
    BuyerPages,
    WalletPages,
)


def console_routes(directory: Directory, payments: Payments) -> list[BaseRoute]:
    """The routes of the account site, for :func:`penny.web.app.create_app`."""
    site = ConsoleSite(directory, payments)
    return site.routes([route for group in GROUPS for route in group(site).routes()])
