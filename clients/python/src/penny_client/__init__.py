"""penny-client: a typed client for Penny's ``/v1`` JSON API.

:class:`Penny` (sync) and :class:`AsyncPenny` (async) over httpx; every POST carries an
Idempotency-Key that its retries repeat; ``iter_transactions``/``iter_instruments`` walk every
page; :func:`verify_webhook` checks a Standard Webhooks delivery.
"""

from __future__ import annotations

from penny_client._async import AsyncPenny
from penny_client._core import Call, PennyConnectionError, PennyError, Retry
from penny_client._sync import Penny
from penny_client.webhooks import WebhookVerificationError
from penny_client.webhooks import sign as sign_webhook
from penny_client.webhooks import verify as verify_webhook

__all__ = [
    "AsyncPenny",
    "Call",
    "Penny",
    "PennyConnectionError",
    "PennyError",
    "Retry",
    "WebhookVerificationError",
    "sign_webhook",
    "verify_webhook",
]
__version__ = "0.1.0"
