"""The payment method step: the signed-in buyer picks one of their methods the pipeline allows,
or adds a card or a bank account. A sandbox card that is expired or set to decline is refused
when picked (docs/sandbox.md), and again at confirmation.
"""

from __future__ import annotations

from typing import Any, Final

from penny.domain.parties import (
    CardBehaviour,
    DirectoryError,
    Party,
    PaymentMethod,
    PaymentMethodKind,
    card_expired,
    parse_expiry,
)
from penny.parties import Directory
from penny.services.payments import Payments
from penny.web.cobranded.http import Incoming, Page, to_step
from penny.web.cobranded.pipeline import Context, Pipelines
from penny.web.cobranded.views import describe, finished, sentence, view

_METHOD_LABELS: Final = {
    PaymentMethodKind.card: "credit card",
    PaymentMethodKind.bank: "bank account",
    PaymentMethodKind.balance: "Penny balance",
}


class MethodStep:
    """``…/method`` (GET, POST), ``…/card`` and ``…/bank`` (POST)."""

    def __init__(self, directory: Directory, payments: Payments, pipelines: Pipelines) -> None:
        self.directory = directory
        self.payments = payments
        self.pipelines = pipelines

    def open_with_buyer(
        self, incoming: Incoming, *, check_csrf: bool
    ) -> tuple[Context, Party] | Page:
        """The pipeline and its signed-in buyer; or the page to show instead (the pipeline's
        end, when it is finished; sign-in, when nobody is signed in)."""
        ctx = self.pipelines.context(incoming, check_csrf=check_csrf)
        ended = finished(ctx)
        if ended is not None:
            return ended
        buyer = self.pipelines.buyer(ctx)
        return to_step(ctx.row.id, "signin") if buyer is None else (ctx, buyer)

    def methods(self, ctx: Context, buyer: Party) -> list[PaymentMethod]:
        """The buyer's payment methods of the kinds the pipeline allows."""
        allowed = set(ctx.request.methods)
        return [m for m in self.directory.payment_methods(buyer.id) if m.kind in allowed]

    def chosen(self, ctx: Context, buyer: Party) -> PaymentMethod | None:
        """The method the buyer picked, while it is still theirs and allowed."""
        if ctx.row.payment_method_id is None:
            return None
        methods = {m.id: m for m in self.methods(ctx, buyer)}
        return methods.get(ctx.row.payment_method_id)

    def page(self, ctx: Context, buyer: Party, status: int = 200, **more: Any) -> Page:
        allowed = ctx.request.methods
        methods = self.methods(ctx, buyer)
        return view(
            ctx,
            "method.html",
            status,
            buyer=buyer.name,
            methods=[(m.id, describe(m)) for m in methods],
            chosen=ctx.row.payment_method_id,
            allow_card=PaymentMethodKind.card in allowed,
            allow_bank=PaymentMethodKind.bank in allowed,
            allowed_labels=[_METHOD_LABELS[kind] for kind in allowed],
            **more,
        )

    def method(self, incoming: Incoming) -> Page:
        opened = self.open_with_buyer(incoming, check_csrf=incoming.method == "POST")
        if isinstance(opened, Page):
            return opened
        ctx, buyer = opened
        if incoming.method == "GET":
            return self.page(ctx, buyer)
        chosen = (incoming.form or {}).get("method_id", "")
        methods = {m.id: m for m in self.methods(ctx, buyer)}
        method = methods.get(chosen)
        if method is None:
            return self.page(
                ctx, buyer, 400, errors={"method_id": "Choose one of your payment methods."}
            )
        problem = decline_reason(method, self.payments.clock.now_us())
        if problem is not None:
            return self.page(ctx, buyer, 400, errors={"method_id": problem})
        self.pipelines.choose_method(ctx, method.id)
        return to_step(ctx.row.id, "review")

    def add_card(self, incoming: Incoming) -> Page:
        opened = self.open_with_buyer(incoming, check_csrf=True)
        if isinstance(opened, Page):
            return opened
        ctx, buyer = opened
        form = incoming.form or {}
        values = {"number": "", "expiry": form.get("expiry", "")[:16]}
        if PaymentMethodKind.card not in ctx.request.methods:
            return self.page(ctx, buyer, 400, errors={"card": "Cards are not allowed."})
        try:
            month, year = parse_expiry(form.get("expiry", "").strip())
        except DirectoryError as error:
            return self.page(
                ctx, buyer, 400, errors={"expiry": sentence(str(error))}, values=values
            )
        try:
            self.directory.add_card(
                buyer.id, form.get("number", "")[:64], month, year, form.get("holder") or None
            )
        except DirectoryError as error:
            return self.page(
                ctx, buyer, 400, errors={"number": sentence(str(error))}, values=values
            )
        return to_step(ctx.row.id, "method")

    def add_bank(self, incoming: Incoming) -> Page:
        opened = self.open_with_buyer(incoming, check_csrf=True)
        if isinstance(opened, Page):
            return opened
        ctx, buyer = opened
        form = incoming.form or {}
        if PaymentMethodKind.bank not in ctx.request.methods:
            return self.page(ctx, buyer, 400, errors={"account": "Bank accounts are not allowed."})
        try:
            self.directory.add_bank(
                buyer.id, form.get("routing", "")[:32], form.get("account", "")[:32]
            )
        except DirectoryError as error:
            return self.page(
                ctx,
                buyer,
                400,
                errors={"account": sentence(str(error))},
                values={"routing": form.get("routing", "")[:32]},
            )
        return to_step(ctx.row.id, "method")


def decline_reason(method: PaymentMethod, now_us: int) -> str | None:
    """Why a sandbox card cannot be used (docs/sandbox.md), checked when the buyer picks it."""
    if method.kind is not PaymentMethodKind.card:
        return None
    assert method.exp_month is not None
    assert method.exp_year is not None
    if card_expired(method.exp_month, method.exp_year, now_us):
        return "This card has expired. Choose another payment method."
    if method.behaviour is CardBehaviour.decline:
        return "This card was declined by the issuing bank. Choose another payment method."
    return None
