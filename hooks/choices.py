from django.db import models


class TriggerId(models.TextChoices):
    """Extensibility points a hook can be written for (see hooks.points)."""

    CREDENTIALS_EXCHANGE = "credentials-exchange", "Client Credentials Exchange"


class HookKind(models.TextChoices):
    """What a script exports: Auth0's Hook function, or an Auth0 Action."""

    HOOK = "hook", "Hook"
    ACTION = "action", "Action"


class RunOutcome(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"
    TIMEOUT = "timeout", "Timeout"
    MEMORY = "memory", "Memory limit"
    CRASHED = "crashed", "Crashed"
    # Not run: the tenant had too many runs going, or the hook's breaker was open.
    REFUSED = "refused", "Refused"


class RunSource(models.TextChoices):
    TOKEN = "token", "Token request"
    TEST = "test", "Test run"
