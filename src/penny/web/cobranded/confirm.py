"""The last steps: review, then confirm (the payments service issues the instrument and its
tokens, or the SingleUse, MultiUse or Recurring token, or EditToken's replacement), cancel, or
"none of my methods is allowed". Each ends the pipeline with a redirect to the merchant's
``returnURL`` signed by :class:`~penny.signing.Signer` (spec §3, §7).

A confirm is idempotent twice over: the pipeline row finishes once (a conditional update; a
second confirm, or a concurrent cancel, gets the first one's answer) and the payments service's
set-up is idempotent on the caller references.
"""

from __future__ import annotations

from penny.domain.errors import PaymentsError
from penny.sandbox.instruments import postpaid_setup, prepaid_setup, sender_token_setup
from penny.services.payments import InstrumentSetup, Payments, SenderTokenSetup
from penny.signing import Signer
from penny.storage import cobranded_sql as sql
from penny.web.cobranded.http import Incoming, Page, Settings, to_step
from penny.web.cobranded.methods import MethodStep
from penny.web.cobranded.params import (
    METHOD_CODES,
    TOKEN_PIPELINES,
    Pipeline,
    PipelineRequest,
    Status,
)
from penny.web.cobranded.pipeline import Context, Pipelines
from penny.web.cobranded.returns import REFUSAL_STATUS, success_params
from penny.web.cobranded.views import describe, to_merchant, view


class ConfirmStep:
    """``…/review`` (GET), ``…/confirm``, ``…/cancel`` and ``…/none`` (POST)."""

    def __init__(
        self,
        payments: Payments,
        signer: Signer,
        settings: Settings,
        pipelines: Pipelines,
        methods: MethodStep,
    ) -> None:
        self.payments = payments
        self.signer = signer
        self.settings = settings
        self.pipelines = pipelines
        self.methods = methods

    def review(self, incoming: Incoming) -> Page:
        opened = self.methods.open_with_buyer(incoming, check_csrf=False)
        if isinstance(opened, Page):
            return opened
        ctx, buyer = opened
        method = self.methods.chosen(ctx, buyer)
        if method is None:
            return to_step(ctx.row.id, "method")
        return view(ctx, "review.html", buyer=buyer.name, method=describe(method))

    def confirm(self, incoming: Incoming) -> Page:
        ctx = self.pipelines.context(incoming, check_csrf=True)
        if ctx.row.state == sql.FINISHED:
            assert ctx.row.result_url is not None
            return to_merchant(ctx, ctx.row.result_url)
        buyer = self.pipelines.buyer(ctx)
        if buyer is None:
            return to_step(ctx.row.id, "signin")
        method = self.methods.chosen(ctx, buyer)
        if method is None:
            return to_step(ctx.row.id, "method")
        request = ctx.request
        now = self.payments.clock.now_us()
        problem = self.methods.problem(ctx, buyer, method)
        if problem is not None:
            return self.methods.page(ctx, buyer, 400, errors={"method_id": problem})
        if request.valid_until is not None and request.valid_until <= now:
            return self._finish(
                ctx,
                {
                    "status": Status.caller_exception.value,
                    "errorMessage": "validityExpiry has already passed.",
                },
            )
        try:
            made = self._setup(ctx.merchant.id, buyer.id, method.id, request)
        except PaymentsError as error:
            status = REFUSAL_STATUS[error.refusal]
            message = error.detail or str(error)
            return self._finish(ctx, {"status": status.value, "errorMessage": message})
        return self._finish(ctx, success_params(request, method, made))

    def _setup(
        self, caller_id: str, buyer_id: str, method_id: str, request: PipelineRequest
    ) -> InstrumentSetup | SenderTokenSetup:
        """The buyer agreed: the set-up built by the one builder (``sandbox/instruments.py``)."""
        parties = (caller_id, buyer_id, method_id)
        kind = TOKEN_PIPELINES.get(request.pipeline)
        if kind is not None:
            token = sender_token_setup(
                *parties,
                request.caller_reference_sender,
                kind,
                transaction_amount=request.transaction_amount,
                amount_type=request.amount_type,
                global_amount_limit=request.global_amount_limit,
                usage_limits=request.usage_limits,
                recurring_period=request.recurring_period,
                reserve=request.reserve,
                valid_from=request.valid_from,
                valid_until=request.valid_until,
                payment_reason=request.payment_reason,
            )
            if request.old_token_id is not None:  # EditToken: the new terms replace the old
                return self.payments.edit_sender_token(request.old_token_id, token)
            return self.payments.setup_sender_token(token)
        references = (request.caller_reference_sender, request.caller_reference_second)
        if request.pipeline is Pipeline.prepaid:
            prepaid = prepaid_setup(
                *parties,
                references,
                funding_limit=request.limit,
                valid_from=request.valid_from,
                valid_until=request.valid_until,
                payment_reason=request.payment_reason,
            )
            return self.payments.setup_prepaid(prepaid)
        postpaid = postpaid_setup(
            *parties,
            references,
            credit_limit=request.limit,
            global_amount_limit=request.global_amount_limit,
            min_charge=request.min_charge,
            max_charge=request.max_charge,
            valid_from=request.valid_from,
            valid_until=request.valid_until,
            payment_reason=request.payment_reason,
        )
        return self.payments.setup_postpaid(postpaid)

    def cancel(self, incoming: Incoming) -> Page:
        ctx = self.pipelines.context(incoming, check_csrf=True)
        if ctx.row.state == sql.FINISHED:
            assert ctx.row.result_url is not None
            return to_merchant(ctx, ctx.row.result_url)
        return self._finish(ctx, {"status": Status.aborted.value})

    def no_method(self, incoming: Incoming) -> Page:
        ctx = self.pipelines.context(incoming, check_csrf=True)
        if ctx.row.state == sql.FINISHED:
            assert ctx.row.result_url is not None
            return to_merchant(ctx, ctx.row.result_url)
        allowed = ", ".join(
            code for code, kind in METHOD_CODES.items() if kind in ctx.request.methods
        )
        return self._finish(
            ctx,
            {
                "status": Status.payment_method_mismatch.value,
                "errorMessage": f"The buyer has none of the payment methods allowed ({allowed}).",
            },
        )

    def _finish(self, ctx: Context, params: dict[str, str]) -> Page:
        """Sign the return URL, mark the pipeline finished, send the buyer there."""
        params = {**params, **ctx.request.references()}
        base = self.settings.base_url(ctx.incoming)
        url = self.signer.signed_redirect(base, ctx.request.return_url, params)
        return to_merchant(ctx, self.pipelines.finish(ctx, url))
