from django.db.models import TextChoices


class TriggerId(TextChoices):
    """Extensibility points a hook can be written for (see hooks.points)."""

    CREDENTIALS_EXCHANGE = "credentials-exchange", "Client Credentials Exchange"


class HookKind(TextChoices):
    """What a script exports: Auth0's Hook function, or an Auth0 Action."""

    HOOK = "hook", "Hook"
    ACTION = "action", "Action"


class RunOutcome(TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"
    TIMEOUT = "timeout", "Timeout"
    MEMORY = "memory", "Memory limit"
    CRASHED = "crashed", "Crashed"
    # Not run: the tenant had too many runs going, or the hook's breaker was open.
    REFUSED = "refused", "Refused"


class RunSource(TextChoices):
    TOKEN = "token", "Token request"
    TEST = "test", "Test run"


class ActionStatus(TextChoices):
    """An Action's build status, as Auth0 reports it."""

    PENDING = "pending", "Pending"
    BUILT = "built", "Built"
    FAILED = "failed", "Failed"


class ActionRuntime(TextChoices):
    """The runtime label an Action names (stored and reported; every Action
    runs in the same sandbox)."""

    NODE18 = "node18", "Node 18"
    NODE22 = "node22", "Node 22"
