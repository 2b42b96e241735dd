"""Secrets: password hashing, the server key, API secrets encrypted at rest, fingerprints.

* Buyers' passwords are hashed with argon2id (:func:`hash_password`, :func:`verify_password`).
* The **server key** (32 random bytes) comes from configuration, see :func:`load_server_key`
  and docs/decisions.md, "Server secret key". Two keys are derived from it with HKDF-SHA256,
  one per purpose, so the same bytes never serve two algorithms:

  - API secret keys are stored AES-256-GCM encrypted (:meth:`ServerKey.encrypt_secret`), with
    the access key id as associated data, so a ciphertext moved to another key's row does not
    decrypt. Request signing needs the clear secret (HMAC), so it cannot be a one-way hash.
  - Card and bank account numbers are never stored; their *fingerprint*, a hex HMAC-SHA256 of
    the number (:meth:`ServerKey.fingerprint`), recognises the same number again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import make_url

SERVER_KEY_ENV: Final = "PENNY_SECRET_KEY"
SERVER_KEY_FILE_ENV: Final = "PENNY_SECRET_KEY_FILE"
#: Name of the key file generated next to an SQLite database when no key is configured.
KEY_FILE_NAME: Final = "penny-secret.key"
SERVER_KEY_BYTES: Final = 32

#: First byte of every stored ciphertext: the format (nonce, then AES-GCM output) and KDF label.
_CIPHERTEXT_VERSION: Final = b"\x01"
_NONCE_BYTES: Final = 12
_SECRET_KEY_RANDOM_BYTES: Final = 30  # 40 characters of base64, like an AWS secret key

_HASHER: Final = PasswordHasher()


class ServerKeyError(RuntimeError):
    """The server key is missing, malformed, or not the one the data was stored with."""


# -- passwords ---------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """An argon2id hash in PHC string form (``$argon2id$v=19$…``), salt included."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (constant time in the password)."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(password_hash)


# -- API secrets -------------------------------------------------------------------------


def new_secret_key() -> str:
    """A new API secret: 40 characters of base64 from 30 random bytes, AWS style."""
    return base64.b64encode(secrets.token_bytes(_SECRET_KEY_RANDOM_BYTES)).decode("ascii")


class ServerKey:
    """The server's master key, and what is derived from it. Never printed."""

    __slots__ = ("_aead", "_fingerprint_key")

    def __init__(self, key: bytes) -> None:
        if len(key) != SERVER_KEY_BYTES:
            raise ServerKeyError(f"the server key must be {SERVER_KEY_BYTES} bytes")
        self._aead = AESGCM(_derive(key, b"penny api-secret encryption v1"))
        self._fingerprint_key = _derive(key, b"penny payment-method fingerprint v1")

    @classmethod
    def from_hex(cls, text: str, *, source: str) -> ServerKey:
        """Parse 64 hexadecimal characters; ``source`` names where they came from, for errors."""
        cleaned = text.strip()
        try:
            key = bytes.fromhex(cleaned)
        except ValueError:
            key = b""
        if len(key) != SERVER_KEY_BYTES:
            raise ServerKeyError(
                f"{source} must hold exactly 64 hexadecimal characters "
                "(make one with: openssl rand -hex 32)"
            )
        return cls(key)

    @classmethod
    def generate(cls) -> ServerKey:
        return cls(secrets.token_bytes(SERVER_KEY_BYTES))

    def __repr__(self) -> str:
        return "ServerKey(<hidden>)"

    def encrypt_secret(self, secret: str, access_key_id: str) -> bytes:
        """AES-GCM with a fresh nonce; ``access_key_id`` is bound in as associated data."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), access_key_id.encode("utf-8"))
        return _CIPHERTEXT_VERSION + nonce + sealed

    def decrypt_secret(self, blob: bytes, access_key_id: str) -> str:
        """The clear secret, or :class:`ServerKeyError` if the key or the data is wrong."""
        version, nonce, sealed = blob[:1], blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        if version != _CIPHERTEXT_VERSION:
            raise ServerKeyError(f"the stored secret of {access_key_id} has an unknown format")
        try:
            clear = self._aead.decrypt(nonce, sealed, access_key_id.encode("utf-8"))
        except InvalidTag:
            raise ServerKeyError(
                f"the stored secret of {access_key_id} does not decrypt: the server key is not "
                "the one it was stored with, or the row was altered"
            ) from None
        return clear.decode("utf-8")

    def fingerprint(self, kind: str, number: str) -> str:
        """Hex HMAC-SHA256 of ``kind:number``: equal numbers give equal fingerprints."""
        message = f"{kind}:{number}".encode()
        return hmac.new(self._fingerprint_key, message, hashlib.sha256).hexdigest()


def _derive(key: bytes, label: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=SERVER_KEY_BYTES, salt=None, info=label)
    return hkdf.derive(key)


# -- loading the server key --------------------------------------------------------------


def load_server_key(
    database_url: str, environ: Mapping[str, str] | None = None, *, create: bool = True
) -> ServerKey:
    """The server key, from the first of:

    1. ``$PENNY_SECRET_KEY``: 64 hexadecimal characters;
    2. ``$PENNY_SECRET_KEY_FILE``: a file holding them;
    3. for an SQLite database file, ``penny-secret.key`` in the same directory; for an
       in-memory SQLite database, a key for this process only.

    A missing ``penny-secret.key`` is made (mode 0600) only with ``create`` and only while the
    database holds nothing sealed with a key (:func:`~penny.storage.database.holds_sealed_rows`):
    a new key for a store that has secrets would make every one of them unreadable, so that is
    :class:`ServerKeyError`, naming the file to restore.

    With PostgreSQL and no key configured, raises :class:`ServerKeyError`: servers sharing a
    database must share the key, so Penny will not invent one per machine.
    """
    env = os.environ if environ is None else environ
    if env.get(SERVER_KEY_ENV):
        return ServerKey.from_hex(env[SERVER_KEY_ENV], source=f"${SERVER_KEY_ENV}")
    if env.get(SERVER_KEY_FILE_ENV):
        return _read_key_file(Path(env[SERVER_KEY_FILE_ENV]))
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise ServerKeyError(
            f"no server key configured: set ${SERVER_KEY_ENV} to 64 hexadecimal characters "
            f"(openssl rand -hex 32) or ${SERVER_KEY_FILE_ENV} to a file holding them; every "
            "Penny server sharing this database needs the same key"
        )
    if not url.database or url.database == ":memory:" or "mode=memory" in str(url):
        return ServerKey.generate()
    database = Path(url.database)
    path = key_file_path(database)
    if path.exists():
        return _read_key_file(path)
    _refuse_new_key(database, path, create=create)
    return _create_key_file(path)


def key_file_path(database: Path) -> Path:
    """Where the server key of the SQLite database file ``database`` is kept."""
    return database.resolve().with_name(KEY_FILE_NAME)


def _refuse_new_key(database: Path, path: Path, *, create: bool) -> None:
    from penny.storage.database import holds_sealed_rows

    if holds_sealed_rows(database):
        raise ServerKeyError(
            f"the server key file {path} is missing, but the database {database} holds secrets "
            "sealed with it: restore the file from your backup (or set "
            f"${SERVER_KEY_ENV} or ${SERVER_KEY_FILE_ENV}); a new key would make every stored "
            "secret unreadable, so Penny does not make one"
        )
    if not create:
        raise ServerKeyError(
            f"no server key file {path} next to the database {database}: restore it from your "
            f"backup, or set ${SERVER_KEY_ENV} or ${SERVER_KEY_FILE_ENV}; while the database "
            "holds no secrets yet, `penny db upgrade` makes a new one"
        )


def _read_key_file(path: Path) -> ServerKey:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ServerKeyError(f"cannot read the server key file {path}: {exc}") from None
    return ServerKey.from_hex(text, source=f"the server key file {path}")


def _create_key_file(path: Path) -> ServerKey:
    """Write a new key file atomically (mode 0600); if another process won, use its key."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secrets.token_hex(SERVER_KEY_BYTES) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # atomic, and refuses to replace a key another process made
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
        _fsync_directory(path.parent)
    except OSError as exc:
        raise ServerKeyError(f"cannot create the server key file {path}: {exc}") from None
    return _read_key_file(path)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
