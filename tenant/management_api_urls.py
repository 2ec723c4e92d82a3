"""Management API v2 routes under an issuer (``{issuer}api/v2/…``)."""

from django.urls import path, re_path

from apis.api import ResourceServerDetailView, ResourceServerListView
from clients.api import (
    ClientDetailView,
    ClientGrantDetailView,
    ClientGrantListView,
    ClientListView,
    ClientRotateSecretView,
)
from hooks.api import HookDetailView, HookListView, HookSecretsView
from tenant.management_api import ManagementDocsView, ManagementSchemaView, api_not_found

urlpatterns = [
    path("openapi.json", ManagementSchemaView.as_view(), name="mgmt-openapi"),
    path("docs", ManagementDocsView.as_view(), name="mgmt-docs"),
    path("hooks", HookListView.as_view(), name="mgmt-hooks"),
    path("hooks/<str:hook_id>", HookDetailView.as_view(), name="mgmt-hook"),
    path("hooks/<str:hook_id>/secrets", HookSecretsView.as_view(), name="mgmt-hook-secrets"),
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
    re_path(r"^.*$", api_not_found, name="mgmt-not-found"),
]
