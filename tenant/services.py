"""Writes for tenants, memberships and signing keys."""

import base64
import hashlib
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from jwt.algorithms import RSAAlgorithm

from tenant.config_cache import invalidate
from tenant.crypto import encrypt
from tenant.models import SigningKey, Tenant, TenantMembership

RSA_KEY_BITS = 2048


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


@transaction.atomic
def tenant_create(*, slug: str, name: str = "", domain: str | None = None) -> Tenant:
    """Create a tenant with its first signing key."""
    tenant = Tenant(slug=slug, name=name or slug, domain=domain or None)
    tenant.full_clean()
    tenant.save()
    signing_key_create(tenant=tenant)
    return tenant


@transaction.atomic
def tenant_rotate_key(*, tenant: Tenant) -> SigningKey:
    """Sign with a new key from now on; the old public key stays in the JWKS."""
    # Lock the tenant row so two rotations cannot both retire the same key.
    Tenant.objects.select_for_update().get(pk=tenant.pk)
    SigningKey.objects.filter(tenant=tenant, retired_at__isnull=True).update(
        retired_at=timezone.now()
    )
    invalidate()
    return signing_key_create(tenant=tenant)


def tenant_add_member(*, tenant: Tenant, user: User) -> TenantMembership:
    """Let ``user`` administer ``tenant`` in the dashboard (idempotent)."""
    membership, _ = TenantMembership.objects.get_or_create(tenant=tenant, user=user)
    return membership
