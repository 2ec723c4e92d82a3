from django.apps import AppConfig


class ApisConfig(AppConfig):
    name = "apis"
    verbose_name = "APIs"

    def ready(self) -> None:
        from apis.services import management_api_ensure, management_api_rename
        from tenant.config_cache import watch_config_models
        from tenant.services import tenant_extensions

        watch_config_models("apis.Api", "apis.ApiScope")
        # Every tenant has its built-in Management API, named after its issuer.
        tenant_extensions.on_create(management_api_ensure)
        tenant_extensions.on_issuer_change(management_api_rename)
