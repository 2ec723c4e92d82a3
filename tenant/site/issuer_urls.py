"""Routes under a tenant's issuer, mounted at ``/{slug}/`` or at a tenant domain's root."""

from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt

from clients.views import TokenView
from tenant import views

app_name = "issuer"
token_view = TokenView.as_view()

# Issuer documents read no cookies: CSRF has nothing to protect here, and its
# HTML 403 must never answer a POST to a path that is not an endpoint. (The
# management API's DRF views are CSRF-exempt by DRF, which checks CSRF itself
# for session authentication.)
urlpatterns = [
    path("oauth/token", token_view, name="token"),
    path(".well-known/jwks.json", csrf_exempt(views.jwks), name="jwks"),
    path(
        ".well-known/openid-configuration",
        csrf_exempt(views.openid_configuration),
        name="discovery",
    ),
    path("api/v2/", include("tenant.site.management_api_urls")),
    re_path(r"^.*$", csrf_exempt(views.not_found), name="not-found"),
]
