from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class SiteConfig(AppConfig):
    """The wiring above every app: its commands, template tags and admin site."""

    name = "tenant.site"
    label = "site"
    verbose_name = "Tessera site"


class AdminConfig(admin_apps.AdminConfig):
    """The dashboard: Django admin, served by Tessera's own admin site."""

    default = False
    default_site = "tenant.site.admin_site.TesseraAdminSite"
