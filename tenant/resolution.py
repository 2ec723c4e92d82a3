"""Which tenant a request is for: its own domain (set by the middleware from
the Host header) or the ``/{slug}/`` prefix of the path."""

from django.http import Http404, HttpRequest

from tenant.models import Tenant
from tenant.selectors import tenant_get


def tenant_for_request(request: HttpRequest, tenant_slug: str | None) -> Tenant:
    """The request's tenant; a missing one is a plain 404."""
    tenant: Tenant | None = getattr(request, "tenant", None)
    if tenant is not None:
        return tenant
    if tenant_slug is None:
        raise Http404("No tenant")
    try:
        return tenant_get(slug=tenant_slug)
    except Tenant.DoesNotExist:
        raise Http404("No tenant") from None
