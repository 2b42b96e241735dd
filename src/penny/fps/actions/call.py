"""Reading one FPS request's parameters: :class:`Call`, and the refusals it raises.

An action's validation reads its parameters through a :class:`Call`: a required parameter
absent or empty is ``MissingParameter``; an amount ``X`` is ``X.Value`` plus
``X.CurrencyCode`` (``USD`` when absent); a malformed value or another currency is
``InvalidParams`` naming the parameter (raised as :class:`ParameterError`, turned into the
answer by :mod:`.table`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from penny.domain.errors import Refusal
from penny.domain.ids import MAX_CALLER_REFERENCE
from penny.fps.signature import parse_timestamp
from penny.fps.wire import WireFault, Xml, missing_parameter, refusal_error
from penny.money import Money, MoneyError, parse_positive_amount
from penny.parties import Directory
from penny.services.payments import Payments

if TYPE_CHECKING:
    from penny.signing import Signer

#: Parameters every request may carry (spec §2.1).
COMMON_PARAMETERS: Final = frozenset(
    {
        "Action",
        "Version",
        "AWSAccessKeyId",
        "Signature",
        "SignatureVersion",
        "SignatureMethod",
        "Timestamp",
        "Expires",
    }
)

CURRENCY: Final = "USD"
MAX_DESCRIPTION: Final = 160
#: Longest ``OverrideIPNURL`` (the column that keeps it; PostgreSQL refused longer ones).
MAX_IPN_URL: Final = 2048


class ParameterError(Exception):
    """A request refused while reading its parameters (raised inside handlers only)."""

    def __init__(self, fault: WireFault) -> None:
        super().__init__(fault.message)
        self.fault = fault


def invalid(message: str) -> ParameterError:
    """``InvalidParams`` (the table's :attr:`Refusal.invalid_params`) with ``message``."""
    return ParameterError(refusal_error(Refusal.invalid_params, message))


@dataclass
class Call:
    """One request being served: who calls, with what, and the services to call."""

    payments: Payments
    directory: Directory
    caller_id: str
    version: str
    params: Mapping[str, str]
    #: Penny's outbound signing keys (VerifySignature); None where nothing was signed.
    signer: Signer | None = None
    _names: dict[str, str] = field(default_factory=dict)
    _emails: dict[str, str] = field(default_factory=dict)

    # -- reading parameters ---------------------------------------------------------------

    def required(self, name: str) -> str:
        value = self.params.get(name, "")
        if not value:
            raise ParameterError(missing_parameter(name))
        return value

    def optional(self, name: str) -> str | None:
        value = self.params.get(name, "")
        return value or None

    def text(self, name: str, limit: int, *, required: bool = False) -> str:
        value = self.required(name) if required else (self.optional(name) or "")
        if len(value) > limit:
            raise invalid(f"{name} is longer than {limit} characters.")
        return value

    def reference(self) -> str:
        return self.text("CallerReference", MAX_CALLER_REFERENCE, required=True)

    def amount(self, name: str, *, required: bool = True) -> Money | None:
        value = self.params.get(f"{name}.Value", "")
        currency = self.params.get(f"{name}.CurrencyCode", "") or CURRENCY
        if not value:
            if required:
                raise ParameterError(missing_parameter(f"{name}.Value"))
            return None
        if currency != CURRENCY:
            raise invalid(f"{name}.CurrencyCode must be {CURRENCY}, not {currency!r}.")
        try:
            return parse_positive_amount(value, currency)
        except MoneyError as error:
            raise invalid(f"{name}.Value is invalid: {error}.") from None

    def choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        value = self.optional(name)
        if value is not None and value not in allowed:
            raise invalid(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")
        return value

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self.optional(name)
        if value is None:
            return None
        if not re.fullmatch(r"[0-9]{1,9}", value) or not low <= int(value) <= high:
            raise invalid(f"{name} must be a whole number from {low} to {high}.")
        return int(value)

    def date(self, name: str, *, required: bool = False) -> int | None:
        value = self.required(name) if required else self.optional(name)
        if value is None:
            return None
        text = value + "T00:00:00Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else value
        moment = parse_timestamp(text)
        if moment is None:
            raise invalid(f"{name} ({value}) is not an ISO 8601 date or dateTime.")
        return moment

    def ipn_url(self) -> str | None:
        return self.text("OverrideIPNURL", MAX_IPN_URL) or None

    def common_pay_options(self) -> None:
        """Validate (and ignore) the descriptor policy and the transaction timeout."""
        self.choice("DescriptorPolicy.SoftDescriptorType", ("Dynamic", "Static"))
        self.choice("DescriptorPolicy.CSOwner", ("Caller", "Recipient"))
        self.integer("TransactionTimeoutInMins", 1, 1_000_000)

    # -- rendering helpers ----------------------------------------------------------------

    def name_of(self, party_id: str) -> str:
        if party_id not in self._names:
            self._remember(party_id)
        return self._names[party_id]

    def email_of(self, party_id: str) -> str:
        if party_id not in self._emails:
            self._remember(party_id)
        return self._emails[party_id]

    def _remember(self, party_id: str) -> None:
        party = self.directory.party(party_id)
        self._names[party_id] = party.name if party is not None else ""
        self._emails[party_id] = party.email if party is not None else ""


Handler = Callable[[Call], Xml | None]
