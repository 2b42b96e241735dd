"""The merchant console's other pages: its buyers' instruments and tokens, IPN (the URL,
deliveries with their attempts, retry), withdrawals to the bank, and, in the sandbox, the
clock and the test cards; and the dashboard's liability and debt over time.

As in :mod:`penny.web.console.merchant`, a merchant sees only its own objects (instruments it
is the recipient of, tokens and notifications it is the caller of, its own withdrawals); any
other id is answered like an unknown one. Changes go through the services (a withdrawal is a
:class:`~penny.services.payments.WithdrawRequest`, the IPN URL is set by the directory, a retry
is :func:`penny.storage.ipn_sql.schedule_again`, as ``penny ipn retry``) and are written to
the console's action log.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlencode

from penny.api.auth import live_from_env
from penny.domain.errors import PaymentsError
from penny.domain.model import Instrument, Operation, Token
from penny.domain.parties import (
    FAILING_BANK_ACCOUNT_SUFFIX,
    SANDBOX_CARDS,
    SANDBOX_ROUTING_NUMBER,
    InvalidDetailsError,
    PartyKind,
)
from penny.money import MoneyError, parse_positive_amount
from penny.sandbox.advance import finish_due
from penny.services.payment_queries import TwoBalances
from penny.services.payments import WithdrawRequest
from penny.services.payments.withdraw import WITHDRAWAL_DAYS
from penny.storage import console_sql, ipn_sql, merchant_sql, payments_sql
from penny.web.cobranded import security
from penny.web.cobranded.http import Page, decode_query
from penny.web.console import views
from penny.web.console.buyer import _line as instrument_line
from penny.web.console.merchant import BASE
from penny.web.console.site import ConsoleSite, NotFoundError, PagesOf, Viewer

#: Rows on a page of the instruments, tokens and IPN lists (keyset pages, newest first).
LIST_SIZE: Final = 100
MAX_ADVANCE_DAYS: Final = 365
_REFERENCE: Final = re.compile(r"\Aconsole-[A-Za-z0-9_-]{16,48}\Z")
_CARD_WORDS: Final = {
    "succeed": "succeeds",
    "decline": "is declined at once",
    "fail_later": "is accepted as pending, then fails a day later",
}


def sandbox_mode(environ: dict[str, str] | None = None) -> bool:
    """True unless ``PENNY_MODE`` says ``production`` (the JSON API's switch, read once)."""
    return not live_from_env(environ)


class MoreMerchantPages(PagesOf):
    """Instruments and tokens, IPN, withdrawals and the sandbox, over a :class:`ConsoleSite`."""

    kind = PartyKind.business
    base = BASE

    def __init__(self, site: ConsoleSite, *, sandbox: bool | None = None) -> None:
        super().__init__(site)
        self.sandbox = sandbox_mode() if sandbox is None else sandbox
        site.templates.globals["sandbox"] = self.sandbox  # the badge and the footer line
        site.templates.globals["sandbox_nav"] = self.sandbox and hasattr(
            self.payments.clock, "advance"
        )

    def instruments(self, viewer: Viewer) -> Page:
        """Two keyset-paged lists, each with its own cursor (``instruments``, ``tokens``)."""
        merchant = viewer.party.id
        cursors = _cursors(viewer, "instruments", "tokens")
        with self.site.database.read() as conn:
            found = merchant_sql.instruments_of_merchant(
                conn, merchant, views.decode_cursor(cursors["instruments"]), LIST_SIZE + 1
            )
            tokens = merchant_sql.tokens_of_merchant(
                conn, merchant, views.decode_cursor(cursors["tokens"]), LIST_SIZE + 1
            )
            names = console_sql.party_names(conn, [i.sender_id for i in found])
            names.update(console_sql.party_names(conn, [t.sender_id for t in tokens]))
        found, next_instruments = views.page_of(found, _created, LIST_SIZE)
        tokens, next_tokens = views.page_of(tokens, _created, LIST_SIZE)
        balances = self.balances(merchant, found)
        return self.site.view(
            viewer,
            "merchant_instruments.html",
            instruments=[_line(i, balances, names) for i in found],
            tokens=[_token_line(t, names) for t in tokens],
            limit=LIST_SIZE,
            instrument_pages=_pager(cursors, "instruments", next_instruments),
            token_pages=_pager(cursors, "tokens", next_tokens),
        )

    def _own_instrument(self, viewer: Viewer, iid: str) -> Instrument:
        return self.site.owned(payments_sql.load_instruments, iid, lambda i: i.recipient_id, viewer)

    def instrument(self, viewer: Viewer) -> Page:
        instrument = self._own_instrument(viewer, viewer.incoming.path_params.get("iid", ""))
        where = console_sql.TransactionFilter(
            caller_id=viewer.party.id, instrument_id=instrument.id
        )
        with self.site.database.read() as conn:
            tokens = merchant_sql.tokens_of_instrument(conn, instrument.id)
            rows = console_sql.transactions_page(conn, where, None, views.PAGE_SIZE)
            names = console_sql.party_names(conn, [instrument.sender_id])
        return self.site.view(
            viewer,
            "merchant_instrument.html",
            line=_line(instrument, self.balances(viewer.party.id, [instrument]), names),
            tokens=[_token_line(t, names) for t in tokens if t.caller_id == viewer.party.id],
            rows=[views.row_of(t) for t in rows],
            page_size=views.PAGE_SIZE,
        )

    def token(self, viewer: Viewer) -> Page:
        tkid = viewer.incoming.path_params.get("tkid", "")
        try:
            token = self.payments.token_by_caller(viewer.party.id, token_id=tkid[:64])
        except PaymentsError:
            raise NotFoundError from None
        usage = self.payments.token_usage(viewer.party.id, token.id)
        with self.site.database.read() as conn:
            names = console_sql.party_names(conn, [token.sender_id])
        return self.site.view(
            viewer,
            "merchant_token.html",
            token=token,
            line=_token_line(token, names),
            usage=usage,
        )

    # -- IPN ----------------------------------------------------------------------------

    def ipn(self, viewer: Viewer) -> Page:
        party, errors, values = viewer.party, {}, {}
        if viewer.incoming.method == "POST":
            url = viewer.form.get("url", "").strip()[:2048]
            try:
                party = self.directory.set_ipn_url(party.id, url or None)
            except InvalidDetailsError as error:
                errors, values = {"url": str(error)}, {"url": url}
            else:
                self.site.record(viewer, "ipn.url", party.id, party.ipn_url or "(none)")
                return Page(location=f"{BASE}/ipn")
        cursors = _cursors(viewer, "after")
        with self.site.database.read() as conn:
            found = ipn_sql.listing(
                conn,
                account_id=party.id,
                after=views.decode_cursor(cursors["after"]),
                limit=LIST_SIZE + 1,
            )
        found, next_page = views.page_of(found, _created, LIST_SIZE)
        return self.site.view(
            viewer,
            "merchant_ipn.html",
            400 if errors else 200,
            ipn_url=party.ipn_url or "",
            notifications=found,
            errors=errors,
            values=values or {"url": party.ipn_url or ""},
            limit=LIST_SIZE,
            pages=_pager(cursors, "after", next_page),
        )

    def _own_notification(self, viewer: Viewer) -> ipn_sql.Notification:
        nid = viewer.incoming.path_params.get("nid", "")
        with self.site.database.read() as conn:
            found = ipn_sql.load(conn, nid) if len(nid) <= 32 else None
        if found is None or found.account_id != viewer.party.id:
            raise NotFoundError
        return found

    def notification(self, viewer: Viewer) -> Page:
        found = self._own_notification(viewer)
        with self.site.database.read() as conn:
            attempts = ipn_sql.load_attempts(conn, found.id)
        return self.site.view(
            viewer, "merchant_notification.html", notification=found, attempts=attempts
        )

    def retry(self, viewer: Viewer) -> Page:
        found = self._own_notification(viewer)
        with self.site.database.write() as conn:
            ipn_sql.schedule_again(conn, found.id, self.payments.clock.now_us())
        self.site.record(viewer, "ipn.retry", found.id, f"{found.kind} of {found.subject_id}")
        return Page(location=f"{BASE}/ipn/{found.id}")

    # -- withdrawals --------------------------------------------------------------------

    def withdrawals(self, viewer: Viewer) -> Page:
        errors: dict[str, str] = {}
        values: dict[str, str] = {}
        form = viewer.form
        if viewer.incoming.method == "POST":
            reference = form.get("reference", "")
            if not _REFERENCE.match(reference):
                return self.site.problem(400, "This form cannot be read", "Reload the page.")
            values = {"amount": form.get("amount", "")[:32]}
            try:
                amount = parse_positive_amount(values["amount"].strip(), "USD")
                made = self.payments.execute(
                    WithdrawRequest(viewer.party.id, reference, amount, "From the console")
                )
            except (MoneyError, PaymentsError) as error:
                errors["amount"] = error.detail if isinstance(error, PaymentsError) else str(error)
            else:
                detail = f"{views.money(made.amount, made.currency)}: {made.status.value}"
                self.site.record(viewer, "withdraw", made.id, detail)
                return Page(location=f"{BASE}/withdrawals")
        return self._withdrawals_page(viewer, errors, values)

    def _withdrawals_page(
        self, viewer: Viewer, errors: dict[str, str], values: dict[str, str]
    ) -> Page:
        where = console_sql.TransactionFilter(
            caller_id=viewer.party.id, operation=Operation.withdraw
        )
        with self.site.database.read() as conn:
            rows = console_sql.transactions_page(conn, where, None, LIST_SIZE)
        balance = self.payments.account_balance(viewer.party.id)
        return self.site.view(
            viewer,
            "merchant_withdrawals.html",
            400 if errors else 200,
            rows=[(views.row_of(t), views.when(t.completes_at)) for t in rows],
            available=balance.disburse.minor,
            pending_out=balance.pending_out.minor,
            reference=f"console-{security.new_secret()[:32]}",
            days=WITHDRAWAL_DAYS,
            errors=errors,
            values=values,
            limit=LIST_SIZE,
        )

    # -- the sandbox --------------------------------------------------------------------

    def sandbox_page(self, viewer: Viewer) -> Page:
        clock = self.payments.clock
        advance = getattr(clock, "advance", None)
        if not self.sandbox or advance is None:
            raise NotFoundError
        errors: dict[str, str] = {}
        if viewer.incoming.method == "POST":
            text = viewer.form.get("days", "").strip()
            if not text.isdigit() or not 1 <= int(text) <= MAX_ADVANCE_DAYS:
                errors["days"] = f"Enter a whole number of days from 1 to {MAX_ADVANCE_DAYS}."
            else:
                advance(int(text) * views.DAY_US)
                finished, expired = finish_due(self.payments)
                detail = f"{len(finished)} transaction(s) finished, {expired} hold(s) expired"
                self.site.record(viewer, "sandbox.advance", f"{text} day(s)", detail)
                return Page(location=f"{BASE}/sandbox?moved={text}")
        params = decode_query(viewer.incoming.query)
        moved = params.get("moved", "")
        return self.site.view(
            viewer,
            "merchant_sandbox.html",
            400 if errors else 200,
            now=clock.now_us(),
            moved=moved if moved.isdigit() else "",
            cards=[(number, _CARD_WORDS[b.name]) for number, b in SANDBOX_CARDS.items()],
            failing_suffix=FAILING_BANK_ACCOUNT_SUFFIX,
            routing=SANDBOX_ROUTING_NUMBER,
            errors=errors,
            values={"days": viewer.form.get("days", "")[:8]},
        )

    pages = (
        ("/instruments", instruments, ("GET",)),
        ("/instruments/{iid}", instrument, ("GET",)),
        ("/tokens/{tkid}", token, ("GET",)),
        ("/ipn", ipn, ("GET", "POST")),
        ("/ipn/{nid}", notification, ("GET",)),
        ("/ipn/{nid}/retry", retry, ("POST",)),
        ("/withdrawals", withdrawals, ("GET", "POST")),
        ("/sandbox", sandbox_page, ("GET", "POST")),
    )


def _created(item: Instrument | Token | ipn_sql.Notification) -> tuple[int, str]:
    return item.created_at, item.id


def _cursors(viewer: Viewer, *names: str) -> dict[str, str]:
    """The page cursors the query string carries, by parameter name ("" for the first page)."""
    params = decode_query(viewer.incoming.query)
    return {name: params.get(name, "")[:128] for name in names}


def _pager(cursors: dict[str, str], name: str, after: str | None) -> dict[str, str | None]:
    """The query strings of a list's "Newest" (``None`` on its first page) and "Older" links
    (``None`` on its last page); the page's other lists keep their own cursors."""
    others = {k: v for k, v in cursors.items() if k != name and v}
    return {
        "newest": urlencode(others) if cursors[name] else None,
        "older": urlencode({**others, name: after}) if after else None,
    }


def _token_line(token: Token, names: dict[str, str]) -> dict[str, object]:
    return {
        "id": token.id,
        "kind": token.kind.value,
        "status": token.status.value,
        "buyer": names.get(token.sender_id, token.sender_id),
        "instrument": token.instrument_id,
        "reference": token.caller_reference,
        "created": views.when(token.created_at),
        "cancelled": views.when(token.cancelled_at) if token.cancelled_at else "",
        "reason": token.payment_reason,
    }


def _line(
    instrument: Instrument, balances: dict[str, TwoBalances], names: dict[str, str]
) -> dict[str, object]:
    """An instrument as the merchant's pages show it: the buyer's line, named by its buyer."""
    line = instrument_line(instrument, balances, {})
    line["buyer"] = names.get(instrument.sender_id, instrument.sender_id)
    line["buyer_id"] = instrument.sender_id
    return line
