"""Reads for APIs."""

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
