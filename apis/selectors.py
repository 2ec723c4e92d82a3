"""Reads for APIs."""

from apis.models import Api
from tenant.config_cache import memoized
from tenant.models import Tenant


def api_get(*, tenant: Tenant, identifier: str) -> Api:
    """The tenant's API with this audience; raises ``Api.DoesNotExist``."""
    api = memoized(
        ("api", tenant.pk, identifier),
        lambda: Api.objects.filter(tenant=tenant, identifier=identifier).first(),
    )
    if api is None:
        raise Api.DoesNotExist(identifier)
    return api
