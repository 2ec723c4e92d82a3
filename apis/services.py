"""Writes for APIs and their scopes; each leaves an audit row."""

import secrets
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apis.choices import SigningAlgorithm
from apis.models import DEFAULT_TOKEN_LIFETIME, Api, ApiScope
from tenant.audit import Actor, State, Target, audit_record
from tenant.config_cache import invalidate
from tenant.crypto import encrypt
from tenant.models import Tenant
from tenant.services import Conflict

ScopeSpec = str | tuple[str, str]


class BuiltInApi(ValidationError):
    """The tenant's Management API cannot be deleted or have its identity changed."""


def _new_signing_secret() -> str:
    return secrets.token_urlsafe(48)  # 384 bits, above HS256's 256-bit minimum


MIN_SIGNING_SECRET_CHARS = 16


def _check_signing_secret(secret: str | None) -> str | None:
    if secret is not None and not (MIN_SIGNING_SECRET_CHARS <= len(secret) <= 1000):
        raise ValidationError(
            f"A signing secret must be {MIN_SIGNING_SECRET_CHARS}-1000 characters.",
            code="invalid_signing_secret",
        )
    return secret


def api_state(api: Api) -> dict[str, Any]:
    """What the audit trail records of an API (never its signing secret)."""
    return {
        "name": api.name,
        "identifier": api.identifier,
        "signing_alg": api.signing_alg,
        "token_lifetime": api.token_lifetime,
        "scopes": [
            {"value": s.value, "description": s.description} for s in api.scopes.order_by("id")
        ],
    }


def _audit(api: Api, actor: Actor, action: str, before: State, after: State) -> None:
    target = Target(api.tenant, "api", api.pk, api.identifier)
    audit_record(target=target, actor=actor, action=action, before=before, after=after)


@transaction.atomic
def api_create(
    *,
    tenant: Tenant,
    name: str,
    identifier: str,
    scopes: Iterable[ScopeSpec] = (),
    signing_alg: str = SigningAlgorithm.RS256,
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
    signing_secret: str | None = None,
    actor: Actor,
) -> tuple[Api, str | None]:
    """Create an API with its scopes (values, or (value, description) pairs).

    Returns the API and, for HS256, its signing secret: ``signing_secret``
    when given (an API brought over keeps its secret), else a new one (shown
    once).
    """
    if Api.objects.filter(tenant=tenant, identifier=identifier).exists():
        raise Conflict(
            "A resource server with the same identifier already exists.",
            code="resource_server_conflict",
        )
    secret = None
    if signing_alg == SigningAlgorithm.HS256:
        secret = _check_signing_secret(signing_secret) or _new_signing_secret()
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
        _scope_add(api, value, description)
    _audit(api, actor, "create", None, api_state(api))
    return api, secret


def _scope_add(api: Api, value: str, description: str) -> ApiScope:
    # Audited by the service that calls it, with the API's whole scope list.
    scope = ApiScope(api=api, value=value, description=description)
    scope.full_clean()
    scope.save()
    return scope


def _set_scopes(api: Api, scopes: Iterable[ScopeSpec]) -> None:
    wanted: dict[str, str] = {}
    for scope in scopes:
        value, description = (scope, "") if isinstance(scope, str) else scope
        wanted[value] = description
    api.scopes.exclude(value__in=list(wanted)).delete()
    current = {s.value: s for s in api.scopes.all()}
    for value, description in wanted.items():
        existing = current.get(value)
        if existing is None:
            _scope_add(api, value, description)
        elif existing.description != description:
            existing.description = description
            existing.full_clean()
            existing.save(update_fields=["description"])


@transaction.atomic
def api_update(
    *,
    api: Api,
    name: str | None = None,
    token_lifetime: int | None = None,
    signing_alg: str | None = None,
    scopes: Iterable[ScopeSpec] | None = None,
    signing_secret: str | None = None,
    actor: Actor,
) -> str | None:
    """Change an API's settings; ``scopes`` replaces the whole list (grants
    lose scopes that are removed). The identifier never changes: it is in
    every token issued for the API. Returns a new signing secret when the
    API becomes HS256; ``signing_secret`` sets an HS256 API's secret."""
    if api.is_system and (scopes is not None or signing_alg not in (None, api.signing_alg)):
        raise BuiltInApi(
            "The Management API's scopes and signing algorithm are fixed.", code="built_in"
        )
    before = api_state(api)
    secret = None
    if name is not None:
        api.name = name
    if token_lifetime is not None:
        api.token_lifetime = token_lifetime
    if signing_alg is not None:
        if signing_alg == SigningAlgorithm.HS256 and not api.signing_secret_encrypted:
            secret = _new_signing_secret()
            api.signing_secret_encrypted = encrypt(secret)
        api.signing_alg = signing_alg
    if signing_secret is not None:
        _check_signing_secret(signing_secret)
        if api.signing_alg != SigningAlgorithm.HS256:
            raise ValidationError("Only an HS256 API has a signing secret.", code="invalid")
        secret = signing_secret
        api.signing_secret_encrypted = encrypt(signing_secret)
    api.full_clean()
    api.save()
    if scopes is not None:
        _set_scopes(api, scopes)
    after = api_state(api)
    if signing_secret is not None:
        after["signing_secret_written"] = True  # never the value
    if after != before:
        _audit(api, actor, "update", before, after)
    return secret


def api_set_signing_alg(*, api: Api, signing_alg: str, actor: Actor) -> str | None:
    """Switch the signing algorithm; returns a new secret when it becomes HS256."""
    return api_update(api=api, signing_alg=signing_alg, actor=actor)


@transaction.atomic
def api_rotate_signing_secret(*, api: Api, actor: Actor) -> str:
    """Replace the HS256 signing secret; returns the new one (shown once)."""
    secret = _new_signing_secret()
    api.signing_secret_encrypted = encrypt(secret)
    api.save(update_fields=["signing_secret_encrypted", "updated_at"])
    _audit(api, actor, "rotate-signing-secret", None, None)
    return secret


@transaction.atomic
def api_delete(*, api: Api, actor: Actor) -> None:
    """Delete an API with its scopes and grants; the Management API stays."""
    if api.is_system:
        raise BuiltInApi("The tenant's Management API cannot be deleted.", code="built_in")
    _audit(api, actor, "delete", api_state(api), None)
    api.delete()


MANAGEMENT_RESOURCES = ("hooks", "clients", "resource_servers", "client_grants", "actions")
# Settings are read and updated, never created or deleted (Auth0's scopes).
SETTINGS_SCOPES = ("read:tenant_settings", "update:tenant_settings")
MANAGEMENT_SCOPES = (
    *(
        f"{verb}:{resource}"
        for resource in MANAGEMENT_RESOURCES
        for verb in ("read", "create", "update", "delete")
    ),
    *SETTINGS_SCOPES,
)


def management_api_identifier(tenant: Tenant) -> str:
    """The audience of the tenant's Management API tokens (Auth0's
    ``https://{domain}/api/v2/``)."""
    return f"{tenant.issuer}api/v2/"


@transaction.atomic
def management_api_ensure(*, tenant: Tenant, actor: Actor) -> Api:
    """The tenant's built-in Management API, created on first call."""
    existing = Api.objects.filter(tenant=tenant, is_system=True).first()
    if existing is not None:
        return existing
    api, _ = api_create(
        tenant=tenant,
        name="Tessera Management API",
        identifier=management_api_identifier(tenant),
        scopes=[(scope, _scope_description(scope)) for scope in MANAGEMENT_SCOPES],
        actor=actor,
    )
    Api.objects.filter(pk=api.pk).update(is_system=True)
    api.is_system = True
    return api


def _scope_description(scope: str) -> str:
    verb, resource = scope.split(":")
    return f"{verb.capitalize()} {resource.replace('_', ' ')}"


@transaction.atomic
def management_api_rename(*, tenant: Tenant, actor: Actor) -> None:
    """Move the Management API's audience to the tenant's current issuer (a
    step of the tenant update that changed it, by the same actor)."""
    api = Api.objects.filter(tenant=tenant, is_system=True).first()
    if api is None or api.identifier == management_api_identifier(tenant):
        return
    before = api_state(api)
    Api.objects.filter(pk=api.pk).update(identifier=management_api_identifier(tenant))
    invalidate()
    api.refresh_from_db()
    _audit(api, actor, "update", before, api_state(api))
