"""Reads for clients and grants."""

from apis.models import Api, ApiScope
from clients.models import Client, ClientGrant
from tenant.models import Tenant


def client_get(*, tenant: Tenant, client_id: str) -> Client:
    """The tenant's client; raises ``Client.DoesNotExist`` for other tenants' too."""
    return Client.objects.get(tenant=tenant, client_id=client_id)


def client_granted_scopes(*, client: Client, api: Api) -> list[str] | None:
    """Scopes ``client`` may receive for ``api`` in the API's order, or None
    when there is no grant at all."""
    grant = ClientGrant.objects.filter(client=client, api=api).values_list("pk", flat=True).first()
    if grant is None:
        return None
    return list(
        ApiScope.objects.filter(client_grants=grant).order_by("id").values_list("value", flat=True)
    )
