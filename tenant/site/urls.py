from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from tenant.site import health
from tenant.site.issuer_urls import token_view

# Inside the dashboard a 404 is a dashboard page (another tenant's object
# gives the same 404 as a missing one, with the navigation to go on).
handler404 = "tenant.site.admin_site.not_found"

urlpatterns = [
    # No trailing slash: "<slug>/" below never matches these.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages without an icon link (error pages).
    path("favicon.ico", RedirectView.as_view(url=static("tessera/favicon.svg"), permanent=True)),
    # The hottest path resolves in one step rather than two (the same view is
    # the include's first route, where reverse() finds it).
    path("<slug:tenant_slug>/oauth/token", token_view),
    path("<slug:tenant_slug>/", include("tenant.site.issuer_urls")),
]
