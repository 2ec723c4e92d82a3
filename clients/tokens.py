"""The Client Credentials grant (RFC 6749 §4.4): from a token request to a
signed JWT access token, with errors raised as oauthlib's OAuth2Error types
(the view renders their RFC 6749 §5.2 bodies)."""

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request as OAuthlibRequest
from oauthlib.oauth2.rfc6749 import errors

from apis.choices import SigningAlgorithm
from apis.models import Api
from apis.selectors import api_get, api_signing_secret
from clients.choices import TokenEndpointAuthMethod
from clients.models import Client
from clients.selectors import client_for_token, client_granted_scopes
from tenant.models import Tenant
from tenant.selectors import signing_key_active

GRANT_TYPE = "client_credentials"


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: list[str]


class TenantClientValidator(OAuth2Validator):
    """django-oauth-toolkit's client authentication (Basic first, then the
    body, secrets checked with the configured hasher in constant time), with
    clients looked up only within one tenant."""

    def __init__(self, tenant: Tenant) -> None:
        super().__init__()
        self.tenant = tenant

    def _load_application(self, client_id: str, request: OAuthlibRequest) -> Client | None:
        client = client_for_token(tenant=self.tenant, client_id=client_id)
        request.client = client
        return client


def require_params(params: Mapping[str, str], authorization: str | None) -> None:
    """Check the request's shape before anything is looked up."""
    grant_type = params.get("grant_type")
    if not grant_type:
        raise errors.InvalidRequestError("Missing required parameter: grant_type")
    if grant_type != GRANT_TYPE:
        raise errors.UnsupportedGrantTypeError(f"Unsupported grant type: {grant_type}")
    if not authorization and not params.get("client_id"):
        raise errors.InvalidRequestError("Missing required parameter: client_id")
    if not params.get("audience"):
        raise errors.InvalidRequestError("Missing required parameter: audience")


def authenticate_client(
    *, tenant: Tenant, params: Mapping[str, str], authorization: str | None
) -> Client:
    """The tenant's client the request authenticates as, or ``invalid_client``."""
    request = OAuthlibRequest(
        "", http_method="POST", body=dict(params), headers={"HTTP_AUTHORIZATION": authorization}
    )
    uses_basic = bool(authorization and authorization.startswith("Basic "))
    if not uses_basic and not params.get("client_secret"):
        raise errors.InvalidRequestError("Missing required parameter: client_secret")
    if not TenantClientValidator(tenant).authenticate_client(request):
        raise errors.InvalidClientError("Client authentication failed.")
    client: Client = request.client
    used = (
        TokenEndpointAuthMethod.CLIENT_SECRET_BASIC
        if uses_basic
        else TokenEndpointAuthMethod.CLIENT_SECRET_POST
    )
    if client.token_endpoint_auth_method != used:
        raise errors.InvalidClientError(
            f"Client authentication failed: this client must use "
            f"{client.token_endpoint_auth_method}."
        )
    if client.authorization_grant_type != Client.GRANT_CLIENT_CREDENTIALS:
        raise errors.UnauthorizedClientError(
            "Grant type 'client_credentials' not allowed for the client.", status_code=403
        )
    return client


def granted_scopes(
    *, tenant: Tenant, client: Client, audience: str, requested: str | None
) -> tuple[Api, list[str]]:
    """The API and the scopes this request may receive, or ``access_denied``."""
    try:
        api = api_get(tenant=tenant, identifier=audience)
    except Api.DoesNotExist:
        raise errors.AccessDeniedError(
            f"Service not enabled within domain: {audience}", status_code=403
        ) from None
    granted = client_granted_scopes(client=client, api=api)
    if granted is None:
        raise errors.AccessDeniedError(
            f'Client "{client.client_id}" is not authorized to access resource server '
            f'"{audience}".',
            status_code=403,
        )
    if requested is None:
        return api, granted
    wanted = list(dict.fromkeys(requested.split()))
    missing = [scope for scope in wanted if scope not in granted]
    if missing:
        raise errors.AccessDeniedError(
            f"Client has not been granted scopes: {' '.join(missing)}", status_code=403
        )
    return api, [scope for scope in granted if scope in wanted]


def sign_access_token(
    *,
    tenant: Tenant,
    client: Client,
    api: Api,
    scope: list[str],
    extra_claims: Mapping[str, Any] | None = None,
) -> IssuedToken:
    """Sign the access token: the hook's filtered claims, under the standard
    claims (which always win)."""
    now = int(time.time())
    claims: dict[str, Any] = dict(extra_claims or {})
    claims.update(
        {
            "iss": tenant.issuer,
            "sub": f"{client.client_id}@clients",
            "aud": api.identifier,
            "iat": now,
            "exp": now + api.token_lifetime,
            "azp": client.client_id,
            "gty": "client-credentials",
            "jti": secrets.token_urlsafe(16),
        }
    )
    if scope:
        claims["scope"] = " ".join(scope)
    if api.signing_alg == SigningAlgorithm.HS256:
        token = jwt.encode(claims, api_signing_secret(api=api), algorithm="HS256")
    else:
        key = signing_key_active(tenant=tenant)
        token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    return IssuedToken(access_token=token, expires_in=api.token_lifetime, scope=scope)
