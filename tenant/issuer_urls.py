"""Routes under a tenant's issuer, mounted at ``/{slug}/`` or at a tenant domain's root."""

from django.urls import path, re_path

from clients.views import TokenView
from tenant import views

app_name = "issuer"

urlpatterns = [
    path("oauth/token", TokenView.as_view(), name="token"),
    path(".well-known/jwks.json", views.jwks, name="jwks"),
    path(".well-known/openid-configuration", views.openid_configuration, name="discovery"),
    re_path(r"^.*$", views.not_found, name="not-found"),
]
