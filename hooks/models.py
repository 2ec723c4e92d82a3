"""Hooks: tenant JavaScript run at an extensibility point, with secrets,
saved versions, run logs and persistent storage."""

import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from hooks.choices import HookKind, RunOutcome, RunSource, TriggerId
from tenant.models import Tenant

MAX_SECRETS_PER_HOOK = 20

validate_hook_name = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$",
    "Use letters, digits, spaces, '.', '_' and '-' (at most 100 characters).",
)
validate_secret_name = RegexValidator(
    r"^[A-Za-z0-9_.-]{1,255}$", "Use letters, digits, '.', '_' and '-' for secret names."
)


def new_hook_id() -> str:
    """An opaque Management API id (the primary key stays internal)."""
    return f"hk_{secrets.token_hex(8)}"


class Hook(models.Model):
    """A CommonJS module run at one extensibility point of one tenant: an
    Auth0 Hook (it exports a function) or an Auth0 Action (it exports the
    point's handler, e.g. ``onExecuteCredentialsExchange``).

    At most one hook per point per tenant is enabled, enforced by a partial
    unique index. ``version`` counts saved scripts; a save names the version it
    edited, so a concurrent edit is detected instead of overwritten.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="hooks")
    public_id = models.CharField(max_length=40, unique=True, editable=False, default=new_hook_id)
    name = models.CharField(max_length=100, validators=[validate_hook_name])
    trigger_id = models.CharField("extensibility point", max_length=64, choices=TriggerId.choices)
    script = models.TextField()
    # Set from what the saved script exports (hooks.execution.check_script).
    kind = models.CharField(max_length=8, choices=HookKind.choices, default=HookKind.HOOK)
    enabled = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    # npm "name": "version" pairs, as Auth0 stores them; the sandbox has no npm.
    dependencies = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["trigger_id", "name"]
        # Running code in the sandbox is a separate right from editing it.
        permissions = [("run_hook", "Can run hooks in the test runner")]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"],
                name="%(app_label)s_%(class)s_unique_name",
                violation_error_message="A hook with this name already exists.",
            ),
            models.UniqueConstraint(
                fields=["tenant", "trigger_id"],
                condition=Q(enabled=True),
                name="%(app_label)s_%(class)s_one_enabled_per_point",
                violation_error_message="Another hook is already enabled for this point.",
            ),
            models.CheckConstraint(
                condition=Q(trigger_id__in=TriggerId.values),
                name="%(app_label)s_%(class)s_trigger_id_valid",
                violation_error_message="Unknown extensibility point.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class HookVersion(models.Model):
    """A saved script of a hook; every save adds one."""

    hook = models.ForeignKey(Hook, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    script = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["hook_id", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["hook", "number"], name="%(app_label)s_%(class)s_unique_number"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hook} v{self.number}"


class HookSecret(models.Model):
    """A named secret for ``context.webtask.secrets``; encrypted at rest and
    never shown again after saving."""

    hook = models.ForeignKey(Hook, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=255, validators=[validate_secret_name])
    value_encrypted = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["hook", "name"],
                name="%(app_label)s_%(class)s_unique_name",
                violation_error_message="This hook already has a secret with this name.",
            )
        ]

    def __str__(self) -> str:
        return self.name


class HookStorage(models.Model):
    """Per-hook persistent JSON (webtask ``context.storage``); ``etag`` grows
    with each write so that a stale write is detected."""

    hook = models.OneToOneField(Hook, on_delete=models.CASCADE, related_name="storage")
    data = models.JSONField(null=True, blank=True)
    etag = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"storage of {self.hook}"


class HookRun(models.Model):
    """One execution of a hook, for a token request or a test run."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="hook_runs")
    hook = models.ForeignKey(
        Hook, null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    hook_version = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=8, choices=RunSource.choices)
    started_at = models.DateTimeField(db_index=True)
    duration_ms = models.FloatField()
    outcome = models.CharField(max_length=8, choices=RunOutcome.choices)
    console = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["hook", "-started_at"], name="hooks_run_hook_recent"),
            models.Index(fields=["tenant", "-started_at"], name="hooks_run_tenant_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.hook} {self.outcome} at {self.started_at:%Y-%m-%d %H:%M:%S}"
