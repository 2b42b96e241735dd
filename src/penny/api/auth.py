"""Bearer secrets of the JSON API, over the existing API keys (docs/decisions.md, #17).

An API key is a pair, the access key id (``PNY…``, public) and its secret (shown once by
``penny keys create``). The JSON API's bearer secret is both, with the server's mode in front:

    sk_test_<access key id>.<secret>     on a sandbox server (PENNY_MODE=sandbox, the default)
    sk_live_<access key id>.<secret>     on a production server (PENNY_MODE=production)

so a test key is told from a live one by its prefix, and a server refuses the other mode's
prefix (a test key sent to production, or the reverse, is 401). The secret is checked against
the same key cache as FPS signatures (:class:`penny.fps.keys.KeyCache`): revoking a key stops
both doors within a second.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

TEST_PREFIX: Final = "sk_test_"
LIVE_PREFIX: Final = "sk_live_"
#: ``PENNY_MODE``: ``production`` makes the server live.
MODE_ENV: Final = "PENNY_MODE"

_BEARER: Final = re.compile(
    r"Bearer (sk_(?:test|live)_)([A-Za-z0-9]{1,64})\.([A-Za-z0-9+/=]{1,128})"
)


def live_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``$PENNY_MODE`` (in ``environ``, else the process's) makes this a live
    (production) server."""
    env = os.environ if environ is None else environ
    return env.get(MODE_ENV, "sandbox").strip().lower() == "production"


def prefix(live: bool) -> str:
    return LIVE_PREFIX if live else TEST_PREFIX


def bearer_secret(access_key_id: str, secret: str, *, live: bool) -> str:
    """What a client sends after ``Bearer `` for this key pair."""
    return f"{prefix(live)}{access_key_id}.{secret}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A bearer secret taken apart (not yet checked)."""

    access_key_id: str
    secret: str


def parse_authorization(header: str, *, live: bool) -> Credentials | None:
    """The key pair of an ``Authorization`` header of this server's mode, or None."""
    found = _BEARER.fullmatch(header)
    if found is None or found.group(1) != prefix(live):
        return None
    return Credentials(found.group(2), found.group(3))


def secret_matches(given: str, stored: str | None) -> bool:
    """Constant-time comparison (``stored`` None: no such active key)."""
    if stored is None:
        return False
    return hmac.compare_digest(given.encode(), stored.encode())
