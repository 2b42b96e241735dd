"""Events and webhooks (issue #17; docs/api.md, "Receive a webhook").

* :mod:`penny.webhooks.signature` — the Standard Webhooks scheme: ``whsec_`` secrets and the
  ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` headers;
* :mod:`penny.webhooks.events` — the event types, and the outbox that writes events (and a
  delivery for each endpoint that takes them) in the same transaction as the change;
* :mod:`penny.webhooks.endpoints` — merchants' endpoints: add, list, remove, rotate a secret;
* :mod:`penny.webhooks.delivery` — the body and signed headers of a claimed delivery, for the
  IPN deliverer (:mod:`penny.ipn.delivery`), whose claims, retries and attempts it shares.

Storage is :mod:`penny.storage.webhooks_sql` (migration 0017).
"""
