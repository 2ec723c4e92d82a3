"""The floor: what Tessera's token endpoint costs at the least in Django + DRF.

A bare APIView that signs the same RS256 access token Tessera issues with the
seed hook (same claims: iss, sub, aud, iat, exp, azp, gty, jti, scope and the
hook's ``https://foo.com/claim``) with a key loaded once at import from
``FLOOR_PRIVATE_KEY`` (PEM; the harness makes it, so that every worker signs
with the key the JWKS publishes). No client
authentication, no database, no cache, no hook: Tessera without a hook is
measured against it (target: at most 1.15x its CPU per token).

``async_token`` is the floor's ASGI case: the same token signed by a plain
async Django view (DRF has no async views), served by ``floor.asgi`` on
granian's ASGI interface, to measure Django's async path against the WSGI one.
"""

import json
import os
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.http import HttpRequest, JsonResponse
from jwt.algorithms import RSAAlgorithm
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

ISSUER = os.environ.get("FLOOR_ISSUER", "http://127.0.0.1/floor/")
TOKEN_LIFETIME = 86_400  # Tessera's (and Auth0's) default expires_in
SCOPE = ["read:data", "extra"]  # the grant's scope plus the seed hook's
HOOK_CLAIMS = {"https://foo.com/claim": "bar"}
KID = "floor-rs256"


def _load_private_key() -> rsa.RSAPrivateKey:
    key = load_pem_private_key(os.environ["FLOOR_PRIVATE_KEY"].encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("FLOOR_PRIVATE_KEY must be an RSA private key (PEM)")
    return key


PRIVATE_KEY = _load_private_key()
PUBLIC_JWK: dict[str, str] = {
    **RSAAlgorithm.to_jwk(PRIVATE_KEY.public_key(), as_dict=True),
    "kid": KID,
    "use": "sig",
    "alg": "RS256",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def token_response_body(data: Any) -> dict[str, Any]:
    """Sign a token for the body's client_id and audience, as Tessera does."""
    data = data if isinstance(data, dict) else {}
    client_id = str(data.get("client_id", ""))
    audience = str(data.get("audience", ""))
    now = int(time.time())
    claims: dict[str, Any] = {
        **HOOK_CLAIMS,
        "iss": ISSUER,
        "sub": f"{client_id}@clients",
        "aud": audience,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
        "azp": client_id,
        "gty": "client-credentials",
        "jti": secrets.token_urlsafe(16),
        "scope": " ".join(SCOPE),
    }
    token = jwt.encode(claims, PRIVATE_KEY, algorithm="RS256", headers={"kid": KID})
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME,
        "scope": " ".join(SCOPE),
    }


class TokenView(APIView):
    """The token endpoint as a DRF view, as Tessera's is."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        return Response(token_response_body(request.data), headers=NO_STORE)


async def async_token(request: HttpRequest) -> JsonResponse:
    """The same endpoint as an async Django view (JSON or form body)."""
    if request.method != "POST":
        return JsonResponse({"error": "invalid_request"}, status=405)
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body)
        except ValueError:
            return JsonResponse({"error": "invalid_request"}, status=400)
    else:
        data = request.POST.dict()
    body = token_response_body(data)
    return JsonResponse(body, headers=NO_STORE, json_dumps_params={"separators": (",", ":")})


class JwksView(APIView):
    """The public key, so the bench verifies the floor's tokens like the others'."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        return Response({"keys": [PUBLIC_JWK]})
