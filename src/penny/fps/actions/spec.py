"""The three kinds of FPS action, and the work one validated request becomes.

Every action in :data:`penny.fps.actions.table.ACTIONS` is one of:

* :class:`CommitAction` (batched): its validation turns the parameters into a typed
  :class:`~penny.services.payments.PaymentRequest`, which joins a group commit (or, called
  directly, one :meth:`Payments.submit`); its answer is the transaction's id and status.
* :class:`ReadAction` (batched): its validation turns the parameters into a
  :class:`~penny.services.payment_queries.BalanceQuery`, read with others in one statement;
  ``render`` turns the balances into the Result content.
* :class:`QueryAction`: a handler that reads the store itself (in a worker thread when served).

The split is explicit so that the server, the CLI and the tests run the same validation and
rendering and differ only in how the work is executed (:mod:`.table`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from penny.fps.actions.call import Call, Handler
from penny.fps.wire import Xml
from penny.services.payment_queries import BalanceQuery, TwoBalances
from penny.services.payments import PaymentRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionSpec:
    """What every action declares: the parameters it accepts besides the common ones."""

    parameters: frozenset[str]
    #: Names matching this pattern are accepted too (``Role.1``, ``Role.2``, …).
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitAction(ActionSpec):
    validate: Callable[[Call], PaymentRequest]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadAction(ActionSpec):
    validate: Callable[[Call], BalanceQuery]
    render: Callable[[TwoBalances], Xml]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryAction(ActionSpec):
    handler: Handler


@dataclass(frozen=True, slots=True)
class CommitWork:
    """A validated money-moving request, to be committed."""

    request: PaymentRequest


@dataclass(frozen=True, slots=True)
class ReadWork:
    """A validated balance read, to be read; ``render`` makes its Result content."""

    query: BalanceQuery
    render: Callable[[TwoBalances], Xml]


@dataclass(frozen=True, slots=True)
class QueryWork:
    """A request whose handler reads the store itself."""

    call: Call
    handler: Handler


Work = CommitWork | ReadWork | QueryWork


def amount_names(*names: str) -> frozenset[str]:
    """The two parameters of each amount: ``X.Value`` and ``X.CurrencyCode``."""
    return frozenset(f"{name}.{part}" for name in names for part in ("Value", "CurrencyCode"))


def names(*names: str) -> frozenset[str]:
    return frozenset(names)
