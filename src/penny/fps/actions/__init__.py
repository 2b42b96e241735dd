"""The FPS actions: validation (parameters → typed work), execution, rendering (→ XML).

* :mod:`.table` — the table of actions (:data:`ACTIONS`, the single entry point), the schema
  check, :func:`validate` and the answers of executed work; :func:`run_action` serves one
  request directly.
* :mod:`.spec` — the three kinds of action (commit, batched read, query) and their work.
* :mod:`.call` — reading parameters (:class:`~penny.fps.actions.call.Call`).
* one module per family: :mod:`.payments`, :mod:`.balances`, :mod:`.transactions`,
  :mod:`.tokens`, :mod:`.instructions`, :mod:`.signatures`.

Decisions are recorded in ``docs/fps-wire.md``.
"""

from penny.fps.actions.call import COMMON_PARAMETERS
from penny.fps.actions.payments import decided_result, transaction_result
from penny.fps.actions.table import (
    ACTIONS,
    NOT_SUPPORTED,
    committed_result,
    execute,
    query_result,
    read_result,
    run_action,
    validate,
)

__all__ = [
    "ACTIONS",
    "COMMON_PARAMETERS",
    "NOT_SUPPORTED",
    "committed_result",
    "decided_result",
    "execute",
    "query_result",
    "read_result",
    "run_action",
    "transaction_result",
    "validate",
]
