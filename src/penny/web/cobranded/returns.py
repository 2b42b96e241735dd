"""What Penny appends to the merchant's return URL (spec §7.2, §7.3, §7.5; docs/cobranded-ui.md).

:func:`success_params` for a confirmed pipeline (SA/SB/SC with the new ids and ``expiry``;
``tokenID`` for a SingleUse, MultiUse or Recurring token, or EditToken's new token — its old
one with ``SU`` when nothing changed),
:func:`error_params` for a refused start request, :data:`REFUSAL_STATUS` for the payments
service's refusals at confirmation: every refusal's status is a field of its entry in the one
table (:data:`penny.domain.errors.FPS_ERRORS`), checked here against the statuses Penny sends.
The signature parameters are added by the signer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from penny.domain.errors import FPS_ERRORS, Refusal
from penny.domain.parties import PaymentMethod
from penny.epoch import to_datetime
from penny.services.payments import InstrumentSetup, SenderTokenSetup
from penny.web.cobranded.params import (
    Pipeline,
    PipelineRequest,
    StartError,
    Status,
    success_status,
)

#: Every refusal's return status (complete: a status the table names that is not one of
#: :class:`Status` fails here, at import).
REFUSAL_STATUS: Final[Mapping[Refusal, Status]] = {
    refusal: Status(error.cbui_status) for refusal, error in FPS_ERRORS.items()
}


def success_params(
    request: PipelineRequest, method: PaymentMethod, made: InstrumentSetup | SenderTokenSetup
) -> dict[str, str]:
    params = {"status": success_status(method.kind).value}
    if isinstance(made, SenderTokenSetup):  # SingleUse, MultiUse, Recurring (spec §7.4)
        if made.token.id == request.old_token_id:  # EditToken, nothing changed
            params["status"] = Status.unchanged.value
        params["tokenID"] = made.token.id
        if made.instrument.valid_until is not None:
            params["expiry"] = to_datetime(made.instrument.valid_until).strftime("%m/%Y")
        return params
    if request.pipeline is Pipeline.prepaid:
        params |= {
            "prepaidInstrumentID": made.instrument.id,
            "fundingTokenID": made.second_token.id,
            "senderTokenID": made.sender_token.id,
        }
    else:
        params |= {
            "creditInstrumentID": made.instrument.id,
            "creditSenderTokenID": made.sender_token.id,
            "settlementTokenID": made.second_token.id,
        }
    if request.valid_until is not None:
        moment = to_datetime(request.valid_until)
        params["expiry"] = moment.strftime("%m/%Y")
    return params


def error_params(error: StartError, params: Mapping[str, str]) -> dict[str, str]:
    """The return parameters of a refused start (the references echoed when well formed)."""
    out = {"status": error.status.value, "errorMessage": error.message}
    for name in (
        "callerReferenceSender",
        "callerReferenceFunding",
        "callerReferenceSettlement",
        "callerReference",
    ):
        value = params.get(name)
        if value and name not in error.fields and value.isprintable() and len(value) <= 128:
            out[name] = value
    return out
