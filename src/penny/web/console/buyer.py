"""The buyer account (personal accounts): payment methods, the Penny balance, prepaid and
postpaid instruments with their history, and the authorizations (tokens) given to merchants —
those of prepaid and postpaid instruments, and SingleUse, MultiUse and Recurring ones (see
:mod:`penny.web.console.authorizations`) — which the buyer may cancel.

Cancelling goes through :meth:`Payments.cancel_token` on the token's merchant's behalf, exactly
as the merchant's own ``CancelToken``: the merchant's IPN is written to the outbox in the same
transaction and later Pays on the token are refused. A buyer sees only instruments and tokens
it is the sender of; any other id is answered like an unknown one.
"""

from __future__ import annotations

from typing import Any, Final

from penny.domain.model import Instrument, InstrumentKind, Token, TokenTerms
from penny.domain.parties import PartyKind, PaymentMethod
from penny.money import Money
from penny.services import gatekeeper
from penny.services.payment_queries import TwoBalances
from penny.storage import console_sql, payments_sql, terms_sql
from penny.web.cobranded.http import Page, decode_query
from penny.web.console import authorizations, views
from penny.web.console.authorizations import Authorization
from penny.web.console.site import PREFIX, PagesOf, Viewer

BASE: Final = f"{PREFIX}/buyer"


class BuyerPages(PagesOf):
    """The buyer's pages, over a :class:`ConsoleSite`."""

    kind = PartyKind.personal
    base = BASE

    def home(self, viewer: Viewer) -> Page:
        buyer = viewer.party.id
        with self.site.database.read() as conn:
            instruments = console_sql.instruments_of_buyer(conn, buyer)
            tokens = console_sql.tokens_of_buyer(conn, buyer)
            names = console_sql.party_names(conn, [i.recipient_id for i in instruments])
            names.update(console_sql.party_names(conn, [t.caller_id for t in tokens]))
        balances = self.balances(buyer, instruments)
        every_method = self.directory.payment_methods(buyer)
        methods = [m for m in every_method if m.last4 is not None]
        given = [t for t in tokens if t.kind.authorizes]
        authorizations = self._authorizations(given, names, every_method)
        return self.site.view(
            viewer,
            "buyer_home.html",
            methods=[m.describe() for m in methods],
            balance=self.payments.account_balance(buyer).total.minor,
            prepaid=[
                _line(i, balances, names) for i in instruments if i.kind is InstrumentKind.prepaid
            ],
            postpaid=[
                _line(i, balances, names) for i in instruments if i.kind is InstrumentKind.credit
            ],
            tokens=[(t, names.get(t.caller_id, t.caller_id)) for t in tokens if t not in given],
            authorizations=[
                (found, self.payments.token_usage(found.token.caller_id, found.token.id))
                for found in authorizations
            ],
        )

    def _authorizations(
        self, tokens: list[Token], names: dict[str, str], methods: list[PaymentMethod]
    ) -> list[Authorization]:
        """SingleUse, MultiUse and Recurring tokens with their instruments, terms and method."""
        with self.site.database.read() as conn:
            instruments = payments_sql.load_instruments(conn, [t.instrument_id for t in tokens])
            terms = terms_sql.load_terms(conn, [t.id for t in tokens])
        by_id = {m.id: m for m in methods}
        return [
            Authorization(
                token,
                instruments[token.instrument_id],
                terms.get(token.id, TokenTerms(token.id)),
                names.get(token.caller_id, token.caller_id),
                by_id.get(token.payment_method_id or ""),
            )
            for token in tokens
        ]

    def _own_instrument(self, viewer: Viewer, iid: str) -> Instrument:
        return self.site.owned(payments_sql.load_instruments, iid, lambda i: i.sender_id, viewer)

    def instrument(self, viewer: Viewer) -> Page:
        instrument = self._own_instrument(viewer, viewer.incoming.path_params.get("iid", ""))
        params = decode_query(viewer.incoming.query)
        after = views.decode_cursor(params.get("after", ""))
        where = console_sql.TransactionFilter(instrument_id=instrument.id)
        with self.site.database.read() as conn:
            rows = console_sql.transactions_page(conn, where, after, views.PAGE_SIZE + 1)
            names = console_sql.party_names(conn, [instrument.recipient_id])
        rows, cursor = views.page_of(rows, views.received_position)
        balances = self.balances(viewer.party.id, [instrument])
        return self.site.view(
            viewer,
            "buyer_instrument.html",
            line=_line(instrument, balances, names),
            rows=[views.row_of(t) for t in rows],
            next_after=cursor,
            first_page=after is None,
        )

    def _own_token(self, viewer: Viewer, tid: str) -> Token:
        return self.site.owned(payments_sql.load_tokens, tid, lambda t: t.sender_id, viewer)

    def token(self, viewer: Viewer) -> Page:
        token = self._own_token(viewer, viewer.incoming.path_params.get("tid", ""))
        usage = self.payments.token_usage(token.caller_id, token.id)
        with self.site.database.read() as conn:
            names = console_sql.party_names(conn, [token.caller_id])
            instrument = payments_sql.load_instruments(conn, [token.instrument_id]).get(
                token.instrument_id
            )
        assert instrument is not None
        merchant = names.get(token.caller_id, token.caller_id)
        if token.kind.authorizes:
            methods = self.directory.payment_methods(viewer.party.id)
            (found,) = self._authorizations([token], names, methods)
            shown: dict[str, Any] = {
                "authorization": found,
                "rules": authorizations.rules_in_words(found),
            }
        else:
            shown = {
                "limit": _limit(instrument),
                "rules": rules_in_words(token, instrument, merchant),
            }
        return self.site.view(
            viewer,
            "buyer_token.html",
            token=token,
            merchant=merchant,
            instrument=instrument,
            usage=usage,
            **shown,
        )

    def cancel(self, viewer: Viewer) -> Page:
        token = self._own_token(viewer, viewer.incoming.path_params.get("tid", ""))
        if token.active:
            self.payments.cancel_token(token.caller_id, token.id)
            self.site.record(viewer, "token.cancel", token.id, f"merchant {token.caller_id}")
        return Page(location=f"{BASE}/tokens/{token.id}")

    pages = (
        ("", home, ("GET",)),
        ("/instruments/{iid}", instrument, ("GET",)),
        ("/tokens/{tid}", token, ("GET",)),
        ("/tokens/{tid}/cancel", cancel, ("POST",)),
    )


_OPERATION_WORDS: Final = {
    "Pay": "payments for your purchases (Pay)",
    "FundPrepaid": "buying prepaid value, charged to your payment method (FundPrepaid)",
    "SettleDebt": "settling what you owe, charged to your payment method (SettleDebt)",
}


def rules_in_words(token: Token, instrument: Instrument, merchant: str) -> list[str] | None:
    """What a token's GateKeeper rules allow, in plain sentences; ``None`` when its script is
    not the one Penny generates for it (the page then shows the script as written)."""
    if gatekeeper.script_of(token, instrument) != gatekeeper.pipeline_script(
        token.kind, instrument, token.caller_id
    ):
        return None
    rules = gatekeeper.pipeline_rules(token.kind, instrument, token.caller_id)
    words = [
        f"Only for {_OPERATION_WORDS.get(rules.operation, rules.operation)}.",
        f"Only {merchant} may use it, only to pay {merchant}, and only from your account.",
    ]
    if rules.payment_method == "Prepaid":
        words.append(f"Payments come out of your prepaid balance with {merchant}.")
    elif rules.payment_method == "Debt":
        words.append(f"Payments are added to your tab with {merchant}.")
    if not rules.check_validity:
        words.append("At any time, even after the tab's end date: a debt can still be settled.")
    elif rules.valid_until is None:
        words.append(f"From {views.when(rules.valid_from)}, with no end date.")
    else:
        until = views.when(rules.valid_until)
        words.append(f"From {views.when(rules.valid_from)} until {until}.")
    if rules.min_charge is not None:
        words.append(f"Each payment at least {views.money(rules.min_charge.minor)}.")
    if rules.max_charge is not None:
        words.append(f"Each payment at most {views.money(rules.max_charge.minor)}.")
    return words


def _limit(instrument: Instrument) -> str:
    limit = instrument.funding_limit
    if instrument.kind is InstrumentKind.credit:
        limit = instrument.credit_limit
    return "no limit" if limit is None else views.money(limit, instrument.currency)


def _line(
    instrument: Instrument, balances: dict[str, TwoBalances], names: dict[str, str]
) -> dict[str, object]:
    """What the pages show of an instrument."""
    balance = balances.get(instrument.id)
    zero = Money(0, instrument.currency)
    return {
        "id": instrument.id,
        "kind": instrument.kind.value,
        "merchant": names.get(instrument.recipient_id, instrument.recipient_id),
        "balance": views.money((balance.main if balance else zero).minor, instrument.currency),
        "pending": views.money((balance.pending if balance else zero).minor, instrument.currency),
        "limit": _limit(instrument),
        "funded": views.money(instrument.funded_total, instrument.currency),
        "charged": views.money(instrument.charged_total, instrument.currency),
        "valid_from": views.when(instrument.valid_from),
        "valid_until": views.when(instrument.valid_until) if instrument.valid_until else "no end",
        "reason": instrument.payment_reason,
    }
