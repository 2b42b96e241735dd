"""The Co-Branded UI: Penny's hosted SetupPrepaid and SetupPostpaid pipelines (issue #5).

``params`` checks start requests and holds the return-status table, ``security`` the ids,
CSRF, cookies and headers, ``http`` the reading of requests and the settings, ``returns`` the
return-URL parameters. The pages are split by step: ``start``, ``signin`` (and register),
``methods``, ``confirm`` (review, confirm, cancel), over ``pipeline`` (the service between the
pages and :mod:`penny.storage.cobranded_sql`) and ``views`` (Jinja2 templates in
``templates/``, one stylesheet in ``static/``); ``pages`` assembles them into routes.
docs/cobranded-ui.md is the merchant's guide.
"""

from __future__ import annotations

from penny.web.cobranded.http import Settings
from penny.web.cobranded.pages import CobrandedUi, cobranded_routes

__all__ = ["CobrandedUi", "Settings", "cobranded_routes"]
