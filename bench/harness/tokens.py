"""Fetch tokens one at a time and verify them the way a resource server would.

Load runs only check that each body carries a bearer token; here a sample of
tokens from each server is verified in full with PyJWT through the server's
JWKS: RS256 signature, ``iss``, ``aud``, ``exp``/``iat``, the seed hook's
``https://foo.com/claim`` and its ``extra`` scope (or their absence when the
hook is off).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from harness.processes import Server

HOOK_CLAIM = "https://foo.com/claim"
HOOK_CLAIM_VALUE = "bar"
HOOK_SCOPE = "extra"
API_SCOPE = "read:data"


class TokenCheckError(AssertionError):
    """A server answered a token request with something other than a valid token."""


@dataclass(frozen=True)
class TokenRequest:
    """One token request, exactly as the load generator sends it."""

    url: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class TokenExpectation:
    """What a valid access token from one server must contain."""

    issuer: str
    audience: str
    jwks_url: str
    with_hook: bool
    # Claims the token must carry besides the seed hook's (``--flow``'s Actions').
    claims: Mapping[str, str] = field(default_factory=dict)


def http_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One plain HTTP request (no proxy, no redirects); returns status and body."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1":
        raise ValueError(f"the benchmark only talks to http://127.0.0.1, not {url}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until_ready(server: Server, url: str, *, timeout: float) -> None:
    """Poll ``GET url`` until it answers 200; fail early if the server dies."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            status, _ = http_request("GET", url, timeout=2.0)
        except OSError as error:
            last_error = repr(error)
        else:
            if status == 200:
                return
            last_error = f"HTTP {status}"
        time.sleep(0.2)
    raise TokenCheckError(
        f"{server.name} not ready after {timeout:.0f} s ({url}: {last_error})\n{server.log_tail()}"
    )


def fetch_token(request: TokenRequest) -> dict[str, Any]:
    """Request one token; return the parsed 200 response body."""
    status, body = http_request(
        "POST", request.url, body=request.body, headers={"Content-Type": request.content_type}
    )
    if status != 200:
        raise TokenCheckError(f"POST {request.url} -> HTTP {status}: {body[:500]!r}")
    try:
        parsed = json.loads(body)
    except ValueError:
        raise TokenCheckError(f"POST {request.url} -> not JSON: {body[:500]!r}") from None
    if not isinstance(parsed, dict):
        raise TokenCheckError(f"POST {request.url} -> not a JSON object: {body[:500]!r}")
    return parsed


def fetch_jwks(url: str) -> jwt.PyJWKSet:
    """The server's published signing keys."""
    status, body = http_request("GET", url)
    if status != 200:
        raise TokenCheckError(f"GET {url} -> HTTP {status}: {body[:300]!r}")
    return jwt.PyJWKSet.from_dict(json.loads(body))


def verify_token_response(
    response: dict[str, Any], jwks: jwt.PyJWKSet, expectation: TokenExpectation
) -> dict[str, Any]:
    """Check one token response and its JWT; return the verified claims."""
    if str(response.get("token_type", "")).lower() != "bearer":
        raise TokenCheckError(f"token_type is {response.get('token_type')!r}, not Bearer")
    expires_in = response.get("expires_in")
    if not isinstance(expires_in, int) or expires_in <= 0:
        raise TokenCheckError(f"expires_in is {expires_in!r}")
    token = response.get("access_token")
    if not isinstance(token, str):
        raise TokenCheckError(f"no access_token in {response!r}")

    header = jwt.get_unverified_header(token)
    if header.get("alg") != "RS256":
        raise TokenCheckError(f"token is signed with {header.get('alg')!r}, not RS256")
    try:
        signing_key = jwks[header["kid"]] if "kid" in header else jwks.keys[0]
        claims: dict[str, Any] = jwt.decode(
            token,
            key=signing_key.key,
            algorithms=["RS256"],
            audience=expectation.audience,
            issuer=expectation.issuer,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
    except (KeyError, jwt.PyJWTError) as error:
        raise TokenCheckError(f"token does not verify: {error!r}") from None

    _check_hook_effects(claims, response, with_hook=expectation.with_hook)
    for name, value in expectation.claims.items():
        if claims.get(name) != value:
            raise TokenCheckError(f"{name} is {claims.get(name)!r}, not {value!r}")
    return claims


def _scopes(value: object) -> set[str]:
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {str(item) for item in value}
    return set()


def _check_hook_effects(
    claims: dict[str, Any], response: dict[str, Any], *, with_hook: bool
) -> None:
    token_scopes = _scopes(claims.get("scope"))
    response_scopes = _scopes(response.get("scope"))
    if API_SCOPE not in token_scopes:
        raise TokenCheckError(f"token scope {claims.get('scope')!r} lacks {API_SCOPE!r}")
    if with_hook:
        if claims.get(HOOK_CLAIM) != HOOK_CLAIM_VALUE:
            raise TokenCheckError(f"{HOOK_CLAIM} is {claims.get(HOOK_CLAIM)!r}, not 'bar'")
        if HOOK_SCOPE not in token_scopes or HOOK_SCOPE not in response_scopes:
            raise TokenCheckError(
                f"scope {HOOK_SCOPE!r} missing: token {claims.get('scope')!r}, "
                f"response {response.get('scope')!r}"
            )
    elif HOOK_CLAIM in claims or HOOK_SCOPE in token_scopes:
        raise TokenCheckError(f"hook is off but the token has its effects: {claims!r}")


def verify_sample(request: TokenRequest, expectation: TokenExpectation, *, count: int) -> None:
    """Fetch ``count`` tokens and verify each one in full."""
    jwks = fetch_jwks(expectation.jwks_url)
    for _ in range(count):
        verify_token_response(fetch_token(request), jwks, expectation)


def wait_for_valid_sample(
    request: TokenRequest, expectation: TokenExpectation, *, count: int, timeout: float
) -> None:
    """Like verify_sample, but retry until ``timeout`` (a hook toggle may take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            verify_sample(request, expectation, count=count)
        except TokenCheckError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
        else:
            return
