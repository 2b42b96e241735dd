"""Content fingerprints: how a retry is told apart from a different command under the same key.

A fingerprint is a 16-byte BLAKE2b digest of an unambiguous (length-prefixed) encoding of every
field of a command except its key. Two commands have equal fingerprints exactly when they ask for
the same thing.
"""

from __future__ import annotations

import hashlib

from penny.ledger.model import Command, Leg, NewJournal, PostPending, VoidPending

FINGERPRINT_SIZE = 16


def _field(value: object) -> str:
    text = "" if value is None else str(value)
    return f"{len(text)}:{text}"


def _legs(legs: tuple[Leg, ...] | None) -> str:
    if legs is None:
        return "-"
    return "".join(
        _field(leg.account_id) + _field(leg.amount) + _field(leg.currency) for leg in legs
    )


def fingerprint(command: Command) -> bytes:
    """Return the fingerprint of ``command`` (its owner is part of it, its key is not)."""
    parts: tuple[object, ...]
    if isinstance(command, NewJournal):
        parts = (
            "journal",
            command.owner,
            int(command.pending),
            command.expires_at,
            command.code,
            command.memo,
            _legs(command.legs),
        )
    elif isinstance(command, PostPending):
        parts = (
            "post",
            command.owner,
            command.pending_id,
            command.code,
            command.memo,
            _legs(command.legs),
        )
    else:
        assert isinstance(command, VoidPending)
        parts = ("void", command.owner, command.pending_id, command.code, command.memo)
    encoded = "|".join(_field(part) for part in parts).encode()
    return hashlib.blake2b(encoded, digest_size=FINGERPRINT_SIZE).digest()
