"""The Recipient pipeline's pages (issue #19): a merchant accepts a marketplace's terms.

A marketplace caller's signed start request (``pipelineName=Recipient``, checked like the
other pipelines' by :class:`~penny.web.cobranded.start.StartStep`) opens a pipeline; the
recipient merchant signs in with its API key id and secret (the only credentials a business
account has, as on the account site; failures are limited like the buyers'), reviews the terms
(``maxFixedFee``, ``maxVariableFee``, ``recipientPaysFee``) and accepts or cancels. Accepting
issues the recipient token (:func:`penny.services.marketplace.issue_recipient_token`) and sends
the merchant to the caller's ``returnURL`` signed, with ``status=SR``, ``tokenID``,
``refundTokenID`` and ``callerReference`` (spec §7.4); cancelling sends ``status=A``. Every
form carries the session's CSRF token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from penny.domain.errors import PaymentsError
from penny.domain.parties import Party, PartyKind
from penny.epoch import to_datetime
from penny.parties import Directory
from penny.services import marketplace
from penny.services.payments import Payments
from penny.signing import Signer
from penny.storage import cobranded_sql as sql
from penny.web.cobranded import security
from penny.web.cobranded.http import PREFIX, Incoming, Page, Settings
from penny.web.cobranded.params import StartError, Status
from penny.web.cobranded.pipeline import Pipelines
from penny.web.cobranded.recipient_params import (
    RecipientRequest,
    error_params,
    parse_recipient,
)
from penny.web.cobranded.returns import REFUSAL_STATUS
from penny.web.cobranded.views import pipeline_page, refused_start

_TOO_MANY = "Too many failed sign-in attempts. Wait 15 minutes and try again."


@dataclass(frozen=True, slots=True)
class RecipientContext:
    """A Recipient pipeline request after its session and pipeline were checked."""

    incoming: Incoming
    session: sql.SessionRow
    row: sql.PipelineRow
    request: RecipientRequest
    merchant: Party


class RecipientStep:
    """``…/recipient`` (GET), ``…/recipient/signin``, ``…/confirm``, ``…/cancel`` (POST)."""

    def __init__(
        self,
        directory: Directory,
        payments: Payments,
        signer: Signer,
        settings: Settings,
        pipelines: Pipelines,
    ) -> None:
        self.directory = directory
        self.payments = payments
        self.signer = signer
        self.settings = settings
        self.pipelines = pipelines

    # -- the start request (after StartStep checked the caller's key and signature) --------

    def start(
        self, incoming: Incoming, params: Mapping[str, str], merchant: Party, back_ok: bool
    ) -> Page:
        parsed = parse_recipient(params, self.payments.clock.now_us())
        if isinstance(parsed, RecipientRequest):
            reference = parsed.caller_reference
            if marketplace.recipient_token_by_reference(self.payments, merchant.id, reference):
                parsed = StartError(
                    Status.not_permitted,
                    "The caller reference callerReference was already used for a token.",
                    ("callerReference",),
                )
        if isinstance(parsed, StartError):
            return_url = params.get("returnURL", "")
            back = (return_url, error_params(parsed, params)) if back_ok else None
            title = "This request cannot be completed"
            return refused_start(
                incoming, self.settings, self.signer, parsed, merchant, back, title
            )
        pid, cookie, _session = self.pipelines.open(incoming, merchant, parsed)
        return Page(
            location=f"{PREFIX}/pipelines/{pid}/recipient",
            set_cookie=cookie,
            secure=self.settings.secure(incoming),
        )

    # -- the pages -------------------------------------------------------------------------

    def _context(self, incoming: Incoming, *, check_csrf: bool) -> RecipientContext:
        session, row, merchant = self.pipelines.opened(incoming, check_csrf=check_csrf)
        request = RecipientRequest.from_json(row.params)
        return RecipientContext(incoming, session, row, request, merchant)

    def _recipient(self, ctx: RecipientContext) -> Party | None:
        """The signed-in business account (never the marketplace itself), or None."""
        party_id = ctx.session.party_id
        party = self.directory.party(party_id) if party_id else None
        if party is None or party.kind is not PartyKind.business or party.id == ctx.merchant.id:
            return None
        return party

    def page(self, incoming: Incoming) -> Page:
        """The sign-in form, or the terms to accept once a merchant signed in."""
        ctx = self._context(incoming, check_csrf=False)
        if ctx.row.state == sql.FINISHED:
            assert ctx.row.result_url is not None
            return _view(ctx, "finished.html", back=ctx.row.result_url)
        recipient = self._recipient(ctx)
        if recipient is None:
            return _view(ctx, "recipient_signin.html")
        return _view(ctx, "recipient_review.html", recipient=recipient.name)

    def signin(self, incoming: Incoming) -> Page:
        ctx = self._context(incoming, check_csrf=True)
        form = incoming.form or {}
        access_key, secret = form.get("access_key", "").strip()[:64], form.get("secret", "")
        now = self.pipelines.now()
        subjects = [f"key:{access_key}", f"client:{incoming.client[:64]}"]
        limits = (security.SIGNIN_MAX_PER_EMAIL, security.SIGNIN_MAX_PER_CLIENT)
        values = {"access_key": access_key}
        if self.pipelines.rate_limited(subjects, limits, now):
            return _view(ctx, "recipient_signin.html", 429, errors={"form": _TOO_MANY}, **values)
        party = security.merchant_by_key(self.directory, access_key, secret)
        if party is None:
            self.pipelines.record_failure(subjects, now)
            wrong = {"form": "The access key or the secret is wrong."}
            return _view(ctx, "recipient_signin.html", 400, errors=wrong, **values)
        if party.id == ctx.merchant.id:
            own = {"form": f"Sign in as the merchant {ctx.merchant.name} will pay, not as it."}
            return _view(ctx, "recipient_signin.html", 400, errors=own, **values)
        cookie = self.pipelines.sign_in_session(ctx.session, party.id)
        return Page(
            location=f"{PREFIX}/pipelines/{ctx.row.id}/recipient",
            set_cookie=cookie,
            secure=self.settings.secure(incoming),
        )

    def confirm(self, incoming: Incoming) -> Page:
        ctx = self._context(incoming, check_csrf=True)
        if ctx.row.state == sql.FINISHED:
            assert ctx.row.result_url is not None
            return _to_merchant(ctx, ctx.row.result_url)
        recipient = self._recipient(ctx)
        if recipient is None:
            return Page(location=f"{PREFIX}/pipelines/{ctx.row.id}/recipient")
        request = ctx.request
        setup = marketplace.SetupRecipient(
            caller_id=ctx.merchant.id,
            recipient_id=recipient.id,
            caller_reference=request.caller_reference,
            max_fixed_fee=request.max_fixed_fee,
            max_variable_fee=request.max_variable_fee,
            recipient_pays_fee=request.recipient_pays_fee,
            valid_from=request.valid_from,
            valid_until=request.valid_until,
            payment_reason=request.payment_reason,
        )
        try:
            token = marketplace.issue_recipient_token(self.payments, setup)
        except PaymentsError as error:
            status = REFUSAL_STATUS[error.refusal]
            return self._finish(ctx, {"status": status.value, "errorMessage": error.detail})
        params = {
            "status": Status.success_recipient.value,
            "tokenID": token.id,
            "refundTokenID": token.refund_token_id,
        }
        if request.valid_until is not None:
            params["expiry"] = to_datetime(request.valid_until).strftime("%m/%Y")
        return self._finish(ctx, params)

    def cancel(self, incoming: Incoming) -> Page:
        ctx = self._context(incoming, check_csrf=True)
        if ctx.row.state == sql.FINISHED:
            assert ctx.row.result_url is not None
            return _to_merchant(ctx, ctx.row.result_url)
        return self._finish(ctx, {"status": Status.aborted.value})

    def _finish(self, ctx: RecipientContext, params: dict[str, str]) -> Page:
        """Sign the return URL, mark the pipeline finished, send the merchant there."""
        params = {**params, "callerReference": ctx.request.caller_reference}
        base = self.settings.base_url(ctx.incoming)
        url = self.signer.signed_redirect(base, ctx.request.return_url, params)
        return _to_merchant(ctx, self.pipelines.finish_row(ctx.row.id, url))


def _percent(hundredths: int) -> str:
    whole, part = divmod(hundredths, 100)
    return f"{whole}%" if part == 0 else f"{whole}.{part:02d}".rstrip("0") + "%"


def _view(ctx: RecipientContext, template: str, status: int = 200, **more: Any) -> Page:
    request = ctx.request
    context: dict[str, Any] = {
        "max_fixed": f"${request.max_fixed_fee.plain()} {request.max_fixed_fee.currency}",
        "max_variable": _percent(request.max_variable_fee),
        "pays_fee": request.recipient_pays_fee,
        "reason": request.payment_reason,
        **more,
    }
    return pipeline_page(ctx, template, status, context)


def _to_merchant(ctx: RecipientContext, url: str) -> Page:
    origin = security.origin_of(ctx.request.return_url)
    return Page(location=url, form_targets=(origin,) if origin else ())
