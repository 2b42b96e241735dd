"""Idempotency keys of the JSON API, on top of the payments service's CallerReference.

A JSON request with ``Idempotency-Key: K`` is the payments request with CallerReference ``K``
(docs/decisions.md, #17), so the core's idempotency holds across both doors: a retry through
either never moves money twice. What the JSON door adds is Stripe's promise about responses:
the first response to ``K`` (an error included, unless transient) is stored with a hash of the
request, in the same transaction as the batch that produced it, and

* the same key and request again get that response again (``replayed``), without being decided
  again — a request refused for want of money stays refused even after a funding;
* the same key with another request gets :data:`KEY_REUSED` and changes nothing.

:func:`run_keyed` is the body of a group commit's transaction whose items may carry keys
(:class:`Keyed`); :func:`answer_once` does the same for one request outside the batches.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from penny.engine.ledger import LedgerSession
from penny.services.payments import PaymentRequest, Result
from penny.services.payments.service import RunBatch
from penny.storage import idempotency_sql as sql
from penny.storage.idempotency_sql import StoredResponse

#: Keys are kept at least this long (microseconds): a day, as Stripe promises.
KEEP_US = 24 * 3600 * 1_000_000
#: The lock namespace of the payments runner's CallerReferences (the key is one of them).
_NAMESPACE = "fps"


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP status and JSON body; ``replayed`` when it is a stored first response."""

    status: int
    body: bytes
    replayed: bool = False
    #: Whether the response may be kept for the key: not when nothing was decided for this
    #: request (the key belongs to another, through FPS: DuplicateRequest).
    keep: bool = True


class KeyReused(enum.Enum):
    """The key was first used with a different request."""

    key_reused = "key_reused"


KEY_REUSED = KeyReused.key_reused
KeyedAnswer = Response | KeyReused


@dataclass(frozen=True, slots=True)
class Keyed:
    """A payments request sent with an idempotency key (its ``caller_reference``)."""

    request: PaymentRequest
    #: What a retry must repeat: a hash of the method, path and decoded body.
    request_hash: str
    #: The response to the request's outcome (pure: it may run in the batch's thread).
    render: Callable[[Result], Response]

    @property
    def key(self) -> tuple[str, str]:
        return (self.request.caller_id, self.request.caller_reference)


def remembered(response: Response) -> bool:
    """Whether a response is stored: all but the transient ones (429, 5xx), which a retry with
    the same key may turn into another answer (the request did not run), and those that
    decided nothing (``keep`` false)."""
    return response.keep and response.status < 429


def _answer(stored: StoredResponse, request_hash: str) -> KeyedAnswer:
    if stored.request_hash != request_hash:
        return KEY_REUSED
    return Response(stored.status, stored.body, replayed=True)


def run_keyed(
    session: LedgerSession, run: RunBatch, items: Sequence[PaymentRequest | Keyed]
) -> list[Result | KeyedAnswer]:
    """Decide a batch in which some requests carry keys (the body of :meth:`Payments.transact`).

    Keys already answered are not decided again, and only the first of several items with one
    key in the batch is; the others get its answer."""
    keyed = [item.key for item in items if isinstance(item, Keyed)]
    # Every reference of the batch, in the one order the runner takes them again in (a
    # process never holds one key while waiting for a lower one).
    requests = [item.request if isinstance(item, Keyed) else item for item in items]
    session.lock_keys(_NAMESPACE, [(r.caller_id, r.caller_reference) for r in requests])
    stored = sql.load(session.conn, keyed)
    first: dict[tuple[str, str], Keyed] = {}
    to_run: list[PaymentRequest] = []
    for item in items:
        if not isinstance(item, Keyed):
            to_run.append(item)
        elif item.key not in stored and item.key not in first:
            first[item.key] = item
            to_run.append(item.request)
    results = iter(run(to_run))
    fresh: dict[tuple[str, str], Response] = {}
    new_rows: list[StoredResponse] = []
    answers: list[Result | KeyedAnswer] = []
    for item in items:
        if not isinstance(item, Keyed):
            answers.append(next(results))
        elif first.get(item.key) is item:
            response = item.render(next(results))
            fresh[item.key] = response
            if remembered(response):
                row = _row(item, response, session.now)
                new_rows.append(row)
                stored[item.key] = row
            answers.append(response)
        elif item.key in stored:
            answers.append(_answer(stored[item.key], item.request_hash))
        else:  # its first was transient: the same (unstored) answer
            answers.append(fresh[item.key])
    sql.insert_all(session.conn, new_rows)
    return answers


def _row(item: Keyed, response: Response, now: int) -> StoredResponse:
    caller, key = item.key
    return StoredResponse(caller, key, item.request_hash, response.status, response.body, now)


def answer_once(
    session: LedgerSession,
    key: tuple[str, str],
    request_hash: str,
    act: Callable[[LedgerSession], Response],
) -> KeyedAnswer:
    """One keyed request outside the batches (``act`` runs in ``session``'s transaction)."""
    session.lock_keys(_NAMESPACE, [key])
    stored = sql.load(session.conn, [key]).get(key)
    if stored is not None:
        return _answer(stored, request_hash)
    response = act(session)
    if remembered(response):
        caller, name = key
        row = StoredResponse(
            caller, name, request_hash, response.status, response.body, session.now
        )
        sql.insert_all(session.conn, [row])
    return response


def purge(session: LedgerSession, keep_us: int = KEEP_US) -> int:
    """Forget keys older than ``keep_us``; returns how many."""
    return sql.purge(session.conn, session.now - keep_us)
