"""GateKeeper scripts Penny writes for the tokens of its pipelines (SetupPrepaid, SetupPostpaid).

FPS's CBUI turned pipeline parameters into scripts (spec §8); Penny does the same when an
instrument is issued, and stores the text with each token. The statement order and wording
follow Amazon's generated examples (``MyRole == 'Sender' orSay 'Role does not match';`` first,
then the validity, then the rest). Datetimes are written as ISO 8601 in UTC with the exact
microsecond, so the script says exactly what the instrument says.

Each rule's ``orSay`` text is one of the ``MSG_*`` constants: the payments service maps a refusal
carrying one of these texts back to the FPS error code that rule has always had (for example
``InstrumentExpired``), see :data:`penny.services.gatekeeper.GENERATED_REFUSALS`.

Pure: the caller passes plain values; nothing here reads a clock or a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from penny.gatekeeper.types import Instant, format_datetime
from penny.money import Money

MSG_ROLE: Final = "Role does not match"
MSG_OPERATION: Final = "This token cannot be used for this operation."
MSG_SENDER: Final = "The sender is not the buyer of this instrument."
MSG_RECIPIENT: Final = "The recipient is not the merchant of this instrument."
MSG_CALLER: Final = (
    "Only the recipient of the instrument may do this; a third-party caller may not."
)
MSG_NOT_YET_VALID: Final = "The instrument is not valid yet (see its validity start)."
MSG_EXPIRED: Final = "The prepaid or postpaid instrument has expired."
MSG_BELOW_MINIMUM: Final = "The amount is below the minimum charge of the instrument."
MSG_ABOVE_MAXIMUM: Final = "The amount is above the maximum charge of the instrument."


@dataclass(frozen=True, slots=True)
class TokenRules:
    """What a pipeline token allows, in plain values.

    ``operation`` is the FPS operation the token is for (``Pay``, ``FundPrepaid``,
    ``SettleDebt``); ``payment_method`` is declared when known (``Prepaid``, ``Debt``, or the
    buyer's ``cc``/``ach``/``abt``); ``check_validity`` is false for settlement tokens (a debt
    can be settled after the instrument expired).
    """

    operation: str
    sender_id: str
    recipient_id: str
    caller_id: str
    valid_from: int
    valid_until: int | None
    payment_method: str | None = None
    min_charge: Money | None = None
    max_charge: Money | None = None
    check_validity: bool = True


def _quote(text: str) -> str:
    assert "'" not in text, "GateKeeper strings cannot hold a quote"
    return f"'{text}'"


def sender_token_script(rules: TokenRules) -> str:
    """The script of a token used in the sender slot, one statement per line."""
    lines = [
        f"MyRole == 'Sender' orSay {_quote(MSG_ROLE)};",
        f"OperationType == {_quote(rules.operation)} orSay {_quote(MSG_OPERATION)};",
    ]
    if rules.check_validity:
        start = format_datetime(Instant(rules.valid_from))
        lines.append(f"TransactionTimestamp >= '{start}' orSay {_quote(MSG_NOT_YET_VALID)};")
        if rules.valid_until is not None:
            end = format_datetime(Instant(rules.valid_until))
            lines.append(f"TransactionTimestamp < '{end}' orSay {_quote(MSG_EXPIRED)};")
    lines += [
        f"SenderAccountId == {_quote(rules.sender_id)} orSay {_quote(MSG_SENDER)};",
        f"RecipientAccountId == {_quote(rules.recipient_id)} orSay {_quote(MSG_RECIPIENT)};",
        f"CallerAccountId == {_quote(rules.caller_id)} orSay {_quote(MSG_CALLER)};",
    ]
    if rules.min_charge is not None:
        lines.append(
            f"TransactionAmount >= '{rules.min_charge}' orSay {_quote(MSG_BELOW_MINIMUM)};"
        )
    if rules.max_charge is not None:
        lines.append(
            f"TransactionAmount <= '{rules.max_charge}' orSay {_quote(MSG_ABOVE_MAXIMUM)};"
        )
    if rules.payment_method is not None:
        lines.append(f"string PaymentMethod := {_quote(rules.payment_method)};")
    return "".join(f"{line}\n" for line in lines)
