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

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
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
    timeout_s: float = 10.0
    lease_us: int = 60 * MICROS_PER_SECOND
    lanes: int = 4
    batch: int = 16
    poll_s: float = 0.2

    def __post_init__(self) -> None:
        if self.lease_us <= self.timeout_s * MICROS_PER_SECOND:
            raise IpnConfigError("the IPN lease must be longer than the IPN timeout")
        if self.horizon_us <= 0 or self.base_delay_us <= 0 or self.max_delay_us <= 0:
            raise IpnConfigError("IPN horizon and delays must be positive")
        if self.timeout_s <= 0 or self.poll_s <= 0 or self.batch < 1 or self.lanes < 0:
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

        def number(name: str, default: float) -> float:
            text = env.get(name, "").strip()
            if not text:
                return default
            try:
                value = float(text)
            except ValueError:
                raise IpnConfigError(f"${name} must be a number, not {text!r}") from None
            if not math.isfinite(value) or value < 0:
                raise IpnConfigError(f"${name} must be a positive number")
            return value

        def micros(name: str, default_us: int) -> int:
            return int(number(name, default_us / MICROS_PER_SECOND) * MICROS_PER_SECOND)

        url = (env.get(PUBLIC_URL_ENV) or public_url or DEFAULT_PUBLIC_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise IpnConfigError(f"${PUBLIC_URL_ENV} must be an http:// or https:// URL")
        base = cls()
        return cls(
            public_url=url,
            ssrf_guard=guard,
            horizon_us=micros("PENNY_IPN_HORIZON_SECONDS", base.horizon_us),
            timeout_s=number("PENNY_IPN_TIMEOUT_SECONDS", base.timeout_s),
            lease_us=micros("PENNY_IPN_LEASE_SECONDS", base.lease_us),
            lanes=int(number("PENNY_IPN_WORKERS", base.lanes)),
            batch=int(number("PENNY_IPN_BATCH", base.batch)),
            poll_s=number("PENNY_IPN_POLL_SECONDS", base.poll_s),
        )
