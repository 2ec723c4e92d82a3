"""Reads for clients and grants."""

from django.db.models import QuerySet

from apis.models import Api, ApiScope
from clients.models import Client, ClientGrant
from hooks.dry_run import GrantInput, TenantClients
from tenant.config_cache import memoized
from tenant.models import Tenant


def client_get(*, tenant: Tenant, client_id: str) -> Client:
    """The tenant's client; raises ``Client.DoesNotExist`` for other tenants' too."""
    return Client.objects.get(tenant=tenant, client_id=client_id)


def client_grant_get(*, client: Client, api: Api) -> ClientGrant:
    """The client's grant for ``api``; raises ``ClientGrant.DoesNotExist``."""
    return ClientGrant.objects.get(client=client, api=api)


def client_granted_scopes(*, client: Client, api: Api) -> list[str] | None:
    """Scopes ``client`` may receive for ``api`` in the API's order, or None
    when there is no grant at all."""

    def load() -> list[str] | None:
        grant = ClientGrant.objects.filter(client=client, api=api).values_list("pk", flat=True)
        if not grant:
            return None
        scopes = ApiScope.objects.filter(client_grants=grant[0]).order_by("id")
        return list(scopes.values_list("value", flat=True))

    scopes = memoized(("grant", client.pk, api.pk), load)
    return None if scopes is None else list(scopes)


def client_for_token(*, tenant: Tenant, client_id: str) -> Client | None:
    """The tenant's client with ``client_id``, memoised for token requests."""
    return memoized(
        ("client", tenant.pk, client_id),
        lambda: Client.objects.filter(tenant=tenant, client_id=client_id).first(),
        remember_missing=False,  # strangers' client ids must cost no memory
    )


def client_list(*, tenant: Tenant) -> QuerySet[Client]:
    """The tenant's clients, oldest first."""
    return Client.objects.filter(tenant=tenant).select_related("tenant").order_by("id")


def client_find(*, tenant: Tenant, client_id: str) -> Client | None:
    """The tenant's client with ``client_id``; None for another tenant's too."""
    return Client.objects.filter(tenant=tenant, client_id=client_id).first()


def client_grant_list(
    *, tenant: Tenant, audience: str | None = None, client_id: str | None = None
) -> QuerySet[ClientGrant]:
    """The tenant's grants, oldest first, optionally of one audience or client."""
    grants = ClientGrant.objects.filter(client__tenant=tenant).select_related("client", "api")
    if audience:
        grants = grants.filter(api__identifier=audience)
    if client_id:
        grants = grants.filter(client__client_id=client_id)
    return grants.order_by("id")


def client_grant_find(*, tenant: Tenant, public_id: str) -> ClientGrant | None:
    """The tenant's grant by its public id."""
    grants = ClientGrant.objects.select_related("client__tenant", "api")
    return grants.filter(client__tenant=tenant, public_id=public_id).first()


def client_ids_elsewhere(*, tenant: Tenant, client_ids: list[str]) -> set[str]:
    """Which of ``client_ids`` other tenants' clients hold (client ids are
    unique across the deployment); never which tenant holds them."""
    taken = Client.objects.filter(client_id__in=client_ids).exclude(tenant=tenant)
    return set(taken.values_list("client_id", flat=True))


def replay_grants(*, tenant: Tenant) -> TenantClients:
    """The tenant's clients and every grant, by client then API, for dry
    runs of hook changes (``hooks.dry_run``), with the scopes each grants in
    the API's order."""
    grants = (
        ClientGrant.objects.filter(client__tenant=tenant)
        .select_related("client", "api")
        .prefetch_related("scopes")
        .order_by("client_id", "api_id")
    )
    inputs = [
        GrantInput(
            client_id=grant.client.client_id,
            name=grant.client.name,
            metadata=dict(grant.client.metadata or {}),
            audience=grant.api.identifier,
            scopes=[s.value for s in sorted(grant.scopes.all(), key=lambda s: s.pk)],
        )
        for grant in grants
    ]
    return TenantClients(count=Client.objects.filter(tenant=tenant).count(), grants=inputs)
