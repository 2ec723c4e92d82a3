"""Machine clients and the APIs they may get tokens for."""

import secrets

from django.core.exceptions import ValidationError
from django.db import models
from oauth2_provider.models import AbstractApplication

from apis.models import Api, ApiScope
from clients.choices import TokenEndpointAuthMethod
from tenant.models import Tenant

MAX_METADATA_KEYS = 10
MAX_METADATA_LENGTH = 255


def validate_metadata(value: object) -> None:
    """Auth0 client metadata: at most 10 string keys to string values of <= 255 chars."""
    if not isinstance(value, dict):
        raise ValidationError("Metadata must be an object of string keys and values.")
    if len(value) > MAX_METADATA_KEYS:
        raise ValidationError(f"Metadata has at most {MAX_METADATA_KEYS} keys.")
    for key, item in value.items():
        if not isinstance(item, str) or not key or len(key) > MAX_METADATA_LENGTH:
            raise ValidationError(f"Metadata key {key!r} must name a string value.")
        if len(item) > MAX_METADATA_LENGTH:
            raise ValidationError(f"Metadata value for {key!r} exceeds 255 characters.")


class Client(AbstractApplication):
    """A confidential, non-interactive client of one tenant (RFC 6749 §2.1).

    django-oauth-toolkit's ``Application``, swapped in through
    ``OAUTH2_PROVIDER_APPLICATION_MODEL``: it provides ``client_id`` and the
    hashed ``client_secret``. The plain secret exists only in the response
    that creates or rotates it.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="clients")
    metadata = models.JSONField(default=dict, blank=True, validators=[validate_metadata])
    token_endpoint_auth_method = models.CharField(
        max_length=32,
        choices=TokenEndpointAuthMethod.choices,
        default=TokenEndpointAuthMethod.CLIENT_SECRET_POST,
    )

    class Meta(AbstractApplication.Meta):
        verbose_name = "client"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(token_endpoint_auth_method__in=TokenEndpointAuthMethod.values),
                name="%(app_label)s_%(class)s_auth_method_valid",
                violation_error_message="Unsupported token endpoint auth method.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"


def new_grant_id() -> str:
    """An opaque Management API id, ``cgr_…`` like Auth0's."""
    return f"cgr_{secrets.token_hex(8)}"


class ClientGrant(models.Model):
    """Allows one client to get tokens for one API, with a subset of its scopes.

    No grant, no token. Client and API belong to the same tenant.
    """

    public_id = models.CharField(max_length=40, unique=True, editable=False, default=new_grant_id)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="grants")
    api = models.ForeignKey(Api, on_delete=models.CASCADE, related_name="client_grants")
    scopes = models.ManyToManyField(ApiScope, blank=True, related_name="client_grants")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "client grant"
        ordering = ["client_id", "api_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "api"],
                name="%(app_label)s_%(class)s_unique_client_api",
                violation_error_message="This client already has a grant for this API.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.client} → {self.api}"

    def clean(self) -> None:
        if self.client_id and self.api_id and self.client.tenant_id != self.api.tenant_id:
            raise ValidationError("The client and the API belong to different tenants.")
