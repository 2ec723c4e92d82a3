"""APIs (resource servers, RFC 6749 §1.1) and the scopes they define."""

import secrets

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from apis.choices import SigningAlgorithm
from tenant.models import MAX_TOKEN_LIFETIME, Tenant

DEFAULT_TOKEN_LIFETIME = 86_400


# RFC 6749 §3.3 scope-token: printable ASCII except space, '"' and '\'.
validate_scope_value = RegexValidator(
    r"^[\x21\x23-\x5b\x5d-\x7e]{1,280}$",
    "A scope is 1-280 printable characters without spaces, quotes or backslashes.",
)


def new_api_id() -> str:
    """An opaque Management API id, 24 hex digits like Auth0's."""
    return secrets.token_hex(12)


class Api(models.Model):
    """A resource server that clients request tokens for.

    ``identifier`` is the ``audience`` of the token request and the ``aud`` of
    the token. RS256 APIs are signed with the tenant's key; HS256 APIs with a
    per-API secret that the API owner shares.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="apis")
    public_id = models.CharField(max_length=40, unique=True, editable=False, default=new_api_id)
    name = models.CharField(max_length=200)
    identifier = models.CharField(
        max_length=600, help_text="The audience. Usually a URL; any string works."
    )
    signing_alg = models.CharField(
        max_length=5, choices=SigningAlgorithm.choices, default=SigningAlgorithm.RS256
    )
    signing_secret_encrypted = models.TextField(blank=True, editable=False)
    token_lifetime = models.PositiveIntegerField(
        default=DEFAULT_TOKEN_LIFETIME,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TOKEN_LIFETIME)],
        help_text="Seconds a token for this API is valid (at most 2592000, 30 days).",
    )
    # The tenant's built-in Management API (Auth0's ``is_system``): created
    # with the tenant, never deleted, its identifier and scopes fixed.
    is_system = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "API"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "identifier"],
                name="%(app_label)s_%(class)s_unique_identifier",
                violation_error_message="An API with this identifier already exists.",
            ),
            models.CheckConstraint(
                condition=Q(token_lifetime__gte=1, token_lifetime__lte=MAX_TOKEN_LIFETIME),
                name="%(app_label)s_%(class)s_token_lifetime_range",
                violation_error_message="The token lifetime must be 1 to 2592000 seconds.",
            ),
            models.CheckConstraint(
                condition=Q(signing_alg__in=SigningAlgorithm.values),
                name="%(app_label)s_%(class)s_signing_alg_valid",
                violation_error_message="Unsupported signing algorithm.",
            ),
            models.CheckConstraint(
                condition=Q(signing_alg=SigningAlgorithm.RS256) | ~Q(signing_secret_encrypted=""),
                name="%(app_label)s_%(class)s_hs256_has_secret",
                violation_error_message="An HS256 API needs a signing secret.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.identifier})"


class ApiScope(models.Model):
    """A permission an API defines and a client grant may include."""

    api = models.ForeignKey(Api, on_delete=models.CASCADE, related_name="scopes")
    value = models.CharField(max_length=280, validators=[validate_scope_value])
    description = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = "scope"
        ordering = ["api_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["api", "value"],
                name="%(app_label)s_%(class)s_unique_value",
                violation_error_message="This API already has this scope.",
            )
        ]

    def __str__(self) -> str:
        return self.value
