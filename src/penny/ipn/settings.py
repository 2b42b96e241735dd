"""How IPN delivery is configured: from the environment, or built in code (tests).

=============================  ===========================================================
``PENNY_PUBLIC_URL``           Penny's address as merchants reach it; ``certificateUrl`` is
                               ``<it>/certs/<key id>/PKICert.pem``. ``penny serve`` sets it
                               to the address it serves when unset.
``PENNY_MODE``                 ``sandbox`` (default) or ``production``; production turns the
                               SSRF guard on.
``PENNY_IPN_SSRF_GUARD``       ``on``/``off``: overrides the mode's choice.
``PENNY_IPN_HORIZON_SECONDS``  retry for this long after the notification (259200: 3 days)
``PENNY_IPN_TIMEOUT_SECONDS``  one attempt, connect to status line (10)
``PENNY_IPN_LEASE_SECONDS``    a claim's lease, longer than the timeout (60)
``PENNY_IPN_WORKERS``          delivery lanes per process (4; 0: this process does not deliver)
``PENNY_IPN_BATCH``            notifications a lane claims at once (16)
``PENNY_IPN_POLL_SECONDS``     how often an idle lane looks for due notifications (0.2)
=============================  ===========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from penny.clock import MICROS_PER_DAY, MICROS_PER_SECOND

PUBLIC_URL_ENV: Final = "PENNY_PUBLIC_URL"
MODE_ENV: Final = "PENNY_MODE"
DEFAULT_PUBLIC_URL: Final = "http://127.0.0.1:8080"
MODES: Final = ("sandbox", "production")


class IpnConfigError(ValueError):
    """A setting that cannot be used (the message names it)."""


@dataclass(frozen=True, slots=True)
class IpnSettings:
    public_url: str = DEFAULT_PUBLIC_URL
    #: Refuse loopback, private, link-local and other non-global addresses (production).
    ssrf_guard: bool = False
    horizon_us: int = 3 * MICROS_PER_DAY
    #: Backoff: the n-th retry waits a random time in [d/2, d], d = min(max, base × 2^(n−1)).
    base_delay_us: int = 30 * MICROS_PER_SECOND
    max_delay_us: int = 6 * 3600 * MICROS_PER_SECOND
    #: One attempt, from connecting to the status line.
    timeout_us: int = 10 * MICROS_PER_SECOND
    lease_us: int = 60 * MICROS_PER_SECOND
    lanes: int = 4
    batch: int = 16
    #: How long an idle lane waits before it looks for due notifications again.
    poll_us: int = 200_000

    def __post_init__(self) -> None:
        if self.lease_us <= self.timeout_us:
            raise IpnConfigError("the IPN lease must be longer than the IPN timeout")
        if self.horizon_us <= 0 or self.base_delay_us <= 0 or self.max_delay_us <= 0:
            raise IpnConfigError("IPN horizon and delays must be positive")
        if self.timeout_us <= 0 or self.poll_us <= 0 or self.batch < 1 or self.lanes < 0:
            raise IpnConfigError("IPN timeout, poll interval, batch and workers must be positive")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, public_url: str | None = None
    ) -> IpnSettings:
        """Settings from ``environ`` (default ``os.environ``); see the module docstring."""
        env = os.environ if environ is None else environ
        mode = env.get(MODE_ENV, "sandbox").strip().lower() or "sandbox"
        if mode not in MODES:
            raise IpnConfigError(f"${MODE_ENV} must be 'sandbox' or 'production', not {mode!r}")
        guard_text = env.get("PENNY_IPN_SSRF_GUARD", "").strip().lower()
        if guard_text in ("", "default"):
            guard = mode == "production"
        elif guard_text in ("on", "1", "true", "yes"):
            guard = True
        elif guard_text in ("off", "0", "false", "no"):
            guard = False
        else:
            raise IpnConfigError("$PENNY_IPN_SSRF_GUARD must be 'on' or 'off'")

        def micros(name: str, default_us: int) -> int:
            """A number of seconds (decimals allowed) as microseconds."""
            text = env.get(name, "").strip()
            if not text:
                return default_us
            try:
                seconds = Decimal(text)
            except InvalidOperation:
                raise IpnConfigError(f"${name} must be a number of seconds, not {text!r}") from None
            if not seconds.is_finite() or seconds < 0:
                raise IpnConfigError(f"${name} must be a positive number of seconds")
            return int(seconds * MICROS_PER_SECOND)

        def whole(name: str, default: int) -> int:
            text = env.get(name, "").strip()
            if not text:
                return default
            if not text.isdigit():
                raise IpnConfigError(f"${name} must be a whole number, not {text!r}")
            return int(text)

        url = (env.get(PUBLIC_URL_ENV) or public_url or DEFAULT_PUBLIC_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise IpnConfigError(f"${PUBLIC_URL_ENV} must be an http:// or https:// URL")
        base = cls()
        return cls(
            public_url=url,
            ssrf_guard=guard,
            horizon_us=micros("PENNY_IPN_HORIZON_SECONDS", base.horizon_us),
            timeout_us=micros("PENNY_IPN_TIMEOUT_SECONDS", base.timeout_us),
            lease_us=micros("PENNY_IPN_LEASE_SECONDS", base.lease_us),
            lanes=whole("PENNY_IPN_WORKERS", base.lanes),
            batch=whole("PENNY_IPN_BATCH", base.batch),
            poll_us=micros("PENNY_IPN_POLL_SECONDS", base.poll_us),
        )
