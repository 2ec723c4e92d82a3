"""Writes for clients and client grants; each leaves an audit row (never a
client secret)."""

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from oauth2_provider.generators import generate_client_secret

from apis.models import Api
from apis.services import MANAGEMENT_SCOPES, management_api_ensure
from clients.choices import TokenEndpointAuthMethod
from clients.models import Client, ClientGrant
from tenant.audit import Actor, State, Target, audit_record
from tenant.models import Tenant
from tenant.services import Conflict

# What a kept client id may hold: RFC 3986's unreserved characters, so it
# survives HTTP Basic (no ':'), form encoding and URLs unchanged; Auth0's are
# 32 alphanumerics.
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._~-]{1,100}")
MIN_KEPT_SECRET_CHARS = 16


def _check_client_id(client_id: str) -> None:
    if not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise ValidationError(
            f"Client id {client_id[:100]!r} must be 1-100 letters, digits or '._~-'.",
            code="invalid_client_id",
        )


def _check_client_secret(secret: str) -> None:
    if not (MIN_KEPT_SECRET_CHARS <= len(secret) <= 255) or not secret.isprintable():
        raise ValidationError(
            f"A client secret must be {MIN_KEPT_SECRET_CHARS}-255 printable characters.",
            code="invalid_client_secret",
        )


def client_state(client: Client) -> dict[str, Any]:
    """What the audit trail records of a client: no secret, hashed or not."""
    return {
        "name": client.name,
        "client_id": client.client_id,
        "metadata": client.metadata,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
    }


def grant_state(grant: ClientGrant) -> dict[str, Any]:
    return {
        "client_id": grant.client.client_id,
        "audience": grant.api.identifier,
        "scope": sorted(grant.scopes.values_list("value", flat=True)),
    }


def _audit_client(client: Client, actor: Actor, action: str, before: State, after: State) -> None:
    target = Target(client.tenant, "client", client.client_id, client.name)
    audit_record(target=target, actor=actor, action=action, before=before, after=after)


def _audit_grant(
    grant: ClientGrant, actor: Actor, action: str, before: State, after: State
) -> None:
    target = Target(
        grant.client.tenant,
        "client_grant",
        grant.pk,
        f"{grant.client.name} → {grant.api.identifier}",
    )
    audit_record(target=target, actor=actor, action=action, before=before, after=after)


@transaction.atomic
def client_create(
    *,
    tenant: Tenant,
    name: str,
    metadata: dict[str, str] | None = None,
    token_endpoint_auth_method: str = TokenEndpointAuthMethod.CLIENT_SECRET_POST,
    client_id: str | None = None,
    client_secret: str | None = None,
    actor: Actor,
) -> tuple[Client, str]:
    """Register a machine client; returns it with its plain secret (shown once).

    A ``client_id`` and ``client_secret`` given are kept (a client brought
    over from Auth0 keeps its credentials); otherwise both are generated.
    The secret is hashed like a generated one.
    """
    if client_id is not None:
        _check_client_id(client_id)
    if client_secret is not None:
        _check_client_secret(client_secret)
    secret = client_secret or generate_client_secret()
    client = Client(
        tenant=tenant,
        name=name,
        metadata=metadata or {},
        token_endpoint_auth_method=token_endpoint_auth_method,
        client_type=Client.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Client.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        hash_client_secret=True,
    )
    if client_id is not None:
        client.client_id = client_id
    client.full_clean()
    client.save()  # DOT's ClientSecretField hashes the secret on save
    _audit_client(client, actor, "create", None, client_state(client))
    return client, secret


@transaction.atomic
def client_update(
    *,
    client: Client,
    name: str | None = None,
    metadata: Mapping[str, str] | None = None,
    token_endpoint_auth_method: str | None = None,
    actor: Actor,
) -> Client:
    """Change a client's name, metadata or token endpoint auth method."""
    before = client_state(Client.objects.get(pk=client.pk))
    if name is not None:
        client.name = name
    if metadata is not None:
        client.metadata = dict(metadata)
    if token_endpoint_auth_method is not None:
        client.token_endpoint_auth_method = token_endpoint_auth_method
    client.full_clean()
    client.save()
    after = client_state(client)
    if after != before:
        _audit_client(client, actor, "update", before, after)
    return client


@transaction.atomic
def client_rotate_secret(*, client: Client, secret: str | None = None, actor: Actor) -> str:
    """Replace the client's secret (with ``secret``, or a new one); the old
    one stops working at once."""
    if secret is not None:
        _check_client_secret(secret)
    secret = secret or generate_client_secret()
    client.client_secret = secret
    client.save(update_fields=["client_secret", "updated"])
    _audit_client(client, actor, "rotate-secret", None, None)
    return secret


@transaction.atomic
def client_delete(*, client: Client, actor: Actor) -> None:
    """Delete a client with its grants; its tokens stop being issued at once."""
    _audit_client(client, actor, "delete", client_state(client), None)
    client.delete()


def _scopes_of(api: Api, values: Iterable[str]) -> list[int]:
    wanted = list(dict.fromkeys(values))
    found = dict(api.scopes.filter(value__in=wanted).values_list("value", "pk"))
    missing = [value for value in wanted if value not in found]
    if missing:
        raise ValidationError(
            f"API {api.identifier} has no scope {', '.join(missing)}.", code="unknown_scope"
        )
    return [found[value] for value in wanted]


@transaction.atomic
def client_grant_create(
    *, client: Client, api: Api, scopes: Iterable[str] = (), actor: Actor
) -> ClientGrant:
    """Allow ``client`` to get tokens for ``api`` with ``scopes`` (all on the API)."""
    if ClientGrant.objects.filter(client=client, api=api).exists():
        raise Conflict(
            "A client grant for this client and audience already exists.", code="conflict"
        )
    scope_ids = _scopes_of(api, scopes)
    grant = ClientGrant(client=client, api=api)
    grant.full_clean()
    grant.save()
    grant.scopes.set(scope_ids)
    _audit_grant(grant, actor, "create", None, grant_state(grant))
    return grant


@transaction.atomic
def client_grant_set_scopes(
    *, grant: ClientGrant, scopes: Iterable[str], actor: Actor
) -> ClientGrant:
    """Replace the scopes of a grant."""
    before = grant_state(grant)
    grant.scopes.set(_scopes_of(grant.api, scopes))
    after = grant_state(grant)
    if after != before:
        _audit_grant(grant, actor, "update", before, after)
    return grant


@transaction.atomic
def client_grant_delete(*, grant: ClientGrant, actor: Actor) -> None:
    """Withdraw a grant: the client gets no more tokens for the API."""
    _audit_grant(grant, actor, "delete", grant_state(grant), None)
    grant.delete()


@transaction.atomic
def management_client_create(
    *, tenant: Tenant, name: str = "Management client", actor: Actor
) -> tuple[Client, str]:
    """A client granted every scope of the tenant's Management API; returns
    it with its plain secret (shown once)."""
    api = management_api_ensure(tenant=tenant, actor=actor)
    client, secret = client_create(tenant=tenant, name=name, actor=actor)
    client_grant_create(client=client, api=api, scopes=MANAGEMENT_SCOPES, actor=actor)
    return client, secret
