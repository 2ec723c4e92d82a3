"""Encryption at rest for secrets Tessera must read back (signing keys, HS256
API secrets, hook secrets), with the key-encryption key from ``TESSERA_KEK``.

Several comma-separated Fernet keys may be given: the first encrypts, all of
them decrypt, so a deployment can rotate the KEK and re-encrypt at leisure.

Without ``TESSERA_KEK`` a checkout keeps one generated key in ``var/kek``,
but generates it only for a database that holds no secret yet: a second
server pointed at an existing database without its KEK would otherwise make
a key that reads nothing. The KEK is checked against the database on first
use, so a process refuses (``KekError``) before it encrypts anything with a
wrong key or serves a tenant it cannot sign for.
"""

import os
import threading
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


class KekError(Exception):
    """The key-encryption key cannot serve this database. The message is one
    line for the operator, naming ``TESSERA_KEK`` and never a key."""


class UnreadableSecretError(Exception):
    """A stored secret this server's KEK cannot decrypt (encrypted with
    another key, or damaged). The message names no secret."""


def _stored_secrets() -> Any:
    """The stored signing keys' ciphertexts. Every tenant has a signing key,
    and every other secret belongs to a tenant: no signing key, no secret."""
    from tenant.models import SigningKey

    return SigningKey.objects.values_list("private_key_encrypted", flat=True).iterator()


def _local_kek(path: Path) -> str:
    """The key kept in ``path``, generated (mode 0600) for a database that
    holds no secret yet."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    if next(_stored_secrets(), None) is not None:
        raise KekError(
            "TESSERA_KEK is not set and the database holds secrets encrypted with another "
            f"key: set TESSERA_KEK to the key that encrypted them (no key was generated "
            f"into {path})."
        )
    return _generated_key(path)


def _generated_key(path: Path) -> str:
    """A new key in ``path``, or the one another process put there first:
    written aside, then linked into place whole, so that no process (a
    server's workers start together) ever reads it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    key = Fernet.generate_key().decode()
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    try:
        os.link(aside, path)
    except FileExistsError:  # another process generated it meanwhile
        return path.read_text().strip()
    finally:
        aside.unlink()
    return key


def _check_reads_database(fernet: MultiFernet, source: str) -> None:
    """Refuse a KEK that decrypts none of the stored signing keys: a wrong
    key, not a damaged tenant (which only that tenant's requests feel)."""
    unreadable = 0
    for ciphertext in _stored_secrets():
        try:
            fernet.decrypt(ciphertext.encode())
        except InvalidToken:
            unreadable += 1
        else:
            return
    if unreadable:
        raise KekError(
            f"{source} decrypts none of the database's {unreadable} signing keys: set "
            "TESSERA_KEK to the key that encrypted them (comma-separated with the new "
            "one, new first, while rotating)."
        )


@cache
def _fernet() -> MultiFernet:
    configured = settings.TESSERA_KEK
    source = "TESSERA_KEK"
    if not configured.strip():
        path = Path(settings.TESSERA_KEK_FILE)
        configured = _local_kek(path)
        source = f"The key in {path} (TESSERA_KEK is not set)"
    try:
        fernet = MultiFernet(
            [Fernet(key.strip().encode()) for key in configured.split(",") if key.strip()]
        )
    except ValueError:  # not 32 url-safe base64-encoded bytes, or no key at all
        raise KekError(
            f"{source} is not a list of Fernet keys (32 url-safe base64-encoded bytes "
            "each, comma-separated)."
        ) from None
    _check_reads_database(fernet, source)
    return fernet


@receiver(setting_changed)
def _forget_kek(*, setting: str, **kwargs: Any) -> None:
    if setting in ("TESSERA_KEK", "TESSERA_KEK_FILE"):
        _fernet.cache_clear()


def check_kek() -> None:
    """Load the KEK now and check it against the database; raises ``KekError``."""
    _fernet()


def encrypt(plaintext: str) -> str:
    """Encrypt ``plaintext`` with the current KEK."""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a value produced by :func:`encrypt` with any configured KEK;
    raises ``UnreadableSecretError`` when none of them can."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise UnreadableSecretError(
            "A stored secret cannot be decrypted with this server's TESSERA_KEK."
        ) from None
