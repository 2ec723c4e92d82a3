"""How a Management API caller proves who it is: a Bearer access token from
the tenant's own token endpoint for its built-in API (``{issuer}api/v2/``).

Named in ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``, as
django-oauth-toolkit's ``OAuth2Authentication`` is, so that the tenancy base
(``tenant.management_api``) needs no client or API model. Tokens are verified
here, locally: RS256 only (no ``none``, no HS256 with the public key as
secret), a ``kid`` of this tenant's JWKS, ``iss`` = this tenant's issuer,
``aud`` = its Management API, ``exp``.
"""

from typing import Any

import jwt
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apis.models import Api
from clients.models import Client
from tenant.management_auth import MISSING_AUTHENTICATION, ManagementToken, unauthorized
from tenant.models import SigningKey, Tenant
from tenant.resolution import tenant_for_request

ALGORITHMS = ["RS256"]


def verify_management_token(*, tenant: Tenant, token: str) -> ManagementToken:
    """Verify a management token of ``tenant``; raises a 401 ApiError."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise unauthorized("Invalid token") from None
    kid = header.get("kid")
    if header.get("alg") not in ALGORITHMS or not isinstance(kid, str):
        raise unauthorized("Invalid token")
    jwk = (
        SigningKey.objects.filter(tenant=tenant, kid=kid).values_list("public_jwk", flat=True)
    ).first()
    api = Api.objects.filter(tenant=tenant, is_system=True).only("identifier").first()
    if jwk is None or api is None:
        raise unauthorized("Invalid token")
    try:
        key = jwt.PyJWK(jwk, algorithm="RS256").key
        claims = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=api.identifier,
            issuer=tenant.issuer,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("Expired token received for JSON Web Token validation") from None
    except jwt.PyJWTError:
        raise unauthorized("Invalid token") from None
    client_id = claims.get("azp") or str(claims["sub"]).removesuffix("@clients")
    client = Client.objects.filter(tenant=tenant, client_id=client_id).only("name").first()
    if client is None:
        raise unauthorized("Invalid token")
    scope = claims.get("scope", "")
    return ManagementToken(
        client_id=client_id,
        client_name=client.name,
        scopes=frozenset(scope.split() if isinstance(scope, str) else []),
    )


class ManagementTokenAuthentication(BaseAuthentication):
    """DRF authentication for the Management API of the request's tenant."""

    def authenticate(self, request: Request) -> tuple[Any, ManagementToken]:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise unauthorized(MISSING_AUTHENTICATION)
        view_kwargs = (request.parser_context or {}).get("kwargs", {})
        tenant = tenant_for_request(request, view_kwargs.get("tenant_slug"))
        return None, verify_management_token(tenant=tenant, token=credentials.strip())
