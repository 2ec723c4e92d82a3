"""The Client Credentials grant (RFC 6749 §4.4): from a token request to a
signed JWT access token. ``issue_token`` is the one service a token request
calls; it returns the token or the oauthlib OAuth2Error to answer (the view
renders its RFC 6749 §5.2 body)."""

import base64
import binascii
import json
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote_plus

import jwt
from django.conf import settings
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request as OAuthlibRequest
from oauthlib.oauth2.rfc6749 import errors
from rest_framework.throttling import SimpleRateThrottle

from apis.choices import SigningAlgorithm
from apis.models import Api
from apis.selectors import api_get, api_signing_secret
from clients.models import Client
from clients.params import check_param_text
from clients.selectors import client_for_token, client_granted_scopes
from hooks import runtime
from hooks.choices import RunOutcome
from hooks.execution import Execution
from hooks.pipeline import credentials_exchange
from hooks.points import FilteredClaims, credentials_exchange_payload
from hooks.runtime.json_text import compact_encoder
from tenant import activity
from tenant.crypto import UnreadableSecretError
from tenant.models import Tenant
from tenant.selectors import signing_key_active

GRANT_TYPE = "client_credentials"
# C0 and C1 controls, DEL and NUL included: never part of an identifier or a secret.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CLIENT_ID_MAX_LENGTH = cast(int, Client._meta.get_field("client_id").max_length)


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: list[str]


class TenantClientValidator(OAuth2Validator):
    """django-oauth-toolkit's client authentication (secrets checked with the
    configured hasher in constant time), with clients looked up only within
    one tenant, the Basic header read strictly, and one method per request."""

    def __init__(self, tenant: Tenant) -> None:
        super().__init__()
        self.tenant = tenant

    def _load_application(self, client_id: str, request: OAuthlibRequest) -> Client | None:
        client = client_for_token(tenant=self.tenant, client_id=client_id)
        request.client = client
        return client

    def _extract_basic_auth(self, request: OAuthlibRequest) -> str | None:
        # DOT matches the scheme case-sensitively and decodes leniently (base64
        # padding and junk ignored, control characters passed to the lookup).
        return basic_credentials(request.headers.get("HTTP_AUTHORIZATION"))

    def authenticate_client(self, request: OAuthlibRequest, *args: Any, **kwargs: Any) -> bool:
        # DOT retries a failed Basic with the body; a request here uses exactly
        # one method (RFC 6749 §2.3), so a failed one is final.
        if self._extract_basic_auth(request) is not None:
            return bool(self._authenticate_basic_auth(request))
        return bool(self._authenticate_request_body(request))


class _AccessTokens(jwt.PyJWT):
    """PyJWT, with the claims encoded by one prebuilt encoder (PyJWT's
    documented override point) instead of a ``json.dumps`` per token: the
    same bytes, ASCII JSON without spaces."""

    _encode_claims = staticmethod(compact_encoder(ascii_only=True))

    def _encode_payload(
        self,
        payload: dict[str, Any],
        headers: dict[str, Any] | None = None,
        json_encoder: type[json.JSONEncoder] | None = None,
    ) -> bytes:
        return self._encode_claims(payload).encode()


_access_tokens = _AccessTokens()


def uses_basic_auth(authorization: str | None) -> bool:
    """Whether the request authenticates with HTTP Basic; auth-scheme names
    are case-insensitive (RFC 9110 §11.1)."""
    return authorization is not None and authorization.partition(" ")[0].lower() == "basic"


def basic_credentials(authorization: str | None) -> str | None:
    """The base64 credentials of a Basic ``Authorization`` header, or None when
    the request does not use Basic.

    Raises ``invalid_client`` unless they decode strictly: canonical base64 of
    UTF-8 ``client_id:client_secret``, each form-urlencoded (RFC 6749 §2.3.1)
    and, once decoded, free of control characters, with a ``client_id`` short
    enough to be stored (a longer one is refused without a lookup).
    """
    if authorization is None or not uses_basic_auth(authorization):
        return None
    encoded = authorization.partition(" ")[2].strip()
    malformed = errors.InvalidClientError("Malformed HTTP Basic credentials.")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        client_id, colon, client_secret = decoded.partition(":")
        parts = [unquote_plus(part, errors="strict") for part in (client_id, client_secret)]
    except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raise malformed from None
    if not colon or not parts[0] or any(CONTROL_CHARACTER.search(part) for part in parts):
        raise malformed
    if len(parts[0]) > CLIENT_ID_MAX_LENGTH:
        raise errors.InvalidClientError("Client authentication failed.")
    return encoded


def require_params(params: Mapping[str, str], authorization: str | None) -> None:
    """Check the request's shape before anything is looked up."""
    grant_type = params.get("grant_type")
    if not grant_type:
        raise errors.InvalidRequestError("Missing required parameter: grant_type")
    if grant_type != GRANT_TYPE:
        raise errors.UnsupportedGrantTypeError(f"Unsupported grant type: {grant_type}")
    basic = uses_basic_auth(authorization)
    if basic and "client_secret" in params:
        raise errors.InvalidRequestError(
            "Use one client authentication method: HTTP Basic or client_secret in the body, "
            "not both."
        )
    if not basic and not params.get("client_id"):
        raise errors.InvalidRequestError("Missing required parameter: client_id")
    if not basic and not params.get("client_secret"):
        raise errors.InvalidRequestError("Missing required parameter: client_secret")
    if not params.get("audience"):
        raise errors.InvalidRequestError("Missing required parameter: audience")


def authenticate_client(
    *, tenant: Tenant, params: Mapping[str, str], authorization: str | None
) -> Client:
    """The tenant's client the request authenticates as, by HTTP Basic or by
    body parameters whatever its registered ``token_endpoint_auth_method``
    (Auth0 accepts both too), or ``invalid_client``."""
    request = OAuthlibRequest(
        "", http_method="POST", body=dict(params), headers={"HTTP_AUTHORIZATION": authorization}
    )
    if not TenantClientValidator(tenant).authenticate_client(request):
        raise errors.InvalidClientError("Client authentication failed.")
    client: Client = request.client
    if params.get("client_id", client.client_id) != client.client_id:
        raise errors.InvalidRequestError(
            "The client_id parameter does not match the HTTP Basic credentials."
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
        token = _access_tokens.encode(claims, api_signing_secret(api=api), algorithm="HS256")
    else:
        key = signing_key_active(tenant=tenant)
        token = _access_tokens.encode(
            claims, key.private_key, algorithm="RS256", headers={"kid": key.kid}
        )
    return IssuedToken(access_token=token, expires_in=api.token_lifetime, scope=scope)


# What a token request says when its hook could not give an answer; the run
# log keeps the details (console, the limit, the line).
HOOK_FAILURE_MESSAGES: dict[str, str] = {
    RunOutcome.TIMEOUT: "Hook execution timed out.",
    RunOutcome.MEMORY: "Hook exceeded its memory limit.",
    RunOutcome.CRASHED: "Hook execution failed unexpectedly.",
}


class RetryLaterError(errors.OAuth2Error):
    """Not now: the client's rate limit, or the hook not run (its tenant's
    concurrency cap, or its breaker). Answered with ``Retry-After``."""

    def __init__(self, description: str, *, status_code: int, error: str, retry_after_s: float):
        super().__init__(description, status_code=status_code)
        self.error = error
        self.retry_after = max(1, math.ceil(retry_after_s))


def hook_failure(execution: Execution) -> errors.OAuth2Error:
    """The OAuth error for a hook that failed: its own error classes pick
    ``invalid_scope`` or ``invalid_request``; every other failure is a
    ``server_error`` (RFC 6749 §5.2), its limits named in fixed words."""
    error = execution.error
    if error is None:
        return errors.ServerError(execution.invalid_result, status_code=500)
    if isinstance(error, runtime.HookBusy):
        return RetryLaterError(
            "Too many hook runs at once for this tenant.",
            status_code=429,
            error="too_many_requests",
            retry_after_s=error.retry_after_s,
        )
    if isinstance(error, runtime.HookSuspended):
        return RetryLaterError(
            "Hook suspended after repeated timeouts or memory failures.",
            status_code=503,
            error="temporarily_unavailable",
            retry_after_s=error.retry_after_s,
        )
    if isinstance(error, runtime.HookStalled):
        return errors.ServerError("Hook finished without calling back.", status_code=500)
    if execution.outcome in HOOK_FAILURE_MESSAGES:
        return errors.ServerError(HOOK_FAILURE_MESSAGES[execution.outcome], status_code=500)
    if isinstance(error, runtime.HookSyntaxError):
        return errors.ServerError("Hook has a syntax error.", status_code=500)
    if isinstance(error, runtime.HookResultError):
        return errors.ServerError(f"Hook result is unusable: {error.message}", status_code=500)
    if error.name == "InvalidScopeError":
        return errors.InvalidScopeError(error.message)
    if error.name == "InvalidRequestError":
        return errors.InvalidRequestError(error.message)
    return errors.ServerError(error.message or "Hook failed.", status_code=500)


class ClientRateThrottle(SimpleRateThrottle):
    """Token requests per authenticated client, shared through the cache."""

    scope = "token"

    def __init__(self, client: Client) -> None:
        self.client = client
        super().__init__()

    def get_rate(self) -> str | None:
        return settings.TESSERA_TOKEN_RATE_LIMIT or None

    def get_cache_key(self, request: Any, view: Any) -> str:
        return f"throttle:token:{self.client.pk}"


def first_language(accept_language: str) -> str:
    """An Action's ``event.request.language``: the first tag the caller
    accepts (``fr-CH`` of ``fr-CH, fr;q=0.9``), or empty."""
    return accept_language.split(",", 1)[0].split(";", 1)[0].strip()


def issue_token(
    *,
    tenant: Tenant,
    params: Mapping[str, str],
    authorization: str | None,
    ip: str,
    user_agent: str,
    hostname: str = "",
    language: str = "",
) -> IssuedToken | errors.OAuth2Error:
    """A token request, from its parameters to the signed token: the text
    and shape checked, the client authenticated and rate-limited, the grant
    and scopes checked, the tenant's credentials-exchange hook run and the
    token signed. Whatever refuses it is returned as the OAuth error to
    answer (RFC 6749 §5.2), a tenant key this server cannot decrypt as a
    ``server_error``; anything else (a database outage) is raised.

    Each answer is counted for the landing page's charts
    (``tenant.activity``: in memory, written off the request)."""
    client: Client | None = None
    result: IssuedToken | errors.OAuth2Error
    try:
        check_param_text(params)
        require_params(params, authorization)
        client = authenticate_client(tenant=tenant, params=params, authorization=authorization)
        throttle = ClientRateThrottle(client)
        # DRF's throttle reads neither the request nor the view here: the
        # cache key is the client's.
        if not throttle.allow_request(cast(Any, None), cast(Any, None)):
            wait = throttle.wait()
            result = RetryLaterError(
                "Too many requests.",
                status_code=429,
                error="too_many_requests",
                retry_after_s=wait or 1,
            )
            return _counted(result, tenant=tenant, client=client)
        api, scope = granted_scopes(
            tenant=tenant, client=client, audience=params["audience"], requested=params.get("scope")
        )
        execution = credentials_exchange(
            tenant=tenant,
            payload=credentials_exchange_payload(
                tenant_slug=tenant.slug,
                client_id=client.client_id,
                client_name=client.name,
                client_metadata=client.metadata,
                audience=api.identifier,
                scope=scope,
                params=params,
                ip=ip,
                user_agent=user_agent,
                hostname=hostname,
                language=language,
            ),
        )
        if execution is None:
            hooked = FilteredClaims(scope=scope)
        elif execution.ok:
            hooked = execution.claims
        else:
            return _counted(hook_failure(execution), tenant=tenant, client=client)
        result = sign_access_token(
            tenant=tenant, client=client, api=api, scope=hooked.scope, extra_claims=hooked.claims
        )
    except UnreadableSecretError:
        # Logged once when found (tenant.selectors) and named by /readyz.
        result = errors.ServerError("The server cannot read this tenant's keys.", status_code=500)
    except errors.OAuth2Error as error:
        # Without its traceback: its frames lead back to the caller's, which
        # holds the error, and the cycle would wait for the garbage collector.
        result = error.with_traceback(None)
    return _counted(result, tenant=tenant, client=client)


def _counted(
    result: IssuedToken | errors.OAuth2Error, *, tenant: Tenant, client: Client | None
) -> IssuedToken | errors.OAuth2Error:
    activity.count_token(
        tenant_id=tenant.pk,
        client_id=client.client_id if client is not None else "",
        outcome=result.error if isinstance(result, errors.OAuth2Error) else "ok",
    )
    return result
