from django.apps import AppConfig


class ClientsConfig(AppConfig):
    name = "clients"
    verbose_name = "Clients"

    def ready(self) -> None:
        from clients.selectors import replay_grants
        from hooks.dry_run import client_inputs
        from tenant.config_cache import watch_config_models

        watch_config_models("clients.Client", "clients.ClientGrant", "clients.ClientGrant.scopes")
        client_inputs.register(replay_grants)
