"""VerifySignature: whether Penny signed a return URL's or an IPN's parameters."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl

from penny.fps.actions.call import Call, invalid
from penny.fps.actions.spec import QueryAction, names
from penny.fps.wire import Xml, leaf


def _verify_signature(call: Call) -> Xml | None:
    """Success exactly when ``HttpParameters`` is a message Penny signed for ``UrlEndPoint``
    (docs/cobranded-ui.md, docs/ipn.md; spec §3.2)."""
    endpoint = call.required("UrlEndPoint")
    pairs = parse_qsl(call.required("HttpParameters"), keep_blank_values=True)
    if not any(name == "certificateUrl" for name, _ in pairs):
        raise invalid("certificateUrl is missing in 'HttpParameters'.")
    verified = call.signer is not None and call.signer.verify(endpoint, pairs)
    return leaf("VerificationStatus", "Success" if verified else "Failure")


VERIFY_SIGNATURE: Final = QueryAction(
    handler=_verify_signature, parameters=names("UrlEndPoint", "HttpParameters")
)
