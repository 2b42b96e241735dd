"""Identifiers of the payments domain: how long the ids Penny draws are, who owns the ledger's
journals, and the longest caller reference.

They live below both services (:mod:`penny.services.payments` and the GateKeeper glue in
:mod:`penny.services.instructions`) and the FPS adapter, so that none imports another for them.
"""

from __future__ import annotations

from typing import Final

#: Owner of every ledger journal the payments service books (keys are transaction ids).
LEDGER_OWNER: Final = "penny"
#: Length of a transaction id (FPS's were 35 characters).
TRANSACTION_ID_LENGTH: Final = 35
#: Length of a token id, pipeline or installed (FPS's were 64 characters).
TOKEN_ID_LENGTH: Final = 64
#: Longest ``CallerReference`` (FPS's limit).
MAX_CALLER_REFERENCE: Final = 128
