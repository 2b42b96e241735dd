"""The payment method step: the signed-in buyer picks one of their methods the pipeline allows,
or adds a card or a bank account. A sandbox card that is expired or set to decline is refused
when picked (docs/sandbox.md), and again at confirmation.

Each method is shown with what it can pay (:class:`MethodOption`): the Penny balance its
available amount, which cannot pay when it is less than the amount the authorization may charge
(the pipeline's ``limit``); such a method (and an expired card) is shown but cannot be picked,
is never pre-selected, and is refused when picked or confirmed anyway (:meth:`MethodStep.problem`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from penny.domain.parties import (
    CardBehaviour,
    DirectoryError,
    Party,
    PaymentMethod,
    PaymentMethodKind,
    card_expired,
    parse_expiry,
)
from penny.money import Money
from penny.parties import Directory
from penny.services.payments import Payments
from penny.web.cobranded.http import Incoming, Page, to_step
from penny.web.cobranded.params import PipelineRequest
from penny.web.cobranded.pipeline import Context, Pipelines
from penny.web.cobranded.views import describe, finished, plain_money, sentence, view

_METHOD_LABELS: Final = {
    PaymentMethodKind.card: "credit card",
    PaymentMethodKind.bank: "bank account",
    PaymentMethodKind.balance: "Penny balance",
}


@dataclass(frozen=True, slots=True)
class MethodOption:
    """A method as the page lists it: what it can pay, and why it cannot (``None``: it can)."""

    id: str
    label: str
    usable: str
    problem: str | None
    #: Whether the buyer may pick it (an expired card or a short balance: no).
    selectable: bool


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

    def problem(self, ctx: Context, buyer: Party, method: PaymentMethod) -> str | None:
        """Why ``method`` cannot pay for this pipeline (``None``: it can, as far as is known
        before charging it)."""
        foreign = not_theirs(ctx, buyer)
        if foreign is not None:
            return foreign
        declined = decline_reason(method, self.payments.clock.now_us())
        if declined is not None or method.kind is not PaymentMethodKind.balance:
            return declined
        available = self.payments.account_balance(buyer.id).disburse
        amount = needed(ctx.request)
        if amount is None:
            if available.minor > 0:
                return None
            return "Your Penny balance is empty, so it cannot pay. Choose another payment method."
        if available.minor >= amount.minor:
            return None
        return (
            f"Your Penny balance ({plain_money(available)}) is less than the "
            f"{plain_money(amount)} this authorization may charge, so it cannot pay. "
            "Choose another payment method."
        )

    def options(self, ctx: Context, buyer: Party) -> list[MethodOption]:
        """The buyer's allowed methods, each with what it can pay."""
        wanted = needed(ctx.request)
        amount = "any amount" if wanted is None else plain_money(wanted)
        found = []
        for method in self.methods(ctx, buyer):
            problem = self.problem(ctx, buyer, method)
            usable = f"Can pay {amount}."
            # A sandbox card set to decline is only found out when charged, as a real one.
            selectable = problem is None or method.behaviour is CardBehaviour.decline
            if method.kind is PaymentMethodKind.balance:
                available = plain_money(self.payments.account_balance(buyer.id).disburse)
                can = "Can" if problem is None else "Cannot"
                usable = f"Available: {available}. {can} pay {amount}."
            elif not selectable:
                usable = "Cannot pay: this card has expired."
            found.append(MethodOption(method.id, describe(method), usable, problem, selectable))
        return found

    def page(self, ctx: Context, buyer: Party, status: int = 200, **more: Any) -> Page:
        allowed = ctx.request.methods
        foreign = not_theirs(ctx, buyer)
        if foreign is not None and not more.get("errors"):
            more["errors"] = {"method_id": foreign}
        options = self.options(ctx, buyer)
        can_pay = [o.id for o in options if o.problem is None]
        chosen = ctx.row.payment_method_id
        if chosen not in can_pay:
            chosen = can_pay[-1] if can_pay else None
        return view(
            ctx,
            "method.html",
            status,
            buyer=buyer.name,
            methods=options,
            chosen=chosen,
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
        problem = self.problem(ctx, buyer, method)
        if problem is not None:
            return self.page(ctx, buyer, 400, errors={"method_id": problem})
        self.pipelines.choose_method(ctx, method.id)
        return to_step(ctx.row.id, "review")

    def add_card(self, incoming: Incoming) -> Page:
        return self.add_method(incoming, PaymentMethodKind.card)

    def add_bank(self, incoming: Incoming) -> Page:
        return self.add_method(incoming, PaymentMethodKind.bank)

    def add_method(self, incoming: Incoming, kind: PaymentMethodKind) -> Page:
        """The add-card or add-bank form posted: the method added (back to the choice), or
        the form again with its mistakes."""
        opened = self.open_with_buyer(incoming, check_csrf=True)
        if isinstance(opened, Page):
            return opened
        ctx, buyer = opened
        form = incoming.form or {}
        adding = ADDING[kind]
        if kind not in ctx.request.methods:
            return self.page(ctx, buyer, 400, errors={adding.field: adding.not_allowed})
        errors = adding.add(self.directory, buyer.id, form)
        if errors:
            return self.page(ctx, buyer, 400, errors=errors, values=adding.kept(form))
        return to_step(ctx.row.id, "method")


def add_card_from(directory: Directory, buyer_id: str, form: dict[str, str]) -> dict[str, str]:
    """Add the card a form describes (``number``, ``expiry`` MM/YYYY, ``holder``) to the
    buyer; the mistakes by field (empty: added). The hosted pages and the buyer account."""
    try:
        month, year = parse_expiry(form.get("expiry", "").strip()[:16])
    except DirectoryError as error:
        return {"expiry": sentence(str(error))}
    holder = form.get("holder", "").strip()[:128] or None
    try:
        directory.add_card(buyer_id, form.get("number", "")[:64], month, year, holder)
    except DirectoryError as error:
        return {"number": sentence(str(error))}
    return {}


def add_bank_from(directory: Directory, buyer_id: str, form: dict[str, str]) -> dict[str, str]:
    """Add the bank account a form describes (``routing``, ``account``) to the buyer; the
    mistakes by field (empty: added)."""
    try:
        directory.add_bank(buyer_id, form.get("routing", "")[:32], form.get("account", "")[:32])
    except DirectoryError as error:
        return {"account": sentence(str(error))}
    return {}


class Adding(NamedTuple):
    """How one kind of payment method is added (the hosted pages and the buyer account): the
    adder, the field a refusal of the kind stands at and its message (the hosted pages), and
    the form values shown again after a mistake."""

    add: Callable[[Directory, str, dict[str, str]], dict[str, str]]
    field: str
    not_allowed: str
    kept: Callable[[dict[str, str]], dict[str, str]]


ADDING: Final = {
    PaymentMethodKind.card: Adding(
        add_card_from,
        "card",
        "Cards are not allowed.",
        lambda form: {"number": "", "expiry": form.get("expiry", "")[:16]},
    ),
    PaymentMethodKind.bank: Adding(
        add_bank_from,
        "account",
        "Bank accounts are not allowed.",
        lambda form: {"routing": form.get("routing", "")[:32]},
    ),
}


def not_theirs(ctx: Context, buyer: Party) -> str | None:
    """Why ``buyer`` cannot confirm an EditToken of another buyer's token (``None``: they
    can, or it is not an EditToken)."""
    owner = ctx.request.old_sender_id
    if owner is None or owner == buyer.id:
        return None
    return (
        "This authorization was given by another Penny account: sign out, and sign in as "
        "the account that gave it."
    )


def needed(request: PipelineRequest) -> Money | None:
    """What a method must be able to pay for this pipeline: the prepaid ``fundingAmount`` or
    the postpaid ``creditLimit`` (the first charge is usually all of it), a token's
    ``transactionAmount``; ``None`` for a MultiUse token without one (any amount)."""
    if not request.pipeline.issues_token:
        return request.limit
    return request.transaction_amount


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
