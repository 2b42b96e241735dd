"""GateKeeper payment instructions: InstallPaymentInstruction and GetPaymentInstruction."""

from __future__ import annotations

from typing import Final

from penny.fps.actions.call import Call, ParameterError
from penny.fps.actions.spec import QueryAction, names
from penny.fps.actions.tokens import token_element
from penny.fps.wire import Xml, leaf, missing_parameter, optional_leaf
from penny.services import gatekeeper as gk
from penny.services import instructions

#: Longest PaymentReason of an installed token (2007 InstallPaymentInstruction page).
MAX_PAYMENT_REASON: Final = 64
MAX_FRIENDLY_NAME: Final = 128


def _install_payment_instruction(call: Call) -> Xml | None:
    script = call.required("PaymentInstruction")
    reference = call.reference()
    token_type = call.choice("TokenType", gk.TOKEN_TYPES)
    if token_type is None:
        raise ParameterError(missing_parameter("TokenType"))
    installed = instructions.install(
        call.payments,
        instructions.InstallRequest(
            caller_id=call.caller_id,
            caller_reference=reference,
            script=script,
            token_type=token_type,
            friendly_name=call.text("TokenFriendlyName", MAX_FRIENDLY_NAME),
            payment_reason=call.text("PaymentReason", MAX_PAYMENT_REASON),
        ),
    )
    return leaf("TokenId", installed.id)


def _get_payment_instruction(call: Call) -> Xml | None:
    view = instructions.instruction_view(call.payments, call.caller_id, call.required("TokenId"))
    return Xml(
        token_element(view)
        + leaf("PaymentInstruction", view.script)
        + leaf("CallerReference", view.caller_reference)
        + (optional_leaf("TokenFriendlyName", view.friendly_name) or "")
    )


INSTALL_PAYMENT_INSTRUCTION: Final = QueryAction(
    handler=_install_payment_instruction,
    parameters=names(
        "PaymentInstruction", "TokenFriendlyName", "CallerReference", "TokenType", "PaymentReason"
    ),
)
GET_PAYMENT_INSTRUCTION: Final = QueryAction(
    handler=_get_payment_instruction, parameters=names("TokenId")
)
