"""The buyer's payment methods and Penny balance: list, add and remove cards and bank accounts
(last four digits only), and the balance with its activity.

Adding goes through the directory, exactly as on the hosted pages (the same form reading:
:data:`~penny.web.cobranded.methods.ADDING`). Removing is a confirmation page, then
:meth:`Payments.remove_payment_method`: the authorizations that charge the method are
cancelled in the same transaction as the merchant's own ``CancelToken`` would (its IPN is
sent), and what the instruments hold stays (docs/decisions.md, #16). The Penny balance cannot
be removed. A method of another buyer is answered like an unknown one.
"""

from __future__ import annotations

from typing import Final

from penny.domain.model import Token
from penny.domain.parties import PartyKind, PaymentMethod, PaymentMethodKind
from penny.ledger.model import JournalKind, PendingState
from penny.storage import console_sql, payments_sql
from penny.web.cobranded.http import Page
from penny.web.cobranded.methods import ADDING
from penny.web.console import views
from penny.web.console.site import PREFIX, NotFoundError, PagesOf, Viewer

BASE: Final = f"{PREFIX}/buyer"
#: Movements of the Penny balance shown on its page (newest first).
ACTIVITY_ROWS: Final = 100


class WalletPages(PagesOf):
    """``/account/buyer/methods…`` and ``/account/buyer/balance``."""

    kind = PartyKind.personal
    base = BASE

    def _page(self, viewer: Viewer, status: int = 200, **more: object) -> Page:
        buyer = viewer.party.id
        methods = [m for m in self.directory.payment_methods(buyer) if m.last4 is not None]
        used = {m.id: len(self.payments.charging(buyer, m.id)) for m in methods}
        return self.site.view(
            viewer,
            "buyer_methods.html",
            status,
            methods=[(m, m.describe(), used[m.id]) for m in methods],
            balance=self.payments.account_balance(buyer).total.minor,
            **more,
        )

    def methods(self, viewer: Viewer) -> Page:
        return self._page(viewer)

    def add_card(self, viewer: Viewer) -> Page:
        return self._add(viewer, PaymentMethodKind.card, "card")

    def add_bank(self, viewer: Viewer) -> Page:
        return self._add(viewer, PaymentMethodKind.bank, "bank account")

    def _add(self, viewer: Viewer, kind: PaymentMethodKind, what: str) -> Page:
        """Add the method the form describes, as the hosted pages do (:data:`ADDING`); the
        activity log says ``what`` was added."""
        adding = ADDING[kind]
        errors = adding.add(self.directory, viewer.party.id, viewer.form)
        if errors:
            return self._page(viewer, 400, errors=errors, values=adding.kept(viewer.form))
        self.site.record(viewer, "method.add", what)
        return Page(location=f"{BASE}/methods")

    def _own_method(self, viewer: Viewer) -> PaymentMethod:
        mid = viewer.incoming.path_params.get("mid", "")[:64]
        for method in self.directory.payment_methods(viewer.party.id):
            if method.id == mid and method.kind is not PaymentMethodKind.balance:
                return method
        raise NotFoundError

    def remove(self, viewer: Viewer) -> Page:
        method = self._own_method(viewer)
        if viewer.incoming.method == "GET":
            tokens = self.payments.charging(viewer.party.id, method.id)
            return self.site.view(
                viewer,
                "buyer_remove.html",
                method=method,
                label=method.describe(),
                charging=self._charging_lines(tokens),
            )
        cancelled = self.payments.remove_payment_method(viewer.party.id, method.id)
        if cancelled is None:  # removed meanwhile (another tab)
            raise NotFoundError
        detail = method.describe()
        if cancelled:
            detail += "; cancelled " + ", ".join(t.id for t in cancelled)
        self.site.record(viewer, "method.remove", method.id, detail)
        return Page(location=f"{BASE}/methods")

    def _charging_lines(self, tokens: list[Token]) -> list[dict[str, str]]:
        with self.site.database.read() as conn:
            names = console_sql.party_names(conn, [t.caller_id for t in tokens])
            instruments = payments_sql.load_instruments(conn, [t.instrument_id for t in tokens])
        lines = []
        for token in tokens:
            instrument = instruments[token.instrument_id]
            prepaid = instrument.kind.value == "prepaid"
            lines.append(
                {
                    "token": token.id,
                    "merchant": names.get(token.caller_id, token.caller_id),
                    "what": "prepaid balance (funding)" if prepaid else "tab (settling the debt)",
                    "instrument": instrument.id,
                }
            )
        return lines

    def balance(self, viewer: Viewer) -> Page:
        party = viewer.party
        assert party.balance_account_id is not None
        with self.site.database.read() as conn:
            lines = console_sql.balance_activity(conn, party.balance_account_id, ACTIVITY_ROWS)
            names = console_sql.party_names(
                conn, [line.transaction.recipient_id for line in lines if line.transaction]
            )
        balance = self.payments.account_balance(party.id)
        return self.site.view(
            viewer,
            "buyer_balance.html",
            total=balance.total.minor,
            available=balance.disburse.minor,
            pending_out=balance.pending_out.minor,
            rows=[_activity_row(line, names) for line in lines if _moved(line)],
        )

    pages = (
        ("/methods", methods, ("GET",)),
        ("/methods/card", add_card, ("POST",)),
        ("/methods/bank", add_bank, ("POST",)),
        ("/methods/{mid}/remove", remove, ("GET", "POST")),
        ("/balance", balance, ("GET",)),
    )


def _moved(line: console_sql.BalanceLine) -> bool:
    """Whether a leg is shown: a hold only while it holds (once posted, its posting is the
    movement; once released, nothing moved)."""
    return line.kind is not JournalKind.pending or line.pending_state is PendingState.open


def _activity_row(line: console_sql.BalanceLine, names: dict[str, str]) -> dict[str, str]:
    """A movement of the balance as its table shows it."""
    txn = line.transaction
    what = "Money in (deposit)" if line.amount > 0 else "Money out"
    if txn is not None:
        merchant = names.get(txn.recipient_id, txn.recipient_id)
        what = f"{txn.operation.value} for {merchant}"
    state = "pending" if line.kind is JournalKind.pending else "done"
    sign = "+" if line.amount > 0 else ""
    return {
        "when": views.when(line.at),
        "what": what,
        "amount": f"{sign}{views.money(line.amount)}",
        "state": state,
        "transaction": txn.id if txn else "",
    }
