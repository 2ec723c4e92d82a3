"""Reads for APIs."""

from apis.models import Api
from tenant.models import Tenant


def api_get(*, tenant: Tenant, identifier: str) -> Api:
    """The tenant's API with this audience; raises ``Api.DoesNotExist``."""
    return Api.objects.get(tenant=tenant, identifier=identifier)
