"""The one place that builds Penny's service graph (issue #15).

:func:`build_services` takes an open :class:`~penny.storage.database.Database` and the few
settings that differ between its users (the clock, the server key, fees, id generator, a
metered ledger) and returns :class:`Services`, a frozen object holding the graph:

* the :class:`~penny.engine.ledger.Ledger` (or a subclass, e.g. the server's metered one);
* the party :class:`~penny.parties.Directory` (accounts, API keys, payment methods);
* :class:`~penny.services.payments.Payments`, **always with the IPN outbox**
  (:class:`~penny.ipn.outbox.IpnOutbox`) as its listener, so every change a Payments makes
  writes its notifications in the same transaction; the outbox is its extension
  :class:`~penny.webhooks.events.EventOutbox`, which also writes events and their webhook
  deliveries. No other module in ``src/`` constructs
  ``Payments`` (``tests/test_wiring.py`` checks it);
* the signer (:meth:`Services.signer`), loaded on demand because loading it may store a
  first signing key.

The web application (:func:`penny.web.app.create_app`), the CLI, ``penny check bank`` and
the benchmarks all build through here; so do the tests (``tests/builders.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from penny.clock import Clock
from penny.domain.fees import FeeSchedule
from penny.domain.parties import random_id
from penny.engine.ledger import Ledger
from penny.parties import Directory
from penny.security import ServerKey, load_server_key
from penny.services.payments import Payments
from penny.signing import Signer, load_signer
from penny.storage.database import Database
from penny.webhooks.events import EventOutbox

__all__ = ["Services", "build_services"]


@dataclass(frozen=True)
class Services:
    """Penny's services over one store, built by :func:`build_services`."""

    database: Database
    clock: Clock
    server_key: ServerKey
    ledger: Ledger
    directory: Directory
    #: Every change it makes notifies through the IPN outbox.
    payments: Payments

    def signer(self) -> Signer:
        """Penny's signing keys for this store (making the first one if there is none)."""
        return load_signer(self.database, self.server_key)


def build_services(
    database: Database,
    *,
    clock: Clock | None = None,
    server_key: ServerKey | None = None,
    fees: FeeSchedule | None = None,
    new_id: Callable[[int], str] = random_id,
    ledger_type: type[Ledger] = Ledger,
) -> Services:
    """The service graph over an open ``database``.

    ``clock`` defaults to the sandbox clock shared through the database (the time of
    payments, tokens and transactions); ``server_key`` (which decrypts API secrets) to the one
    :func:`penny.security.load_server_key` finds for it. ``fees`` and ``new_id`` (the ids of
    instruments, tokens and transactions) default to Penny's; ``ledger_type`` lets the server
    count its batches (:class:`penny.web.metrics.MeteredLedger`).
    """
    if clock is None:
        from penny.sandbox.clock import SandboxClock

        clock = SandboxClock(database)
    if server_key is None:
        server_key = load_server_key(database.url)
    ledger = ledger_type(database, clock)
    directory = Directory(database, ledger, clock, server_key)
    payments = Payments(ledger, clock=clock, fees=fees, new_id=new_id, listener=EventOutbox())
    return Services(database, clock, server_key, ledger, directory, payments)
