"""Hooks and Actions: tenant JavaScript run at an extensibility point, with
secrets, saved or deployed versions, trigger bindings, run logs and
persistent storage."""

import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from hooks import runtime
from hooks.choices import ActionRuntime, ActionStatus, HookKind, RunOutcome, RunSource, TriggerId
from tenant.models import Tenant

MAX_SECRETS_PER_HOOK = 20
# Auth0's Actions limits.
MAX_ACTIONS_PER_TENANT = 100
MAX_VERSIONS_PER_ACTION = 50  # past it, a deploy deletes the oldest version
MAX_SECRETS_PER_ACTION = 30
MAX_SECRET_NAME_CHARS = 128
# Auth0's pages give 2,048 and 4,096; the larger, so nothing Auth0 takes is refused.
MAX_SECRET_VALUE_CHARS = 4096
MAX_DEPENDENCIES_PER_ACTION = 10
MAX_BINDINGS_PER_TRIGGER = 20
# The trigger version Auth0 runs credentials-exchange Actions as.
CREDENTIALS_EXCHANGE_VERSION = "v2"

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
    # npm "name": "version" pairs, as Auth0 stores them, and the lock they
    # were resolved to when they changed (hooks.dependencies): every package
    # at an exact version with its integrity hash. What ``require`` loads.
    dependencies = models.JSONField(default=dict, blank=True)
    dependency_lock = models.JSONField(default=list, blank=True)
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

    def enabled_message(self, disabled: "Hook | None") -> str:
        """What the dashboard and the commands say after enabling this hook."""
        message = f"Enabled hook {self.name} for {self.trigger_id}"
        if disabled is not None:
            return f"{message}; disabled {disabled.name} (one hook per point can be enabled)"
        return message


class HookVersion(models.Model):
    """A saved script of a hook; every save adds one."""

    hook = models.ForeignKey(Hook, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    script = models.TextField()
    # The hook's dependency lock when this version was saved.
    dependency_lock = models.JSONField(default=list, blank=True)
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


class TenantEgress(models.Model):
    """The only hosts a tenant's Hooks and Actions may call, when the tenant
    chooses to list them (``host``, ``*.domain``, an address or network, each
    with an optional ``:port``). It narrows the operator's egress policy and
    never widens it: a listed host must still pass the operator's checks on
    the address connected to. No row, or an empty list: no narrowing."""

    tenant = models.OneToOneField(
        Tenant, on_delete=models.CASCADE, primary_key=True, related_name="hook_egress"
    )
    hosts = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "hook egress hosts"
        verbose_name_plural = "hook egress hosts"

    def __str__(self) -> str:
        return f"egress hosts of {self.tenant}"

    def clean(self) -> None:
        if not isinstance(self.hosts, list):
            raise ValidationError({"hosts": "A list of host names."})
        try:
            runtime.parse_tenant_hosts(self.hosts)
        except ValueError as error:
            raise ValidationError({"hosts": f"Not an allowed host: {error}."}) from None


class HookRun(models.Model):
    """One execution of a hook, for a token request or a test run; or one
    execution of a trigger's bound Actions (``execution_id`` set, ``hook``
    empty, ``results`` one entry per Action run, in order)."""

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
    # Auth0's execution id (GET /actions/executions/{id}); empty for a hook's run.
    execution_id = models.CharField(max_length=40, blank=True, default="", db_index=True)
    results = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["hook", "-started_at"], name="hooks_run_hook_recent"),
            models.Index(fields=["tenant", "-started_at"], name="hooks_run_tenant_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.hook} {self.outcome} at {self.started_at:%Y-%m-%d %H:%M:%S}"


def new_action_id() -> str:
    """Auth0's Action, version and binding ids are UUIDs."""
    return str(uuid.uuid4())


def validate_action_name(value: str) -> None:
    if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError("An Action name is printable text, not blank.", code="invalid")


class Action(models.Model):
    """An Auth0 Action: a draft (code, runtime label, dependencies,
    secrets) for one trigger, built on every save, with immutable numbered
    versions made by deploy. A binding runs its deployed version.

    ``revision`` counts draft changes: a deploy names the revision it built,
    so that an update racing a deploy is never deployed half-seen.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="actions")
    public_id = models.CharField(max_length=40, unique=True, editable=False, default=new_action_id)
    name = models.CharField(max_length=100, validators=[validate_action_name])
    trigger_id = models.CharField(max_length=64, choices=TriggerId.choices)
    trigger_version = models.CharField(max_length=8, default=CREDENTIALS_EXCHANGE_VERSION)
    code = models.TextField(blank=True)
    runtime = models.CharField(
        max_length=16, choices=ActionRuntime.choices, default=ActionRuntime.NODE22
    )
    # [{"name", "version"}] as Auth0 stores them, and the lock the last build
    # resolved them to (hooks.dependencies): what ``require`` loads in a test
    # run of the draft, and what a deploy pins in the version.
    dependencies = models.JSONField(default=list, blank=True)
    dependency_lock = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=8, choices=ActionStatus.choices, default=ActionStatus.PENDING
    )
    # [{"id", "msg"}] when the build failed (Auth0's ActionVersionError).
    build_errors = models.JSONField(default=list, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"],
                name="%(app_label)s_%(class)s_unique_name",
                violation_error_message="An action with this name already exists.",
            ),
            models.CheckConstraint(
                condition=Q(trigger_id__in=TriggerId.values),
                name="%(app_label)s_%(class)s_trigger_id_valid",
                violation_error_message="Unknown trigger.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ActionStatus.values),
                name="%(app_label)s_%(class)s_status_valid",
                violation_error_message="Unknown status.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ActionSecret(models.Model):
    """A named secret of an Action's draft (``event.secrets``); encrypted at
    rest, write-only. A deploy copies the draft's secrets into the version."""

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=255, validators=[validate_secret_name])
    value_encrypted = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["action", "name"],
                name="%(app_label)s_%(class)s_unique_name",
                violation_error_message="This action already has a secret with this name.",
            )
        ]

    def __str__(self) -> str:
        return self.name


class ActionVersion(models.Model):
    """What a deploy made of an Action's draft: immutable, numbered from 1.
    At most one version of an Action is deployed (the one bindings run).

    ``secrets_encrypted`` is a snapshot ``{name: encrypted value}`` of the
    draft's secrets at deploy: a deployed version never changes under a
    running flow, and changing a secret takes a deploy, as at Auth0.
    """

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="versions")
    public_id = models.CharField(max_length=40, unique=True, editable=False, default=new_action_id)
    number = models.PositiveIntegerField()
    code = models.TextField(blank=True)
    runtime = models.CharField(max_length=16, choices=ActionRuntime.choices)
    dependencies = models.JSONField(default=list, blank=True)
    # The draft's lock at deploy: a version always loads the same packages.
    dependency_lock = models.JSONField(default=list, blank=True)
    secrets_encrypted = models.JSONField(default=dict, blank=True)
    deployed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["action_id", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["action", "number"], name="%(app_label)s_%(class)s_unique_number"
            ),
            models.UniqueConstraint(
                fields=["action"],
                condition=Q(deployed=True),
                name="%(app_label)s_%(class)s_one_deployed",
                violation_error_message="Another version of this action is deployed.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} v{self.number}"


class TriggerBinding(models.Model):
    """An Action bound to a trigger of its tenant, at ``position`` (from 0) in
    the trigger's flow; at most ``MAX_BINDINGS_PER_TRIGGER`` per trigger, each
    Action at most once."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="trigger_bindings")
    public_id = models.CharField(max_length=40, unique=True, editable=False, default=new_action_id)
    trigger_id = models.CharField(max_length=64, choices=TriggerId.choices)
    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="bindings")
    position = models.PositiveSmallIntegerField()
    display_name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["trigger_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "trigger_id", "position"],
                name="%(app_label)s_%(class)s_unique_position",
            ),
            models.UniqueConstraint(
                fields=["tenant", "trigger_id", "action"],
                name="%(app_label)s_%(class)s_unique_action",
                violation_error_message="This action is already bound to the trigger.",
            ),
            models.CheckConstraint(
                condition=Q(position__lt=MAX_BINDINGS_PER_TRIGGER),
                name="%(app_label)s_%(class)s_at_most_20",
                violation_error_message=(
                    f"A trigger has at most {MAX_BINDINGS_PER_TRIGGER} bound actions."
                ),
            ),
            models.CheckConstraint(
                condition=Q(trigger_id__in=TriggerId.values),
                name="%(app_label)s_%(class)s_trigger_id_valid",
                violation_error_message="Unknown trigger.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trigger_id} #{self.position}: {self.action}"


class RecordedInput(models.Model):
    """The arguments a token request gave its tenant's flow at a point, kept
    so that a change can be tried on real traffic before it goes live
    (``hooks.dry_run``). One row per client, audience and requested scope,
    holding the latest request's arguments; never a secret
    (``hooks.recorded_inputs`` leaves the client secret, assertions and hook
    secrets out). Each tenant keeps its most recent
    ``TESSERA_RECORDED_INPUTS_PER_TENANT``, for as long as run records."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="recorded_inputs")
    trigger_id = models.CharField(max_length=64, choices=TriggerId.choices)
    # sha256 of (client id, audience, requested scope): the deduplication key.
    key = models.CharField(max_length=64)
    client_id = models.CharField(max_length=255)
    client_name = models.CharField(max_length=255, blank=True)
    audience = models.TextField(blank=True)
    requested_scope = models.TextField(blank=True)
    payload = models.JSONField()
    size_bytes = models.PositiveIntegerField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "trigger_id", "key"],
                name="%(app_label)s_%(class)s_unique_key",
                violation_error_message="This request is already recorded.",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "trigger_id", "-last_seen_at"], name="hooks_input_recent"
            ),
            models.Index(fields=["last_seen_at"], name="hooks_input_age"),
        ]

    def __str__(self) -> str:
        return f"{self.client_name or self.client_id} → {self.audience}"
