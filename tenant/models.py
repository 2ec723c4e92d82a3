"""Tenancy: tenants, who administers them, and their signing keys."""

import json

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

# Paths at the root of the site that a tenant slug would shadow.
RESERVED_SLUGS = frozenset({"admin", "static", "api", "oauth", "well-known", "health"})

validate_slug = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    "Use 1-63 lowercase letters, digits and hyphens, not starting or ending with a hyphen.",
)
validate_domain = RegexValidator(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$",
    "Enter a lowercase host name such as auth.example.com, without scheme or port.",
)

MAX_HOOK_TIMEOUT_MS = 20_000
# The longest an access token of any tenant lives (30 days): an API's token
# lifetime is capped by it, and a retired signing key stays in the JWKS as long.
MAX_TOKEN_LIFETIME = 2_592_000


class Tenant(models.Model):
    """An isolated space with its own issuer, keys, APIs, clients and hooks.

    The issuer is ``{PUBLIC_URL}/{slug}/``, or ``https://{domain}/`` when the
    tenant is served on a domain of its own (resolved from the Host header).
    """

    slug = models.SlugField(max_length=63, unique=True, validators=[validate_slug])
    name = models.CharField(max_length=200)
    domain = models.CharField(
        max_length=253, unique=True, null=True, blank=True, validators=[validate_domain]
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="TenantMembership", related_name="tenants", blank=True
    )
    hook_timeout_ms = models.PositiveIntegerField(
        default=5_000,
        validators=[MinValueValidator(100), MaxValueValidator(MAX_HOOK_TIMEOUT_MS)],
        help_text="Wall-clock limit for one hook run, in milliseconds (at most 20000).",
    )
    hook_cpu_ms = models.PositiveIntegerField(
        "hook CPU budget (ms)",
        default=500,
        validators=[MinValueValidator(10), MaxValueValidator(MAX_HOOK_TIMEOUT_MS)],
        help_text="CPU time one hook run may use, in milliseconds (at most the timeout).",
    )
    hook_memory_mb = models.PositiveIntegerField(
        default=128,
        validators=[MinValueValidator(16), MaxValueValidator(512)],
        help_text="Memory limit for one hook's context, in MiB.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(hook_timeout_ms__gte=100, hook_timeout_ms__lte=MAX_HOOK_TIMEOUT_MS),
                name="%(app_label)s_%(class)s_hook_timeout_range",
                violation_error_message="The hook timeout must be between 100 and 20000 ms.",
            ),
            models.CheckConstraint(
                condition=Q(hook_cpu_ms__gte=10, hook_cpu_ms__lte=MAX_HOOK_TIMEOUT_MS),
                name="%(app_label)s_%(class)s_hook_cpu_range",
                violation_error_message="The hook CPU budget must be between 10 and 20000 ms.",
            ),
            models.CheckConstraint(
                condition=Q(hook_memory_mb__gte=16, hook_memory_mb__lte=512),
                name="%(app_label)s_%(class)s_hook_memory_range",
                violation_error_message="The hook memory limit must be between 16 and 512 MiB.",
            ),
            models.CheckConstraint(
                condition=~Q(slug__in=sorted(RESERVED_SLUGS)),
                name="%(app_label)s_%(class)s_slug_not_reserved",
                violation_error_message="This slug is reserved.",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def issuer(self) -> str:
        """The ``iss`` of this tenant's tokens, always with a trailing slash."""
        if self.domain:
            return f"{settings.TENANT_DOMAIN_SCHEME}://{self.domain}/"
        return f"{settings.PUBLIC_URL}/{self.slug}/"


class TenantMembership(models.Model):
    """Makes a dashboard user an administrator of one tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "user"],
                name="%(app_label)s_%(class)s_unique_member",
                violation_error_message="This user is already a member of the tenant.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant}"


class SigningKey(models.Model):
    """An RSA key pair that signs a tenant's RS256 tokens (RFC 7517 for the JWK).

    Exactly one key per tenant is active (``retired_at`` is null); retired keys
    stay published in the JWKS until every token they signed has expired.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="signing_keys")
    kid = models.CharField(max_length=64, unique=True)
    private_key_encrypted = models.TextField(help_text="PKCS#8 PEM, encrypted with the KEK.")
    public_jwk = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(retired_at__isnull=True),
                name="%(app_label)s_%(class)s_one_active_per_tenant",
                violation_error_message="A tenant has exactly one active signing key.",
            )
        ]

    def __str__(self) -> str:
        return self.kid


class ConfigChange(models.Model):
    """One committed configuration change, for every server to notice.

    The configuration generation is the sum of ``weight`` over all rows. A
    change inserts a row (weight 1) in its own transaction, so the generation
    moves forward exactly when the change commits and never without it.
    Inserts take no lock another writer waits on, so this adds no lock order
    to any service's transaction. ``tenant.config_cache.compact`` folds old
    rows into the oldest one, which keeps the sum.
    """

    weight = models.BigIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"configuration change {self.pk}"


class AuditEntry(models.Model):
    """One write to a tenant's configuration: who, from where, what, and the
    object's fields before and after.

    Written by the services in the transaction of the write itself, so a write
    without its row (or a row without its write) cannot exist. Secret values
    are never stored: ``before``/``after`` name secrets only.
    """

    class ActorKind(models.TextChoices):
        USER = "user", "Dashboard user"
        CLI = "cli", "Command line"
        CLIENT = "client", "API client"
        SYSTEM = "system", "System"

    class Source(models.TextChoices):
        DASHBOARD = "dashboard", "Dashboard"
        CLI = "cli", "CLI"
        API = "api", "Management API"
        SYSTEM = "system", "System"
        IMPORT = "import", "Import from Auth0"

    # A deleted tenant's trail stays (its deletion last), detached from it.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.SET_NULL, null=True, related_name="audit_entries"
    )
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=255, blank=True)
    actor_name = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=255)
    object_repr = models.CharField(max_length=300)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="tenant_audit_tenant_recent"),
            models.Index(fields=["tenant", "object_type", "object_id"], name="tenant_audit_object"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_repr} by {self.actor_name}"

    @property
    def changed_fields(self) -> list[str]:
        """The keys whose values differ between ``before`` and ``after``."""
        before, after = self.before or {}, self.after or {}
        return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))

    @property
    def summary(self) -> str:
        """One line for people: the secret names a secret change touched,
        else each changed field with its value before → after (``enabled:
        true → false``), or only its name when a value is long (a script)."""
        if self.action.startswith("secrets."):
            return "secrets: " + ", ".join((self.after or {}).get("changed", []))
        if self.before is None or self.after is None:
            return ""
        before, after = self.before, self.after
        return ", ".join(
            _change(name, before.get(name), after.get(name)) for name in self.changed_fields
        )


SHORT_VALUE_CHARACTERS = 40


def _change(name: str, before: object, after: object) -> str:
    """``name: before → after``, or ``name changed`` for values too long to read on one line."""
    old, new = json.dumps(before, ensure_ascii=False), json.dumps(after, ensure_ascii=False)
    if max(len(old), len(new)) > SHORT_VALUE_CHARACTERS:
        return f"{name} changed"
    return f"{name}: {old} → {new}"


class TokenActivity(models.Model):
    """Token requests of one tenant in one minute, by client and outcome.

    The landing page's charts read these counts, never the run records. Each
    server process counts in memory and adds its counts here now and then
    (``tenant.activity``): an upsert that adds, so processes and servers add
    up. Kept ``TESSERA_ACTIVITY_RETENTION_DAYS``.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    # Empty when the request named no client this tenant has: a stranger's
    # client ids would be rows without bound.
    client_id = models.CharField(max_length=100, blank=True)
    # "ok", or the OAuth error code answered (RFC 6749 §5.2, and 429's).
    outcome = models.CharField(max_length=40)
    count = models.PositiveBigIntegerField()

    class Meta:
        verbose_name_plural = "token activity"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "minute", "client_id", "outcome"],
                name="%(app_label)s_%(class)s_one_row_per_key",
                violation_error_message="One row per tenant, minute, client and outcome.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.client_id or '-'} {self.outcome}: {self.count}"


class HookActivity(models.Model):
    """Runs of one tenant's credentials-exchange flow in one minute, by
    whether they failed and by duration bucket (``tenant.activity.
    DURATION_BUCKETS_MS``): percentiles come from the buckets, the error
    rate from ``failed``. Written and kept like ``TokenActivity``."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    failed = models.BooleanField()
    bucket = models.PositiveSmallIntegerField()
    count = models.PositiveBigIntegerField()

    class Meta:
        verbose_name_plural = "hook activity"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "minute", "failed", "bucket"],
                name="%(app_label)s_%(class)s_one_row_per_key",
                violation_error_message="One row per tenant, minute, outcome and bucket.",
            ),
        ]

    def __str__(self) -> str:
        state = "failed" if self.failed else "ok"
        return f"{self.minute:%Y-%m-%d %H:%M} {state} bucket {self.bucket}: {self.count}"
