from django.apps import AppConfig


class ClientsConfig(AppConfig):
    name = "clients"
    verbose_name = "Clients"

    def ready(self) -> None:
        from tenant.config_cache import watch_config_models

        watch_config_models("clients.Client", "clients.ClientGrant", "clients.ClientGrant.scopes")
