"""The merchant console (business accounts): dashboard, transactions (list, detail, refund,
CSV export), API keys and the log of console actions.

Reads go to the store through :mod:`penny.storage.console_sql` and the payments queries; every
change goes through the services (a refund is :class:`~penny.services.payments.RefundRequest`
executed by :class:`~penny.services.payments.Payments`, exactly as the FPS ``Refund`` action;
keys through :class:`~penny.parties.Directory`) and is written to the console's action log.
A merchant sees only transactions it is the caller or recipient of, and only its own keys.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Final

from markupsafe import Markup
from starlette.responses import Response, StreamingResponse

from penny.domain.errors import PaymentsError
from penny.domain.model import Operation, Status, Transaction
from penny.domain.parties import PartyKind
from penny.ipn.params import TRANSACTION_STATUS
from penny.money import Money, MoneyError, parse_positive_amount
from penny.services.payments import RefundRequest
from penny.storage import console_sql, ipn_sql, merchant_sql
from penny.web.cobranded import security
from penny.web.cobranded.http import Page, decode_query
from penny.web.console import history, views
from penny.web.console.charts import Bar, bar_chart
from penny.web.console.site import PREFIX, NotFoundError, PagesOf, Viewer

BASE: Final = f"{PREFIX}/merchant"
#: Rows read per query while a CSV export streams (memory stays constant).
EXPORT_CHUNK: Final = 500
_REFERENCE: Final = re.compile(r"\Aconsole-[A-Za-z0-9_-]{16,48}\Z")
_MONEY_IN: Final = (Operation.fund_prepaid.value, Operation.settle_debt.value)


class MerchantPages(PagesOf):
    """The console's pages, over a :class:`ConsoleSite`."""

    kind = PartyKind.business
    base = BASE

    def dashboard(self, viewer: Viewer) -> Page:
        merchant = viewer.party.id
        params = decode_query(viewer.incoming.query)
        days = int(params["days"]) if params.get("days") in {"7", "30", "90"} else 30
        now = self.payments.clock.now_us()
        first_day = now - now % views.DAY_US - (days - 1) * views.DAY_US
        facts = history.dashboard_facts(self.site, merchant, first_day, now)
        totals, daily = history.period_totals(facts), history.daily_sales(facts)
        balance = self.payments.account_balance(merchant)

        def total(*operations: str) -> int:
            return sum(totals.get(op, (0, 0, 0))[0] for op in operations)

        fees = sum(fee for _amount, fee, _count in totals.values())
        money_in = total(*_MONEY_IN)
        figures = {
            "liability": self.payments.total_prepaid_liability(merchant).main.minor,
            "debt": self.payments.outstanding_debt(merchant).main.minor,
            "available": balance.disburse.minor,
            "balance": balance.total.minor,
            "sales": total(Operation.pay.value),
            "sales_count": totals.get(Operation.pay.value, (0, 0, 0))[2],
            "refunds": total(Operation.refund.value),
            "money_in": money_in,
            "fees": fees,
            "net": money_in - fees,
        }
        days_rows = [
            (views.day(start), *daily.get(start, (0, 0)))
            for start in range(first_day, now + 1, views.DAY_US)
        ]
        bars = [
            Bar(
                views.short_day(first_day + i * views.DAY_US)[:6],
                amount,
                f"{d}: {views.money(amount)}",
            )
            for i, (d, amount, _count) in enumerate(days_rows)
        ]
        tallest = max((bar.value for bar in bars), default=0)
        chart = bar_chart(
            bars, f"Daily sales over the last {days} days", f"highest day: {views.money(tallest)}"
        )
        counts = [
            Bar(bar.label, n, f"{d}: {n} Pays")
            for bar, (d, _a, n) in zip(bars, days_rows, strict=True)
        ]
        most = max((bar.value for bar in counts), default=0)
        count_chart = bar_chart(counts, f"Pays per day over the last {days} days", f"most: {most}")
        return self.site.view(
            viewer,
            "merchant_dashboard.html",
            days=days,
            periods=views.PERIODS,
            figures=figures,
            chart=Markup(chart),  # noqa: S704 - built by charts.bar_chart, which escapes
            count_chart=Markup(count_chart),  # noqa: S704 - the same
            days_rows=days_rows,
            **history.balance_history(self.site, merchant, facts, now),
        )

    # -- transactions --------------------------------------------------------------------

    def transactions(self, viewer: Viewer) -> Page:
        params = decode_query(viewer.incoming.query)
        filters = views.read_filters(params, viewer.party.id)
        after = views.decode_cursor(params.get("after", ""))
        rows: list[Transaction] = []
        if not filters.errors:
            with self.site.database.read() as conn:
                rows = console_sql.transactions_page(
                    conn, filters.where, after, views.PAGE_SIZE + 1
                )
        rows, cursor = views.page_of(rows, views.received_position)
        next_query = filters.query(after=cursor) if cursor else None
        return self.site.view(
            viewer,
            "merchant_transactions.html",
            rows=[views.row_of(txn) for txn in rows],
            values=filters.values,
            errors=filters.errors,
            operations=views.OPERATIONS,
            statuses=views.STATUSES,
            next_query=next_query,
            first_page=after is None,
            export_query=filters.query(),
            filters_query=filters.query(),
        )

    def export(self, viewer: Viewer) -> Response | Page:
        """The filtered list as CSV, newest first, streamed a chunk of rows at a time."""
        params = decode_query(viewer.incoming.query)
        filters = views.read_filters(params, viewer.party.id)
        if filters.errors:
            return self.site.problem(
                400, "This export cannot be made", " ".join(filters.errors.values())
            )
        headers = security.security_headers()
        headers["Content-Disposition"] = 'attachment; filename="penny-transactions.csv"'
        return StreamingResponse(
            self._csv_lines(filters.where), media_type="text/csv; charset=utf-8", headers=headers
        )

    def _csv_lines(self, where: console_sql.TransactionFilter) -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(views.CSV_COLUMNS)
        after: tuple[int, str] | None = None
        with merchant_sql.export_connection(self.site.database) as conn:
            while True:
                chunk = console_sql.transactions_page(conn, where, after, EXPORT_CHUNK)
                conn.rollback()  # no snapshot held while the chunk is sent
                for txn in chunk:
                    writer.writerow(views.csv_fields(txn))
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                if len(chunk) < EXPORT_CHUNK:
                    return
                after = (chunk[-1].received_at, chunk[-1].id)

    def _own(self, viewer: Viewer, txn_id: str) -> Transaction:
        if len(txn_id) > 64:
            raise NotFoundError
        try:
            return self.payments.transaction(viewer.party.id, txn_id)
        except PaymentsError:
            raise NotFoundError from None

    def transaction(self, viewer: Viewer) -> Page:
        txn = self._own(viewer, viewer.incoming.path_params.get("tid", ""))
        journals = [j for j in (txn.pending_journal_id, txn.journal_id) if j is not None]
        with self.site.database.read() as conn:
            legs = [
                (journal, leg)
                for journal in journals
                for leg in self.payments.ledger.sql.legs(conn, journal)
            ]
            labels = console_sql.account_labels(conn, [leg.account_id for _j, leg in legs])
            sent = ipn_sql.sent_about(
                conn, account_id=viewer.party.id, subject_id=txn.id, kind=TRANSACTION_STATUS
            )
        refunds = self.payments.refunds(viewer.party.id, txn.id)
        return self.site.view(
            viewer,
            "merchant_transaction.html",
            txn=txn,
            row=views.row_of(txn),
            legs=[
                (journal, labels.get(leg.account_id, f"account {leg.account_id}"), leg)
                for journal, leg in legs
            ],
            refunds=[views.row_of(r) for r in refunds],
            refundable=_refundable(txn),
            left=txn.amount - txn.refunded,
            sent=sent,
        )

    def refund(self, viewer: Viewer) -> Page:
        txn = self._own(viewer, viewer.incoming.path_params.get("tid", ""))
        left = txn.amount - txn.refunded
        if viewer.incoming.method == "GET" or not _refundable(txn):
            reference = f"console-{security.new_secret()[:32]}"
            values = {"amount": Money(left, txn.currency).plain()}
            status = 200 if _refundable(txn) else 409
            return self._refund_page(viewer, txn, status, reference=reference, values=values)
        form = viewer.form
        reference = form.get("reference", "")
        if not _REFERENCE.match(reference):
            return self.site.problem(400, "This form cannot be read", "Reload the page.")
        try:
            amount = parse_positive_amount(form.get("amount", "").strip()[:32], txn.currency)
            made = self.payments.execute(
                RefundRequest(
                    caller_id=viewer.party.id,
                    caller_reference=reference,
                    transaction_id=txn.id,
                    amount=amount,
                    caller_description="Refund from the merchant console",
                )
            )
        except (MoneyError, PaymentsError) as error:
            message = error.detail if isinstance(error, PaymentsError) else str(error)
            values = {"amount": form.get("amount", "")[:32]}
            return self._refund_page(
                viewer, txn, 400, reference=reference, values=values, errors={"amount": message}
            )
        detail = f"{views.money(made.amount, made.currency)} of {txn.id}: {made.status.value}"
        self.site.record(viewer, "refund", made.id, detail)
        return Page(location=f"{BASE}/transactions/{txn.id}")

    def _refund_page(self, viewer: Viewer, txn: Transaction, status: int, **more: object) -> Page:
        return self.site.view(
            viewer,
            "merchant_refund.html",
            status,
            txn=txn,
            row=views.row_of(txn),
            refundable=_refundable(txn),
            left=views.money(txn.amount - txn.refunded, txn.currency),
            **more,
        )

    # -- API keys and the log ------------------------------------------------------------

    def keys(self, viewer: Viewer) -> Page:
        created = None
        if viewer.incoming.method == "POST":
            made = self.directory.create_key(viewer.party.id)
            self.site.record(viewer, "key.create", made.key.access_key_id)
            created = made
        keys = self.directory.list_keys(viewer.party.id)
        return self.site.view(viewer, "merchant_keys.html", keys=keys, created=created)

    def revoke(self, viewer: Viewer) -> Page:
        kid = viewer.incoming.path_params.get("kid", "")[:64]
        key = self.directory.api_key(kid) if kid else None
        if key is None or key.party_id != viewer.party.id:
            raise NotFoundError
        if viewer.incoming.method == "GET" or not key.active:
            return self.site.view(viewer, "merchant_revoke.html", key=key, own=kid == viewer.actor)
        self.directory.revoke_key(kid)
        self.site.record(viewer, "key.revoke", kid)
        with self.site.database.write() as conn:
            console_sql.delete_sessions_of(conn, kid)
        return Page(location=f"{BASE}/keys")

    def log(self, viewer: Viewer) -> Page:
        with self.site.database.read() as conn:
            entries = console_sql.actions_of(conn, viewer.party.id)
        return self.site.view(viewer, "merchant_log.html", entries=entries)

    pages = (
        ("", dashboard, ("GET",)),
        ("/transactions", transactions, ("GET",)),
        ("/transactions.csv", export, ("GET",)),
        ("/transactions/{tid}", transaction, ("GET",)),
        ("/transactions/{tid}/refund", refund, ("GET", "POST")),
        ("/keys", keys, ("GET", "POST")),
        ("/keys/{kid}/revoke", revoke, ("GET", "POST")),
        ("/log", log, ("GET",)),
    )


def _refundable(txn: Transaction) -> bool:
    return (
        txn.operation is Operation.pay
        and txn.status is Status.success
        and txn.amount - txn.refunded > 0
    )
