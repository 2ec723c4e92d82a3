from django.db import models


class TriggerId(models.TextChoices):
    """Extensibility points a hook can be written for (see hooks.points)."""

    CREDENTIALS_EXCHANGE = "credentials-exchange", "Client Credentials Exchange"


class RunOutcome(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"
    TIMEOUT = "timeout", "Timeout"
    MEMORY = "memory", "Memory limit"
    CRASHED = "crashed", "Crashed"


class RunSource(models.TextChoices):
    TOKEN = "token", "Token request"
    TEST = "test", "Test run"
