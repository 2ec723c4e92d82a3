"""Writes for clients and client grants."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from oauth2_provider.generators import generate_client_secret

from apis.models import Api
from clients.choices import TokenEndpointAuthMethod
from clients.models import Client, ClientGrant
from tenant.models import Tenant


@transaction.atomic
def client_create(
    *,
    tenant: Tenant,
    name: str,
    metadata: dict[str, str] | None = None,
    token_endpoint_auth_method: str = TokenEndpointAuthMethod.CLIENT_SECRET_POST,
) -> tuple[Client, str]:
    """Register a machine client; returns it with its plain secret (shown once)."""
    secret = generate_client_secret()
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
    client.full_clean()
    client.save()  # DOT's ClientSecretField hashes the secret on save
    return client, secret


@transaction.atomic
def client_rotate_secret(*, client: Client) -> str:
    """Replace the client's secret; the old one stops working at once."""
    secret = generate_client_secret()
    client.client_secret = secret
    client.save(update_fields=["client_secret", "updated"])
    return secret


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
def client_grant_create(*, client: Client, api: Api, scopes: Iterable[str] = ()) -> ClientGrant:
    """Allow ``client`` to get tokens for ``api`` with ``scopes`` (all on the API)."""
    scope_ids = _scopes_of(api, scopes)
    grant = ClientGrant(client=client, api=api)
    grant.full_clean()
    grant.save()
    grant.scopes.set(scope_ids)
    return grant


@transaction.atomic
def client_grant_set_scopes(*, grant: ClientGrant, scopes: Iterable[str]) -> ClientGrant:
    """Replace the scopes of a grant."""
    grant.scopes.set(_scopes_of(grant.api, scopes))
    return grant
