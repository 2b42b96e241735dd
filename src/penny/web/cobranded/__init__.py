"""The Co-Branded UI: Penny's hosted SetupPrepaid and SetupPostpaid pipelines (issue #5).

``params`` checks start requests and holds the return-status table, ``security`` the ids,
CSRF, cookies and headers, ``http`` the reading of requests, ``returns`` the return-URL
parameters, ``pages`` the pages themselves (Jinja2 templates in ``templates/``, one stylesheet
in ``static/``). docs/cobranded-ui.md is the merchant's guide.
"""

from __future__ import annotations

from penny.web.cobranded.pages import CobrandedUi, Settings, cobranded_routes

__all__ = ["CobrandedUi", "Settings", "cobranded_routes"]
