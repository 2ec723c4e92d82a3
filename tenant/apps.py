from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class TenantConfig(AppConfig):
    default = True
    name = "tenant"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from tenant.config_cache import connect_invalidation

        connect_invalidation()


class AdminConfig(admin_apps.AdminConfig):
    """The dashboard: Django admin, served by Tessera's own admin site."""

    default = False
    default_site = "tenant.admin_site.TesseraAdminSite"
