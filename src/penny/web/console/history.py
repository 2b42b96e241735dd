"""The dashboard's figures by day (issue #16): :func:`dashboard_facts` reads them from the
daily sums ``console_days`` that every write of ``transactions`` keeps, so the dashboard's cost
does not grow with the merchant's volume; the period's totals and daily sales are sums of
them; and the prepaid liability and outstanding debt over time are the ledger's figures today
walked back day by day through the changes the merchant's completed transactions made, drawn
as SVG bar charts with a table of the same numbers.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from penny.domain.model import Operation
from penny.storage import console_days_sql
from penny.web.console import views
from penny.web.console.charts import Bar, bar_chart
from penny.web.console.site import ConsoleSite


def dashboard_facts(
    site: ConsoleSite, merchant_id: str, first_day: int, now: int
) -> dict[int, console_days_sql.DayFacts]:
    """The facts of every day from ``first_day`` to today, from the daily sums every write of
    ``transactions`` keeps (at most a row per day and item: the period's volume costs nothing)."""
    today = now - now % views.DAY_US
    with site.database.read() as conn:
        return console_days_sql.day_facts(conn, merchant_id, first_day, today + views.DAY_US)


def period_totals(facts: dict[int, console_days_sql.DayFacts]) -> dict[str, tuple[int, int, int]]:
    """The days' totals by operation: amount, fees, count."""
    found: dict[str, tuple[int, int, int]] = {}
    for fact in facts.values():
        for operation, (amount, fees, count) in fact.totals.items():
            a, f, n = found.get(operation, (0, 0, 0))
            found[operation] = (a + amount, f + fees, n + count)
    return found


def daily_sales(facts: dict[int, console_days_sql.DayFacts]) -> dict[int, tuple[int, int]]:
    """Successful Pays by day: amount and count."""
    pay = Operation.pay.value
    return {
        day: (fact.totals[pay][0], fact.totals[pay][2])
        for day, fact in facts.items()
        if pay in fact.totals
    }


def balance_history(
    site: ConsoleSite, merchant_id: str, facts: dict[int, console_days_sql.DayFacts], now: int
) -> dict[str, Any]:
    """The dashboard's liability and debt at the end of each day from ``first_day`` to today:
    today's figures are the ledger's; each earlier day's is the next day's less that day's
    changes. Charts (SVG) and the rows of their table, for the page's context."""
    payments = site.payments
    liability = payments.total_prepaid_liability(merchant_id).main.minor
    debt = payments.outstanding_debt(merchant_id).main.minor
    first_day = min(facts)
    rows: list[tuple[int, int, int]] = []
    for start in range(now - now % views.DAY_US, first_day - 1, -views.DAY_US):
        rows.append((start, liability, debt))
        change = facts[start].change
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
