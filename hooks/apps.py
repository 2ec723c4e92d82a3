from django.apps import AppConfig


class HooksConfig(AppConfig):
    name = "hooks"
    verbose_name = "Hooks"

    def ready(self) -> None:
        from tenant.config_cache import watch_config_models

        # A draft (Action, ActionSecret) is not what token requests run: its
        # deployed versions and the bindings are.
        watch_config_models(
            "hooks.Hook",
            "hooks.HookSecret",
            "hooks.ActionVersion",
            "hooks.TriggerBinding",
            "hooks.TenantEgress",
        )
