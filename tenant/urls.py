from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from tenant import health

urlpatterns = [
    # No trailing slash: "<slug>/" below never matches these.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages without an icon link (error pages).
    path("favicon.ico", RedirectView.as_view(url=static("tessera/favicon.svg"), permanent=True)),
    path("<slug:tenant_slug>/", include("tenant.issuer_urls")),
]
