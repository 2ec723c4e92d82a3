"""Reads for APIs."""

from django.db.models import QuerySet

from apis.models import Api
from tenant.config_cache import memoized
from tenant.crypto import decrypt
from tenant.models import Tenant


def api_get(*, tenant: Tenant, identifier: str) -> Api:
    """The tenant's API with this audience; raises ``Api.DoesNotExist``."""
    api = memoized(
        ("api", tenant.pk, identifier),
        lambda: Api.objects.filter(tenant=tenant, identifier=identifier).first(),
        remember_missing=False,  # any audience a client sends
    )
    if api is None:
        raise Api.DoesNotExist(identifier)
    return api


def api_signing_secret(*, api: Api) -> str:
    """An HS256 API's signing secret, decrypted once per configuration generation."""
    return memoized(("api-signing-secret", api.pk), lambda: decrypt(api.signing_secret_encrypted))


def api_list(*, tenant: Tenant) -> QuerySet[Api]:
    """The tenant's APIs, oldest first, with their scopes."""
    return Api.objects.filter(tenant=tenant).prefetch_related("scopes").order_by("id")


def api_find(*, tenant: Tenant, id_or_identifier: str) -> Api | None:
    """The tenant's API by its public id or (as Auth0 allows) its identifier."""
    apis = Api.objects.filter(tenant=tenant)
    return (
        apis.filter(public_id=id_or_identifier).first()
        or apis.filter(identifier=id_or_identifier).first()
    )


def api_for_audience(*, tenant: Tenant, identifier: str) -> Api | None:
    """The tenant's API with this identifier, read afresh (not memoised)."""
    return Api.objects.filter(tenant=tenant, identifier=identifier).first()
