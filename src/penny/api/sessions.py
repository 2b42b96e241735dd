"""Authorization sessions: the JSON door to the hosted SetupPrepaid/SetupPostpaid pages
(Stripe Checkout's shape).

``POST /v1/authorization_sessions`` turns its JSON body into the hosted pages' start
parameters, checks them with the pages' own reader (:func:`penny.web.cobranded.params.parse_start`,
so a session is refused for exactly what its start URL would be refused for), signs them with
the caller's secret key as a merchant would (Signature V2 over Penny's own host, lower-case
``signature``) and stores the session with its start URL. ``GET …/{id}`` finds the tokens the
pages created by the session's two caller references: once they exist the session is
``complete`` and names the instrument and both tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode, urlsplit

from sqlalchemy import Connection

from penny import epoch
from penny.api import models as m
from penny.api.errors import ApiFault
from penny.domain.parties import random_id
from penny.fps.signature import sign_v2
from penny.money import Money
from penny.security import ServerKey
from penny.storage import api_sessions_sql as sql
from penny.storage import payments_sql
from penny.web.cobranded.http import START_PATH
from penny.web.cobranded.params import PIPELINE_VERSION, StartError, parse_start

#: A session id: ``as_`` and 24 random characters.
SESSION_PREFIX: Final = "as_"

#: The hosted pages' parameter names → the body's field names (for ``param`` in errors).
FIELDS: Final[Mapping[str, str]] = {
    "returnURL": "return_url",
    "fundingAmount": "funding_amount",
    "creditLimit": "credit_limit",
    "globalAmountLimit": "global_amount_limit",
    "minChargeAmount": "min_charge",
    "maxChargeAmount": "max_charge",
    "callerReferenceSender": "caller_reference_sender",
    "callerReferenceFunding": "caller_reference_funding",
    "callerReferenceSettlement": "caller_reference_settlement",
    "paymentReason": "payment_reason",
    "websiteDescription": "website_description",
    "paymentMethod": "payment_methods",
    "validityStart": "valid_from",
    "validityExpiry": "valid_until",
}
_AMOUNTS: Final = (
    ("fundingAmount", "funding_amount"),
    ("creditLimit", "credit_limit"),
    ("globalAmountLimit", "global_amount_limit"),
    ("minChargeAmount", "min_charge"),
    ("maxChargeAmount", "max_charge"),
)
_TEXTS: Final = (
    ("callerReferenceFunding", "caller_reference_funding"),
    ("callerReferenceSettlement", "caller_reference_settlement"),
    ("paymentReason", "payment_reason"),
    ("websiteDescription", "website_description"),
)


@dataclass(frozen=True, slots=True)
class Creation:
    """What creating a resource of the API's own (a session, a webhook endpoint) needs
    besides its body: the open transaction and its time, the caller's key pair, Penny's base
    URL as the buyer's browser will reach it, and the server key."""

    conn: Connection
    now: int
    caller_id: str
    access_key_id: str
    secret: str
    base_url: str
    #: The server key (what encrypts secrets Penny stores, e.g. a webhook endpoint's).
    server_key: ServerKey


def start_params(
    body: m.AuthorizationSessionCreate, access_key_id: str, session_id: str
) -> dict[str, str]:
    """The hosted pages' start parameters (unsigned) of a session's body."""
    prepaid = body.kind == "prepaid"
    second = "callerReferenceFunding" if prepaid else "callerReferenceSettlement"
    params = {
        "callerKey": access_key_id,
        "pipelineName": "SetupPrepaid" if prepaid else "SetupPostpaid",
        "version": PIPELINE_VERSION,
        "returnURL": body.return_url,
        "callerReferenceSender": body.caller_reference_sender or f"{session_id}-sender",
        second: f"{session_id}-{'funding' if prepaid else 'settlement'}",
    }
    for name, attribute in _AMOUNTS:
        amount: m.Amount | None = getattr(body, attribute)
        if amount is not None:
            params[name] = Money(amount.amount, amount.currency).plain()
    for name, attribute in _TEXTS:
        value: str | None = getattr(body, attribute)
        if value:
            params[name] = value
    if body.payment_methods is not None:
        params["paymentMethod"] = ",".join(body.payment_methods)
    if body.valid_from is not None:
        params["validityStart"] = str(body.valid_from)
    if body.valid_until is not None:
        params["validityExpiry"] = str(body.valid_until)
    return params


def signed_url(base_url: str, params: Mapping[str, str], secret: str) -> str:
    """The start URL with ``params`` signed as a merchant signs them (HmacSHA256, over the
    host and port the browser will send)."""
    signed = {**params, "signatureVersion": "2", "signatureMethod": "HmacSHA256"}
    host = urlsplit(base_url).netloc.lower()
    signed["signature"] = sign_v2(
        secret, "GET", host, START_PATH, signed, signature_name="signature"
    )
    return f"{base_url}{START_PATH}?{urlencode(signed)}"


def _refusal(error: StartError) -> ApiFault:
    param = next((FIELDS[name] for name in error.fields if name in FIELDS), None)
    if param is None:  # a problem between fields names the first of them in words
        first = error.message.split(" ", 1)[0]
        param = FIELDS.get(first)
    return ApiFault(400, "invalid_request_error", "parameter_invalid", error.message, param)


def create(body: m.AuthorizationSessionCreate, at: Creation) -> m.AuthorizationSession | ApiFault:
    """Check, sign and store a new session (in ``at.conn``'s transaction)."""
    session_id = SESSION_PREFIX + random_id(24)
    params = start_params(body, at.access_key_id, session_id)
    parsed = parse_start(params, at.now)
    if isinstance(parsed, StartError):
        return _refusal(parsed)
    references = parsed.references()
    used = payments_sql.tokens_by_reference(at.conn, at.caller_id, references.values())
    for name, reference in references.items():
        if reference in used:
            return ApiFault(
                409,
                "conflict_error",
                "caller_reference_used",
                f"The caller reference {reference!r} was already used for a token.",
                FIELDS[name],
            )
    row = sql.SessionRow(
        id=session_id,
        caller_id=at.caller_id,
        kind=body.kind,
        url=signed_url(at.base_url, params, at.secret),
        return_url=body.return_url,
        sender_reference=parsed.caller_reference_sender,
        second_reference=parsed.caller_reference_second,
        created_at=at.now,
    )
    sql.insert_session(at.conn, row)
    return session_out(row, {}, None)


def session_out(
    row: sql.SessionRow, tokens: Mapping[str, str], instrument: str | None
) -> m.AuthorizationSession:
    """The session, with the ids of the tokens (by caller reference) the pages created and
    of their instrument."""
    sender = tokens.get(row.sender_reference)
    second = tokens.get(row.second_reference)
    prepaid = row.kind == "prepaid"
    return m.AuthorizationSession(
        id=row.id,
        kind=row.kind,  # type: ignore[arg-type]  # prepaid | postpaid, as stored
        status="open" if sender is None else "complete",
        url=row.url,
        return_url=row.return_url,
        caller_reference_sender=row.sender_reference,
        caller_reference_funding=row.second_reference if prepaid else None,
        caller_reference_settlement=None if prepaid else row.second_reference,
        instrument=instrument,
        sender_token=sender,
        funding_token=second if prepaid else None,
        settlement_token=None if prepaid else second,
        created_at=epoch.to_datetime(row.created_at),
    )


def load(conn: Connection, caller_id: str, session_id: str) -> m.AuthorizationSession | None:
    """The caller's session, its tokens looked up by reference; None if it has none such."""
    row = sql.load_session(conn, caller_id, session_id)
    if row is None:
        return None
    found = payments_sql.tokens_by_reference(
        conn, caller_id, (row.sender_reference, row.second_reference)
    )
    ids = {reference: token.id for reference, token in found.items()}
    sender = found.get(row.sender_reference)
    return session_out(row, ids, None if sender is None else sender.instrument_id)
