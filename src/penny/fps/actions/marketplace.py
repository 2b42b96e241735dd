"""GetRecipientVerificationStatus (2010-08-28 only): whether a recipient token's merchant has
completed verification (issue #19; docs/decisions.md)."""

from __future__ import annotations

from typing import Final

from penny.fps.actions.call import Call
from penny.fps.actions.spec import QueryAction, names
from penny.fps.wire import Xml, leaf
from penny.services import marketplace


def _get_recipient_verification_status(call: Call) -> Xml | None:
    token = marketplace.recipient_token(
        call.payments, call.caller_id, call.required("RecipientTokenId")
    )
    status = marketplace.verification_status(token)
    return Xml(leaf("RecipientVerificationStatus", status.value))


GET_RECIPIENT_VERIFICATION_STATUS: Final = QueryAction(
    handler=_get_recipient_verification_status, parameters=names("RecipientTokenId")
)
