"""Instant Payment Notification (issue #6; docs/ipn.md).

* :mod:`penny.ipn.params` — what a notification says (spec §8), pure;
* :mod:`penny.ipn.outbox` — the payments service's change listener that writes notifications
  in the same transaction as the change (a transactional outbox);
* :mod:`penny.ipn.delivery` — claiming, signing, POSTing, retrying with backoff;
* :mod:`penny.ipn.guard` — the SSRF guard of production mode;
* :mod:`penny.ipn.settings` — configuration from the environment.

Storage is :mod:`penny.storage.ipn_sql` (migration 0006).
"""
