"""The first step: the merchant's signed start request opens a pipeline (spec §2.4, §3).

The request names the merchant by its ``callerKey`` and is verified with that key's secret
(Signature V2, lower-case ``signature``: :func:`penny.fps.signature.matching_host`); only a
verified request's ``returnURL`` ever receives an error redirect. A valid request opens a
pipeline in the browser's session and sends the buyer to sign in, or straight to the payment
methods when the session is signed in already.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from penny.domain.errors import PaymentsError, Refusal
from penny.domain.parties import Party
from penny.fps.signature import candidate_hosts, is_signature_method, matching_host
from penny.web.cobranded import security
from penny.web.cobranded.edit_params import PIPELINE as EDIT_TOKEN
from penny.web.cobranded.edit_params import edit_request, parse_edit
from penny.web.cobranded.http import (
    PREFIX,
    START_PATH,
    BadRequestError,
    Incoming,
    Page,
    decode_query,
    to_step,
)
from penny.web.cobranded.params import (
    PipelineRequest,
    StartError,
    Status,
    parse_start,
    return_url_problem,
)
from penny.web.cobranded.recipient import RecipientStep
from penny.web.cobranded.recipient_params import PIPELINE as RECIPIENT
from penny.web.cobranded.returns import error_params
from penny.web.cobranded.views import refused_start


class StartStep:
    """``GET /cobranded-ui/actions/start`` and ``GET …/pipelines/{pid}`` (resume)."""

    def __init__(self, recipient: RecipientStep) -> None:
        """Over what the Recipient pipeline's step is over; a Recipient start request is its."""
        self.recipient = recipient
        self.directory = recipient.directory
        self.payments = recipient.payments
        self.signer = recipient.signer
        self.settings = recipient.settings
        self.pipelines = recipient.pipelines

    def start(self, incoming: Incoming) -> Page:
        params = decode_query(incoming.query)
        merchant, secret = self._merchant(params)
        trusted = self._trusted(incoming, params, secret)
        return_url = params.get("returnURL", "")
        can_return = trusted and return_url_problem(return_url) is None
        if params.get("pipelineName") == RECIPIENT:
            return self.recipient.start(incoming, params, merchant, can_return)
        if params.get("pipelineName") == EDIT_TOKEN:
            parsed = self._edit(merchant.id, params)
        else:
            parsed = parse_start(params, self.payments.clock.now_us())
        if isinstance(parsed, PipelineRequest):
            used = self._references_used(merchant.id, parsed)
            if used:
                parsed = StartError(
                    Status.not_permitted,
                    f"The caller reference {used} was already used for a token.",
                    (used,),
                )
        if isinstance(parsed, StartError):
            back = (return_url, error_params(parsed, params)) if can_return else None
            return refused_start(incoming, self.settings, self.signer, parsed, merchant, back)
        pid, cookie, session = self.pipelines.open(incoming, merchant, parsed)
        step = "method" if session.party_id else "signin"
        return Page(
            location=f"{PREFIX}/pipelines/{pid}/{step}",
            set_cookie=cookie,
            secure=self.settings.secure(incoming),
        )

    def resume(self, incoming: Incoming) -> Page:
        """Back to the step the pipeline is at: the payment methods, or signing in first (the
        Recipient pipeline has one page for both)."""
        session, row, _merchant = self.pipelines.opened(incoming, check_csrf=False)
        if row.pipeline_name == RECIPIENT:
            return to_step(row.id, "recipient")
        return to_step(row.id, "method" if session.party_id else "signin")

    def _merchant(self, params: Mapping[str, str]) -> tuple[Party, str]:
        """The merchant a start request's ``callerKey`` names, and that key's secret."""
        caller_key = params.get("callerKey", "")
        key = self.directory.api_key(caller_key) if 0 < len(caller_key) <= 64 else None
        secret = self.directory.secret_for(caller_key) if key is not None else None
        if key is None or secret is None:
            raise BadRequestError(
                400,
                "This payment request cannot be used",
                "The merchant's request does not name a valid Penny merchant key (callerKey). "
                "Go back to the merchant's site and try again.",
            )
        return security.merchant_of(self.directory, key.party_id), secret

    def _trusted(self, incoming: Incoming, params: Mapping[str, str], secret: str) -> bool:
        """Whether the start request is signed (a bad signature, or none when unsigned requests
        are not allowed, is refused)."""
        trusted = False
        if "signature" in params:
            trusted = _signature_ok(incoming, params, secret)
            if not trusted:
                raise BadRequestError(
                    403,
                    "This payment request was altered",
                    "The request's signature does not match its contents, so Penny cannot "
                    "tell whether the merchant sent it. Nothing was changed. Go back to the "
                    "merchant's site and start again.",
                )
        elif not self.settings.allow_unsigned:
            raise BadRequestError(
                403,
                "This payment request is not signed",
                "Penny accepts only payment requests signed by the merchant. Go back to the "
                "merchant's site and start again.",
            )
        return trusted

    def _edit(self, caller_id: str, params: Mapping[str, str]) -> PipelineRequest | StartError:
        """An EditToken start request checked against the caller's token (CE when the token
        is not an active MultiUse or Recurring token of the caller's)."""
        edit = parse_edit(params, self.payments.clock.now_us())
        if isinstance(edit, StartError):
            return edit
        try:
            found = self.payments.editable_token(caller_id, edit.token_id)
        except PaymentsError as error:
            name = "tokenID" if "tokenID" in params else "tokenId"
            return StartError(Status.caller_exception, _EDIT_REFUSALS[error.refusal], (name,))
        return edit_request(edit, found.token, found.instrument, found.terms)

    def _references_used(self, caller_id: str, request: PipelineRequest) -> str | None:
        for name, reference in request.references().items():
            try:
                self.payments.token_by_caller(caller_id, caller_reference=reference)
            except PaymentsError:
                continue
            return name
        return None


#: Why an EditToken's token cannot be edited, as the CE message says it.
_EDIT_REFUSALS: Final[Mapping[Refusal, str]] = {
    Refusal.unknown_token: "tokenId does not name a token of yours.",
    Refusal.invalid_token_type: "EditToken changes MultiUse and Recurring tokens only.",
    Refusal.token_not_active: "The token was cancelled (or replaced by an edit).",
}

#: The hosts boto 2's ``cbui_url`` signs for, whatever the connection's host (it hard-codes
#: Amazon's CBUI endpoint): accepted too, so a boto-built start URL with
#: its host replaced by Penny's verifies (issue #19; the secret is still the caller's).
AMAZON_CBUI_HOSTS = ("authorize.payments.amazon.com", "authorize.payments-sandbox.amazon.com")


def _signature_ok(incoming: Incoming, params: Mapping[str, str], secret: str) -> bool:
    method = params.get("signatureMethod", "")
    if params.get("signatureVersion") != "2" or not is_signature_method(method):
        return False
    hosts = (*candidate_hosts(incoming.host, incoming.server_port), *AMAZON_CBUI_HOSTS)
    host = matching_host(
        secret, "GET", hosts, START_PATH, params, method, signature_name="signature"
    )
    return host is not None
