"""Management API v2 routes under an issuer (``{issuer}api/v2/…``)."""

from typing import Any

from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.request import Request
from rest_framework.response import Response

from apis.api import ResourceServerDetailView, ResourceServerListView
from clients.api import (
    ClientDetailView,
    ClientGrantDetailView,
    ClientGrantListView,
    ClientListView,
    ClientRotateSecretView,
)
from hooks.actions_api import (
    ActionDeployView,
    ActionDetailView,
    ActionListView,
    ActionTestView,
    ActionVersionDeployView,
    ActionVersionDetailView,
    ActionVersionListView,
    ExecutionView,
    ModuleListView,
    TriggerBindingsView,
    TriggerListView,
)
from hooks.api import HookDetailView, HookListView, HookSecretsView
from hooks.settings_api import TenantSettingsView
from tenant.management_api import api_not_found
from tenant.resolution import tenant_for_request


class ManagementSchemaView(SpectacularAPIView):
    """``{issuer}api/v2/openapi.json``: the OpenAPI document generated from
    these views, with this tenant's API as its server. Public, like Auth0's."""

    urlconf = __name__
    renderer_classes = [OpenApiJsonRenderer]
    authentication_classes: list[Any] = []  # public, like Auth0's
    schema = None  # not an endpoint of the API it describes

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        tenant = tenant_for_request(request, kwargs.get("tenant_slug"))
        self.custom_settings = {"SERVERS": [{"url": f"{tenant.issuer}api/v2"}]}
        return super().get(request)  # type: ignore[no-any-return]


class ManagementDocsView(SpectacularSwaggerView):
    """``{issuer}api/v2/docs``: Swagger UI on the document, assets served locally."""

    url = "openapi.json"  # relative: this tenant's document
    authentication_classes: list[Any] = []


urlpatterns = [
    path("openapi.json", ManagementSchemaView.as_view(), name="mgmt-openapi"),
    path("docs", ManagementDocsView.as_view(), name="mgmt-docs"),
    path("hooks", HookListView.as_view(), name="mgmt-hooks"),
    path("hooks/<str:hook_id>", HookDetailView.as_view(), name="mgmt-hook"),
    path("hooks/<str:hook_id>/secrets", HookSecretsView.as_view(), name="mgmt-hook-secrets"),
    path("actions/triggers", TriggerListView.as_view(), name="mgmt-action-triggers"),
    path(
        "actions/triggers/<str:trigger_id>/bindings",
        TriggerBindingsView.as_view(),
        name="mgmt-action-bindings",
    ),
    path("actions/actions", ActionListView.as_view(), name="mgmt-actions"),
    path("actions/actions/<str:action_id>", ActionDetailView.as_view(), name="mgmt-action"),
    path(
        "actions/actions/<str:action_id>/deploy",
        ActionDeployView.as_view(),
        name="mgmt-action-deploy",
    ),
    path("actions/actions/<str:action_id>/test", ActionTestView.as_view(), name="mgmt-action-test"),
    path(
        "actions/actions/<str:action_id>/versions",
        ActionVersionListView.as_view(),
        name="mgmt-action-versions",
    ),
    path(
        "actions/actions/<str:action_id>/versions/<str:version_id>",
        ActionVersionDetailView.as_view(),
        name="mgmt-action-version",
    ),
    path(
        "actions/actions/<str:action_id>/versions/<str:version_id>/deploy",
        ActionVersionDeployView.as_view(),
        name="mgmt-action-version-deploy",
    ),
    path("actions/executions/<str:execution_id>", ExecutionView.as_view(), name="mgmt-execution"),
    path("actions/modules", ModuleListView.as_view(), name="mgmt-action-modules"),
    path("resource-servers", ResourceServerListView.as_view(), name="mgmt-resource-servers"),
    path(
        "resource-servers/<path:rs_id>",
        ResourceServerDetailView.as_view(),
        name="mgmt-resource-server",
    ),
    path("clients", ClientListView.as_view(), name="mgmt-clients"),
    path("clients/<str:client_id>", ClientDetailView.as_view(), name="mgmt-client"),
    path(
        "clients/<str:client_id>/rotate-secret",
        ClientRotateSecretView.as_view(),
        name="mgmt-client-rotate-secret",
    ),
    path("client-grants", ClientGrantListView.as_view(), name="mgmt-client-grants"),
    path("client-grants/<str:grant_id>", ClientGrantDetailView.as_view(), name="mgmt-client-grant"),
    path("tenants/settings", TenantSettingsView.as_view(), name="mgmt-tenant-settings"),
    # Any method: an endpoint Tessera lacks is Auth0's 404, not a CSRF 403.
    re_path(r"^.*$", csrf_exempt(api_not_found), name="mgmt-not-found"),
]
