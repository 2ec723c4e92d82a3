"""Reads for tenants and their keys."""

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.db.models import Q, QuerySet
from django.utils import timezone

from tenant.config_cache import memoized
from tenant.crypto import UnreadableSecretError, decrypt
from tenant.models import MAX_TOKEN_LIFETIME, AuditEntry, SigningKey, Tenant


@dataclass(frozen=True)
class LoadedSigningKey:
    kid: str
    private_key: RSAPrivateKey


logger = logging.getLogger(__name__)

# Parsing a PEM costs ~50 ms; a kid never changes its key, so parse each once.
_loaded_keys: dict[str, RSAPrivateKey] = {}
# Slugs of the tenants whose active signing key this process could not
# decrypt when it last tried: their token requests answer 500, /readyz names them.
_unreadable_keys: set[str] = set()


def tenant_get(*, slug: str) -> Tenant:
    """The tenant with ``slug``; raises ``Tenant.DoesNotExist``."""
    tenant = memoized(
        ("tenant", slug),
        lambda: Tenant.objects.filter(slug=slug).first(),
        remember_missing=False,  # any path segment can be a slug
    )
    if tenant is None:
        raise Tenant.DoesNotExist(slug)
    return tenant


def tenant_for_domain(*, host: str) -> Tenant | None:
    """The tenant served on ``host`` (no port), if any."""
    host = host.lower()
    return memoized(
        ("tenant-domain", host),
        lambda: Tenant.objects.filter(domain=host).first(),
        remember_missing=False,  # any Host header
    )


def _load_active_key(tenant: Tenant) -> LoadedSigningKey:
    kid, encrypted = SigningKey.objects.filter(tenant=tenant, retired_at__isnull=True).values_list(
        "kid", "private_key_encrypted"
    )[0]
    if kid not in _loaded_keys:
        try:
            pem = decrypt(encrypted)
        except UnreadableSecretError:
            if tenant.slug not in _unreadable_keys:
                _unreadable_keys.add(tenant.slug)
                logger.error(
                    "Tenant %s: its signing key %s cannot be decrypted with this server's "
                    "TESSERA_KEK; its tokens are refused with a 500 until it can be.",
                    tenant.slug,
                    kid,
                )
            raise
        key = load_pem_private_key(pem.encode(), password=None)
        assert isinstance(key, RSAPrivateKey)
        _loaded_keys[kid] = key
    _unreadable_keys.discard(tenant.slug)
    return LoadedSigningKey(kid=kid, private_key=_loaded_keys[kid])


def signing_key_active(*, tenant: Tenant) -> LoadedSigningKey:
    """The tenant's current RS256 signing key, parsed once per process."""
    return memoized(("signing-key", tenant.pk), lambda: _load_active_key(tenant))


def tenants_with_unreadable_keys() -> list[str]:
    """The slugs of existing tenants whose signing key this process found it
    cannot decrypt (at warm-up or on a token request), sorted."""
    if not _unreadable_keys:
        return []
    slugs = Tenant.objects.filter(slug__in=_unreadable_keys).values_list("slug", flat=True)
    return sorted(slugs)


def tenant_jwks(*, tenant: Tenant) -> dict[str, list[dict[str, Any]]]:
    """The tenant's JWK Set: the active key and keys retired too recently for
    every token they signed to have expired (tokens live at most 30 days)."""
    cutoff = timezone.now() - timedelta(seconds=MAX_TOKEN_LIFETIME)
    keys = SigningKey.objects.filter(tenant=tenant).filter(
        Q(retired_at__isnull=True) | Q(retired_at__gt=cutoff)
    )
    return {"keys": [key.public_jwk for key in keys]}


def audit_entries(
    *, tenant: Tenant, object_type: str | None = None, object_id: object = None
) -> QuerySet[AuditEntry]:
    """The tenant's audit trail, newest first, optionally of one object."""
    entries = AuditEntry.objects.filter(tenant=tenant)
    if object_type is not None:
        entries = entries.filter(object_type=object_type)
    if object_id is not None:
        entries = entries.filter(object_id=str(object_id))
    return entries
