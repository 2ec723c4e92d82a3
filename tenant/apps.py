from django.apps import AppConfig


class TenantConfig(AppConfig):
    default = True
    name = "tenant"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from tenant.config_cache import watch_config_models

        watch_config_models("tenant.Tenant", "tenant.SigningKey")
