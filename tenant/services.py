"""Writes for tenants, memberships and signing keys."""

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from jwt.algorithms import RSAAlgorithm

from tenant.audit import SYSTEM, Actor, State, Target, audit_record
from tenant.config_cache import invalidate
from tenant.crypto import encrypt
from tenant.models import SigningKey, Tenant, TenantMembership

RSA_KEY_BITS = 2048


class TenantExtensions:
    """What other apps add to a tenant's life, registered from their
    ``AppConfig.ready()`` (the tenancy base imports no app): steps run inside
    the transaction of the service that calls them."""

    def __init__(self) -> None:
        self._on_create: list[Callable[..., Any]] = []
        self._on_issuer_change: list[Callable[..., Any]] = []

    def on_create(self, step: Callable[..., Any]) -> None:
        """``step(tenant=, actor=)`` runs when a tenant is created."""
        if step not in self._on_create:
            self._on_create.append(step)

    def on_issuer_change(self, step: Callable[..., Any]) -> None:
        """``step(tenant=)`` runs when a tenant's issuer URL changes."""
        if step not in self._on_issuer_change:
            self._on_issuer_change.append(step)

    def created(self, *, tenant: Tenant, actor: Actor) -> None:
        for step in self._on_create:
            step(tenant=tenant, actor=actor)

    def issuer_changed(self, *, tenant: Tenant) -> None:
        for step in self._on_issuer_change:
            step(tenant=tenant)


tenant_extensions = TenantExtensions()


def _jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an RSA public JWK, used as its ``kid``."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signing_key_create(*, tenant: Tenant) -> SigningKey:
    """Generate a new RSA key for ``tenant``; the caller retires the old one first."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    jwk: dict[str, str] = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    kid = _jwk_thumbprint(jwk)
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    key = SigningKey(tenant=tenant, kid=kid, private_key_encrypted=encrypt(pem), public_jwk=jwk)
    key.full_clean()
    key.save()
    return key


def tenant_state(tenant: Tenant) -> dict[str, Any]:
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "domain": tenant.domain,
        "hook_timeout_ms": tenant.hook_timeout_ms,
        "hook_cpu_ms": tenant.hook_cpu_ms,
        "hook_memory_mb": tenant.hook_memory_mb,
    }


def _audit(tenant: Tenant, actor: Actor, action: str, before: State, after: State) -> None:
    target = Target(tenant, "tenant", tenant.slug, tenant.name)
    audit_record(target=target, actor=actor, action=action, before=before, after=after)


@transaction.atomic
def tenant_create(
    *, slug: str, name: str = "", domain: str | None = None, actor: Actor = SYSTEM
) -> Tenant:
    """Create a tenant with its first signing key, and what the apps add to it
    (its Management API)."""
    tenant = Tenant(slug=slug, name=name or slug, domain=domain or None)
    tenant.full_clean()
    tenant.save()
    _audit(tenant, actor, "create", None, tenant_state(tenant))
    signing_key_create(tenant=tenant)
    tenant_extensions.created(tenant=tenant, actor=actor)
    return tenant


@transaction.atomic
def tenant_update(
    *,
    tenant: Tenant,
    name: str | None = None,
    domain: str | None = None,
    hook_timeout_ms: int | None = None,
    hook_cpu_ms: int | None = None,
    hook_memory_mb: int | None = None,
    actor: Actor = SYSTEM,
) -> Tenant:
    """Change a tenant's name, domain (``""`` removes it) or hook limits."""
    before = tenant_state(Tenant.objects.get(pk=tenant.pk))
    if name is not None:
        tenant.name = name
    if domain is not None:
        tenant.domain = domain or None
    if hook_timeout_ms is not None:
        tenant.hook_timeout_ms = hook_timeout_ms
    if hook_cpu_ms is not None:
        tenant.hook_cpu_ms = hook_cpu_ms
    if hook_memory_mb is not None:
        tenant.hook_memory_mb = hook_memory_mb
    tenant.full_clean()
    tenant.save()
    after = tenant_state(tenant)
    if after != before:
        _audit(tenant, actor, "update", before, after)
    if after["domain"] != before["domain"]:
        tenant_extensions.issuer_changed(tenant=tenant)
    return tenant


@transaction.atomic
def tenant_rotate_key(*, tenant: Tenant, actor: Actor = SYSTEM) -> SigningKey:
    """Sign with a new key from now on; the old public key stays in the JWKS."""
    # Lock the tenant row so two rotations cannot both retire the same key.
    Tenant.objects.select_for_update().get(pk=tenant.pk)
    SigningKey.objects.filter(tenant=tenant, retired_at__isnull=True).update(
        retired_at=timezone.now()
    )
    invalidate()
    key = signing_key_create(tenant=tenant)
    _audit(tenant, actor, "rotate-key", None, {"kid": key.kid})
    return key


def tenant_add_member(*, tenant: Tenant, user: User) -> TenantMembership:
    """Let ``user`` administer ``tenant`` in the dashboard (idempotent)."""
    membership, _ = TenantMembership.objects.get_or_create(tenant=tenant, user=user)
    return membership
