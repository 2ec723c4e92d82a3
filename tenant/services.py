"""Writes for tenants, memberships and signing keys."""

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from jwt.algorithms import RSAAlgorithm

from tenant.audit import Actor, State, Target, audit_record
from tenant.config_cache import invalidate
from tenant.crypto import encrypt
from tenant.models import SigningKey, Tenant, TenantMembership

RSA_KEY_BITS = 2048


class Conflict(ValidationError):
    """A write that would break a uniqueness rule (a name or pair already taken
    in the tenant). Every surface says so its own way: the Management API with
    Auth0's 409 body (``code`` is its ``errorCode``), the dashboard as a form
    error, a command as one line."""


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
        """``step(tenant=, actor=)`` runs when a tenant's issuer URL changes."""
        if step not in self._on_issuer_change:
            self._on_issuer_change.append(step)

    def created(self, *, tenant: Tenant, actor: Actor) -> None:
        for step in self._on_create:
            step(tenant=tenant, actor=actor)

    def issuer_changed(self, *, tenant: Tenant, actor: Actor) -> None:
        for step in self._on_issuer_change:
            step(tenant=tenant, actor=actor)


tenant_extensions = TenantExtensions()


def _jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an RSA public JWK, used as its ``kid``."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _signing_key_create(tenant: Tenant) -> SigningKey:
    """Generate a new RSA key for ``tenant``; the caller retires the old one
    first and audits the change."""
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
def tenant_create(*, slug: str, name: str = "", domain: str | None = None, actor: Actor) -> Tenant:
    """Create a tenant with its first signing key, and what the apps add to it
    (its Management API)."""
    tenant = Tenant(slug=slug, name=name or slug, domain=domain or None)
    tenant.full_clean()
    tenant.save()
    _audit(tenant, actor, "create", None, tenant_state(tenant))
    _signing_key_create(tenant)
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
    actor: Actor,
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
        tenant_extensions.issuer_changed(tenant=tenant, actor=actor)
    return tenant


@transaction.atomic
def tenant_rotate_key(*, tenant: Tenant, actor: Actor) -> SigningKey:
    """Sign with a new key from now on; the old public key stays in the JWKS."""
    # Lock the tenant row so two rotations cannot both retire the same key.
    Tenant.objects.select_for_update().get(pk=tenant.pk)
    SigningKey.objects.filter(tenant=tenant, retired_at__isnull=True).update(
        retired_at=timezone.now()
    )
    invalidate()
    key = _signing_key_create(tenant)
    _audit(tenant, actor, "rotate-key", None, {"kid": key.kid})
    return key


@transaction.atomic
def tenant_delete(*, tenant: Tenant, actor: Actor) -> None:
    """Delete a tenant with everything in it (keys, APIs, clients, hooks); its
    tokens stop being issued at once. The audit trail stays, the deletion
    last, detached from the tenant."""
    _audit(tenant, actor, "delete", tenant_state(tenant), None)
    tenant.delete()


def _audit_member(
    tenant: Tenant, user: User, actor: Actor, action: str, before: State, after: State
) -> None:
    target = Target(tenant, "membership", user.pk, user.get_username())
    audit_record(target=target, actor=actor, action=action, before=before, after=after)


@transaction.atomic
def tenant_add_member(*, tenant: Tenant, user: User, actor: Actor) -> TenantMembership:
    """Let ``user`` administer ``tenant`` in the dashboard (idempotent: no
    second membership, no second audit row)."""
    membership, created = TenantMembership.objects.get_or_create(tenant=tenant, user=user)
    if created:
        _audit_member(tenant, user, actor, "add-member", None, {"user": user.get_username()})
    return membership


@transaction.atomic
def tenant_remove_member(*, tenant: Tenant, user: User, actor: Actor) -> None:
    """Stop ``user`` administering ``tenant`` (nothing happens if they did not)."""
    removed, _ = TenantMembership.objects.filter(tenant=tenant, user=user).delete()
    if removed:
        _audit_member(tenant, user, actor, "remove-member", {"user": user.get_username()}, None)


@transaction.atomic
def tenant_member_provision(
    *,
    tenant: Tenant,
    username: str,
    password: str,
    superuser: bool = False,
    permissions: Iterable[str] = (),
    actor: Actor,
) -> User:
    """A staff user (created if missing) who administers ``tenant``, signing
    in with ``password`` from now on; ``permissions`` are ``app.codename``
    names added to theirs. The audit row names the password change, never
    the password."""
    user = User.objects.filter(username=username).first() or User(username=username)
    user.is_staff, user.is_superuser = True, superuser
    user.set_password(password)
    user.full_clean()
    user.save()
    for name in permissions:
        app_label, codename = name.split(".", 1)
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    tenant_add_member(tenant=tenant, user=user, actor=actor)
    _audit_member(tenant, user, actor, "set-password", None, None)
    return user
