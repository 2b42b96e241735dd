"""Access keys for the authentication stage: :class:`KeyCache` remembers, for
:data:`KEY_TTL_MS`, an access key's decrypted secret and owner, so a signed request costs no
database read and no AES-GCM decryption for its key. A revoked key is refused at most one TTL
after the revocation, by every worker process (docs/decisions.md, #8).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from penny.parties import Directory

#: How long a key's secret and owner are trusted without asking the database again.
KEY_TTL_MS = 1000
#: Keys cached at most (the cache starts again empty past it).
MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class _CachedKey:
    checked_ns: int
    ciphertext: bytes
    secret: str
    owner: str


class KeyCache:
    """Access key id → (secret, owner) for :data:`KEY_TTL_MS`; thread-safe.

    A key older than the TTL is checked again, together with every other cached key past half
    its TTL, in one read (so 100 merchants' keys cost about two reads a second, not 100); a
    secret is decrypted again only when its stored ciphertext changed.
    """

    def __init__(self, directory: Directory, ttl_ms: int = KEY_TTL_MS) -> None:
        self.directory = directory
        self.ttl_ns = ttl_ms * 1_000_000
        self._entries: dict[str, _CachedKey] = {}
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        #: Reads made to check keys (for tests and metrics).
        self.reads = 0

    def _entry(self, access_key_id: str) -> _CachedKey | None:
        cached = self._entries.get(access_key_id)
        if cached is not None and time.monotonic_ns() - cached.checked_ns < self.ttl_ns:
            return cached
        with self._refresh_lock:
            now = time.monotonic_ns()
            cached = self._entries.get(access_key_id)
            if cached is not None and now - cached.checked_ns < self.ttl_ns:
                return cached  # another thread checked it meanwhile
            self._refresh(access_key_id, now)
            return self._entries.get(access_key_id)

    def _refresh(self, access_key_id: str, now: int) -> None:
        with self._lock:
            entries = dict(self._entries)
        ids = {access_key_id}
        ids.update(k for k, e in entries.items() if now - e.checked_ns >= self.ttl_ns // 2)
        found = self.directory.active_keys(ids)
        self.reads += 1
        fresh: dict[str, _CachedKey] = {}
        for key_id in ids:
            row = found.get(key_id)
            if row is None:
                continue
            ciphertext, owner = row
            before = entries.get(key_id)
            if before is not None and before.ciphertext == ciphertext:
                secret = before.secret
            else:
                secret = self.directory.decrypt_secret(ciphertext, key_id)
            fresh[key_id] = _CachedKey(now, ciphertext, secret, owner)
        with self._lock:
            for key_id in ids - fresh.keys():
                self._entries.pop(key_id, None)
            if len(self._entries) + len(fresh) > MAX_CACHED_KEYS:
                self._entries.clear()
            self._entries.update(fresh)

    def fresh(self, access_key_id: str) -> bool:
        """Whether the key is cached and within its TTL (no database read needed)."""
        cached = self._entries.get(access_key_id)
        return cached is not None and time.monotonic_ns() - cached.checked_ns < self.ttl_ns

    def secret_for(self, access_key_id: str) -> str | None:
        entry = self._entry(access_key_id)
        return None if entry is None else entry.secret

    def party_of(self, access_key_id: str) -> str | None:
        entry = self._entry(access_key_id)
        return None if entry is None else entry.owner
