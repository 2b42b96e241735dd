"""The Aggregated Payments domain: parties, payment methods, instruments, tokens and their rules.

Modules here are pure — plain data and functions over it, no SQL, no network and no clock (times
are handed in as microseconds since the epoch). :mod:`penny.domain.parties` describes accounts
(buyers and merchants), API keys and payment methods; :mod:`penny.domain.funding` decides what
happens when a payment method is charged. Adapters in :mod:`penny.storage`, :mod:`penny.parties`
and :mod:`penny.services` make them durable.
"""
