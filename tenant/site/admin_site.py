from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path

from apis.models import Api
from clients.models import Client
from hooks.choices import RunOutcome, RunSource
from hooks.models import Hook
from hooks.selectors import hook_runs, trigger_flow
from tenant.selectors import audit_entries


class TesseraAdminSite(admin.AdminSite):
    """The Tessera dashboard: Django admin with a landing page per tenant and
    a tenant switcher in the header."""

    site_header = "Tessera"
    site_title = "Tessera"
    index_title = "Dashboard"
    index_template = "admin/tessera_index.html"
    # The dashboard is the site: no "View site" link to a page that is not there.
    site_url = None

    def get_urls(self) -> list[URLResolver | URLPattern]:
        urls: list[URLResolver | URLPattern] = [
            path("t/<slug:slug>/", self.admin_view(self.tenant_landing), name="tenant_landing"),
            path(
                "t/<slug:slug>/import/",
                self.admin_view(self.tenant_import),
                name="tenant_import",
            ),
        ]
        return urls + super().get_urls()

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        # tenant.admin registers its ModelAdmins on this site: imported here,
        # not at the top, because this module is loaded to make the site.
        from tenant.admin import CURRENT_TENANT_SESSION_KEY, user_tenants

        context = super().each_context(request)
        if request.user.is_authenticated and request.user.is_staff:
            tenants = list(user_tenants(request)[:200])
            current = request.session.get(CURRENT_TENANT_SESSION_KEY)
            context["tessera_tenants"] = tenants
            context["tessera_current_tenant"] = next(
                (t for t in tenants if t.slug == current),
                tenants[0] if len(tenants) == 1 else None,  # nothing to switch between
            )
        return context

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        from tenant.admin import user_tenants

        extra_context = {**(extra_context or {}), "tenants_overview": user_tenants(request)[:50]}
        return super().index(request, extra_context)

    def tenant_import(self, request: HttpRequest, slug: str) -> HttpResponse:
        """Bring the tenant's APIs, clients, grants, hooks and Actions over
        from Auth0 (``tenant.site.auth0_import.views``)."""
        from tenant.admin import user_tenants
        from tenant.site.auth0_import.views import tenant_import

        tenant = user_tenants(request).filter(slug=slug).first()
        if tenant is None:
            raise Http404("No such tenant.")
        response = tenant_import(request, tenant)
        assert isinstance(response, TemplateResponse)
        response.context_data = {
            **self.each_context(request),
            **(response.context_data or {}),
            "tessera_current_tenant": tenant,
        }
        return response

    def tenant_landing(self, request: HttpRequest, slug: str) -> HttpResponse:
        """One tenant at a glance: APIs, clients, hooks and recent runs."""
        from tenant.admin import CURRENT_TENANT_SESSION_KEY, user_tenants

        tenant = user_tenants(request).filter(slug=slug).first()
        if tenant is None:
            raise Http404("No such tenant.")
        request.session[CURRENT_TENANT_SESSION_KEY] = tenant.slug
        # Production only: test runs from the Run button are not incidents.
        runs = hook_runs(tenant=tenant).filter(source=RunSource.TOKEN)
        context = {
            **self.each_context(request),
            "title": tenant.name,
            "tenant": tenant,
            "apis": Api.objects.filter(tenant=tenant).prefetch_related("scopes")[:50],
            "clients": Client.objects.filter(tenant=tenant).prefetch_related("grants__api")[:50],
            "hooks": Hook.objects.filter(tenant=tenant).order_by("trigger_id", "-enabled", "name"),
            "recent_runs": runs[:10],
            "recent_errors": runs.exclude(outcome=RunOutcome.OK)[:10],
            "recent_changes": audit_entries(tenant=tenant)[:20],
            "flow": trigger_flow(tenant=tenant),
        }
        context["tessera_current_tenant"] = tenant
        return TemplateResponse(request, "admin/tenant_landing.html", context)
