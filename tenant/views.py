"""Public, unauthenticated tenant documents: JWKS and OpenID discovery."""

from typing import NoReturn

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from tenant.resolution import tenant_for_request
from tenant.selectors import tenant_jwks

PUBLIC_CACHE = "public, max-age=60"


@require_GET
def jwks(request: HttpRequest, tenant_slug: str | None = None) -> JsonResponse:
    tenant = tenant_for_request(request, tenant_slug)
    response = JsonResponse(tenant_jwks(tenant=tenant))
    response["Cache-Control"] = PUBLIC_CACHE
    return response


@require_GET
def openid_configuration(request: HttpRequest, tenant_slug: str | None = None) -> JsonResponse:
    tenant = tenant_for_request(request, tenant_slug)
    issuer = tenant.issuer
    response = JsonResponse(
        {
            "issuer": issuer,
            "token_endpoint": f"{issuer}oauth/token",
            "jwks_uri": f"{issuer}.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "HS256"],
            "token_signing_alg_values_supported": ["RS256", "HS256"],
        }
    )
    response["Cache-Control"] = PUBLIC_CACHE
    return response


def not_found(request: HttpRequest, tenant_slug: str | None = None) -> NoReturn:
    """Anything else under an issuer; IssuerJsonErrorsMiddleware renders the JSON 404."""
    raise Http404("Not found")
