"""What the sync and async clients share: errors, the description of one call, the retry
policy and the reading of an answer. Nothing here does I/O."""

from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import httpx

#: Statuses worth retrying with the same Idempotency-Key: the store was busy (429) or the
#: server could not serve the request (503); neither ran the request.
RETRY_STATUSES: Final = frozenset({429, 503})
#: A 409 that says the first request with this key is still running (not a conflict).
IN_PROGRESS_CODE: Final = "idempotency_key_in_use"
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8080"
USER_AGENT: Final = "penny-client/0.1.0"

#: What a call's answer is (a :mod:`penny_client.models` dictionary).
Answer_co = TypeVar("Answer_co", covariant=True)


class PennyError(Exception):
    """A refusal by Penny: the JSON error object's fields and the HTTP status."""

    def __init__(
        self,
        status: int,
        type: str,
        code: str,
        message: str,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.type, self.code = status, type, code
        self.message, self.param, self.request_id = message, param, request_id


class PennyConnectionError(PennyError):
    """Penny could not be reached (after the retries), or its answer was not JSON."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "connection_error", "connection_error", message)


def new_idempotency_key() -> str:
    """A fresh key for one logical call (kept across its retries)."""
    return "pc_" + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Call(Generic[Answer_co]):
    """One logical API call, answered with an ``Answer_co``; a POST carries its Idempotency-Key
    from the start."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None

    def headers(self) -> dict[str, str]:
        return {} if self.idempotency_key is None else {"Idempotency-Key": self.idempotency_key}


@dataclass(frozen=True, slots=True)
class Retry:
    """At most ``max_retries`` retries, waiting ``backoff`` × 2ⁿ (capped at ``max_backoff``,
    with jitter: between half and all of it) before the n-th."""

    max_retries: int = 3
    backoff: float = 0.25
    max_backoff: float = 4.0

    def delay(self, attempt: int) -> float:
        wait: float = min(self.max_backoff, self.backoff * float(2**attempt))
        return wait * (0.5 + random.random() / 2)

    def again(self, attempt: int, response: httpx.Response | None) -> bool:
        """Whether to retry after ``attempt`` (0 = the first try) ended with ``response``
        (None: no answer, a connection error)."""
        if attempt >= self.max_retries:
            return False
        if response is None or response.status_code in RETRY_STATUSES:
            return True
        return response.status_code == 409 and _code(response) == IN_PROGRESS_CODE


def _code(response: httpx.Response) -> str | None:
    try:
        found = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return found if isinstance(found, str) else None


def result(response: httpx.Response) -> Any:
    """The answer's JSON, or the PennyError it says."""
    try:
        data = response.json()
    except ValueError:
        raise PennyConnectionError(
            f"HTTP {response.status_code} with a body that is not JSON"
        ) from None
    if response.status_code >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        raise PennyError(
            response.status_code,
            str(error.get("type", "api_error")),
            str(error.get("code", "unknown")),
            str(error.get("message", response.reason_phrase)),
            error.get("param"),
            error.get("request_id") or response.headers.get("request-id"),
        )
    return data


def http_options(api_key: str | None, base_url: str | None, timeout: float) -> dict[str, Any]:
    """The httpx client's settings: the key and base URL as given, else ``$PENNY_API_KEY`` and
    ``$PENNY_URL`` (default ``http://127.0.0.1:8080``); no proxy from the environment."""
    key = api_key or os.environ.get("PENNY_API_KEY")
    if not key:
        raise ValueError("no API key: pass api_key or set PENNY_API_KEY (sk_test_…)")
    url = base_url or os.environ.get("PENNY_URL") or DEFAULT_BASE_URL
    headers = {"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT}
    return {"base_url": url.rstrip("/"), "headers": headers, "timeout": timeout, "trust_env": False}
