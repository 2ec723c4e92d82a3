from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.views import defaults

from apis.models import Api
from clients.models import Client
from hooks.choices import RunOutcome, RunSource
from hooks.models import Hook
from hooks.selectors import hook_runs, trigger_flow
from tenant.models import Tenant
from tenant.selectors import (
    ACTIVITY_WINDOWS,
    activity_series,
    audit_choices,
    audit_entries,
    recent_audit_entries,
)
from tenant.site.forms import AuditFilterForm

AUDIT_PAGE_SIZE = 50


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
            path("t/<slug:slug>/audit/", self.admin_view(self.tenant_audit), name="tenant_audit"),
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

        tenants = user_tenants(request)
        extra_context = {
            **(extra_context or {}),
            "tenants_overview": tenants[:50],
            # The services write the audit trail, not Django's LogEntry: the
            # home page's "recent actions" are the trail's newest entries.
            "recent_changes": recent_audit_entries(tenants=tenants)[:10],
        }
        return super().index(request, extra_context)

    def tenant_import(self, request: HttpRequest, slug: str) -> HttpResponse:
        """Bring the tenant's APIs, clients, grants, hooks and Actions over
        from Auth0 (``tenant.site.auth0_import.views``)."""
        from tenant.site.auth0_import.views import tenant_import

        tenant = self._tenant_of(request, slug)
        response = tenant_import(request, tenant)
        assert isinstance(response, TemplateResponse)
        response.context_data = {
            **self.each_context(request),
            **(response.context_data or {}),
            "tessera_current_tenant": tenant,
        }
        return response

    def _tenant_of(self, request: HttpRequest, slug: str) -> Tenant:
        """The user's tenant named ``slug``, now the switcher's current one;
        another tenant is the same 404 as a missing one."""
        from tenant.admin import CURRENT_TENANT_SESSION_KEY, user_tenants

        tenant = user_tenants(request).filter(slug=slug).first()
        if tenant is None:
            raise Http404("No such tenant.")
        request.session[CURRENT_TENANT_SESSION_KEY] = tenant.slug
        return tenant

    def tenant_audit(self, request: HttpRequest, slug: str) -> HttpResponse:
        """The tenant's audit trail, filtered and a page at a time."""
        tenant = self._tenant_of(request, slug)
        form = AuditFilterForm(request.GET or None, choices=audit_choices(tenant=tenant))
        filters = form.filters() if form.is_valid() else {}
        entries = audit_entries(tenant=tenant, **filters)
        page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
        query = request.GET.copy()
        query.pop("page", None)
        context = {
            **self.each_context(request),
            "title": f"{tenant.name}: audit log",
            "tenant": tenant,
            "form": form,
            "page_obj": page,
            "filter_query": query.urlencode(),
            "tessera_current_tenant": tenant,
        }
        return TemplateResponse(request, "admin/tenant_audit.html", context)

    def tenant_landing(self, request: HttpRequest, slug: str) -> HttpResponse:
        """One tenant at a glance: activity charts, APIs, clients, hooks,
        recent runs and changes."""
        tenant = self._tenant_of(request, slug)
        # Production only: test runs from the Run button are not incidents.
        runs = hook_runs(tenant=tenant).filter(source=RunSource.TOKEN)
        context = {
            **self.each_context(request),
            "title": tenant.name,
            "tenant": tenant,
            "apis": Api.objects.filter(tenant=tenant)
            .order_by("is_system", "name")
            .prefetch_related("scopes")[:50],
            "activity": self._activity(tenant),
            "clients": Client.objects.filter(tenant=tenant).prefetch_related("grants__api")[:50],
            "hooks": Hook.objects.filter(tenant=tenant).order_by("trigger_id", "-enabled", "name"),
            "recent_runs": runs[:10],
            "recent_errors": runs.exclude(outcome=RunOutcome.OK)[:10],
            "recent_changes": audit_entries(tenant=tenant)[:20],
            "flow": trigger_flow(tenant=tenant),
        }
        context["tessera_current_tenant"] = tenant
        return TemplateResponse(request, "admin/tenant_landing.html", context)

    def _activity(self, tenant: Tenant) -> dict[str, Any]:
        """The charts' data: each window's series, and the names of the
        clients they show (the counts keep client ids)."""
        windows = {name: activity_series(tenant=tenant, window=name) for name in ACTIVITY_WINDOWS}
        shown = {client_id for series in windows.values() for client_id in series["clients"]}
        names = dict(
            Client.objects.filter(tenant=tenant, client_id__in=shown - {""}).values_list(
                "client_id", "name"
            )
        )
        names[""] = "unknown client"
        return {**windows, "client_names": names}


def not_found(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    """The site's 404: under ``/admin/``, for a signed-in staff user (another
    tenant's object, a missing one), a dashboard page with its header and
    navigation; elsewhere Django's (API paths answer JSON, see
    ``IssuerJsonErrorsMiddleware``)."""
    user = getattr(request, "user", None)
    if request.path.startswith("/admin/") and user is not None and user.is_staff:
        context = {**admin.site.each_context(request), "title": "Not found"}
        response = TemplateResponse(request, "admin/404.html", context, status=404)
        return response.render()
    return defaults.page_not_found(request, exception)
