"""Encryption at rest for secrets Tessera must read back (signing keys, HS256
API secrets, hook secrets), with the key-encryption key from ``TESSERA_KEK``.

Several comma-separated Fernet keys may be given: the first encrypts, all of
them decrypt, so a deployment can rotate the KEK and re-encrypt at leisure.
"""

from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@cache
def _fernet() -> MultiFernet:
    keys = [key.strip() for key in settings.TESSERA_KEK.split(",") if key.strip()]
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(plaintext: str) -> str:
    """Encrypt ``plaintext`` with the current KEK."""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a value produced by :func:`encrypt` with any configured KEK."""
    return _fernet().decrypt(token.encode()).decode()
