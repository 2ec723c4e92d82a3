"""Writes for APIs and their scopes."""

import secrets
from collections.abc import Iterable

from django.db import transaction

from apis.choices import SigningAlgorithm
from apis.models import DEFAULT_TOKEN_LIFETIME, Api, ApiScope
from tenant.crypto import encrypt
from tenant.models import Tenant


def _new_signing_secret() -> str:
    return secrets.token_urlsafe(48)  # 384 bits, above HS256's 256-bit minimum


@transaction.atomic
def api_create(
    *,
    tenant: Tenant,
    name: str,
    identifier: str,
    scopes: Iterable[str | tuple[str, str]] = (),
    signing_alg: str = SigningAlgorithm.RS256,
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
) -> tuple[Api, str | None]:
    """Create an API with its scopes (values, or (value, description) pairs).

    Returns the API and, for HS256, its new signing secret (shown once).
    """
    secret = _new_signing_secret() if signing_alg == SigningAlgorithm.HS256 else None
    api = Api(
        tenant=tenant,
        name=name,
        identifier=identifier,
        signing_alg=signing_alg,
        signing_secret_encrypted=encrypt(secret) if secret else "",
        token_lifetime=token_lifetime,
    )
    api.full_clean()
    api.save()
    for scope in scopes:
        value, description = (scope, "") if isinstance(scope, str) else scope
        api_scope_add(api=api, value=value, description=description)
    return api, secret


def api_scope_add(*, api: Api, value: str, description: str = "") -> ApiScope:
    """Add a scope to ``api``."""
    scope = ApiScope(api=api, value=value, description=description)
    scope.full_clean()
    scope.save()
    return scope


@transaction.atomic
def api_set_signing_alg(*, api: Api, signing_alg: str) -> str | None:
    """Switch the signing algorithm; returns a new secret when it becomes HS256."""
    secret = None
    if signing_alg == SigningAlgorithm.HS256 and not api.signing_secret_encrypted:
        secret = _new_signing_secret()
        api.signing_secret_encrypted = encrypt(secret)
    api.signing_alg = signing_alg
    api.full_clean()
    api.save()
    return secret


@transaction.atomic
def api_rotate_signing_secret(*, api: Api) -> str:
    """Replace the HS256 signing secret; returns the new one (shown once)."""
    secret = _new_signing_secret()
    api.signing_secret_encrypted = encrypt(secret)
    api.save(update_fields=["signing_secret_encrypted", "updated_at"])
    return secret
