from django.apps import AppConfig


class HooksConfig(AppConfig):
    name = "hooks"
    verbose_name = "Hooks"

    def ready(self) -> None:
        from tenant.config_cache import watch_config_models

        watch_config_models("hooks.Hook", "hooks.HookSecret")
