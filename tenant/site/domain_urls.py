"""URLconf for requests on a tenant's own domain: the issuer is the root."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("tenant.site.issuer_urls")),
]
