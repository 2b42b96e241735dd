"""The dashboard's prepaid liability and outstanding debt over time (issue #16): the ledger's
figures today, walked back day by day through the changes the merchant's completed
transactions made (:func:`penny.storage.merchant_sql.daily_balance_changes`), drawn as SVG bar
charts with a table of the same numbers.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from penny.storage import merchant_sql
from penny.web.console import views
from penny.web.console.charts import Bar, bar_chart
from penny.web.console.site import ConsoleSite


def balance_history(
    site: ConsoleSite, merchant_id: str, first_day: int, now: int
) -> dict[str, Any]:
    """The dashboard's liability and debt at the end of each day from ``first_day`` to today:
    today's figures are the ledger's; each earlier day's is the next day's less that day's
    changes. Charts (SVG) and the rows of their table, for the page's context."""
    payments = site.payments
    liability = payments.total_prepaid_liability(merchant_id).main.minor
    debt = payments.outstanding_debt(merchant_id).main.minor
    with site.database.read() as conn:
        changes = merchant_sql.daily_balance_changes(conn, merchant_id, first_day, now + 1)
    rows: list[tuple[int, int, int]] = []
    for start in range(now - now % views.DAY_US, first_day - 1, -views.DAY_US):
        rows.append((start, liability, debt))
        change = changes.get(start, merchant_sql.DayChange(0, 0))
        liability, debt = liability - change.liability, debt - change.debt
    rows.reverse()

    def chart(values: list[int], what: str) -> Markup:
        bars = [
            Bar(views.short_day(start), max(value, 0), f"{views.day(start)}: {views.money(value)}")
            for (start, _l, _d), value in zip(rows, values, strict=True)
        ]
        top = max((bar.value for bar in bars), default=0)
        svg = bar_chart(bars, f"{what} at the end of each day", f"highest: {views.money(top)}")
        return Markup(svg)  # noqa: S704 - built by charts.bar_chart, which escapes

    return {
        "balance_rows": [(views.day(start), lia, owed) for start, lia, owed in rows],
        "liability_chart": chart([r[1] for r in rows], "Prepaid liability"),
        "debt_chart": chart([r[2] for r in rows], "Outstanding debt"),
    }
