"""The extensibility points: what a hook at each is called with, a sample
payload for the Run panel, starter code, and how its result is filtered into
token claims.

Adding a point is one entry in ``POINTS``.
"""

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hooks.choices import TriggerId

# Names the server sets on every token; no hook may replace them.
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "azp", "gty", "jti"})
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


class HookResultInvalid(Exception):
    """The hook's result cannot be turned into token claims at all."""


@dataclass(frozen=True)
class DroppedProperty:
    name: str
    reason: str


@dataclass
class FilteredClaims:
    """What a credentials-exchange result contributes to the token."""

    scope: list[str]
    claims: dict[str, Any] = field(default_factory=dict)
    dropped: list[DroppedProperty] = field(default_factory=list)


def _host_is_reserved(host: str, reserved_domains: Iterable[str]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in reserved_domains)


# Every token of a hook carries the same claim names: the verdict is memoised
# per (name, reserved domains), in a bounded cache, off the hot path's bill.
@functools.lru_cache(maxsize=4096)
def _claim_rejection(name: str, reserved_domains: tuple[str, ...]) -> str | None:
    """Why a custom claim may not be in the token, or None if it may."""
    if name in RESERVED_CLAIMS:
        return "reserved claim, set by Tessera"
    parts = urlsplit(name)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return "not a namespaced claim: use an http(s) URL as its name"
    if _host_is_reserved(host, reserved_domains):
        return f"namespace {host} is reserved"
    return None


def _scopes(value: Any) -> list[str] | None:
    scopes = value.split() if isinstance(value, str) else value
    if not isinstance(scopes, list) or not all(
        isinstance(s, str) and SCOPE_TOKEN.match(s) for s in scopes
    ):
        return None
    return list(dict.fromkeys(scopes))


def filter_token_claims(
    value: Any, *, reserved_domains: Iterable[str], kind: str = "hook"
) -> FilteredClaims:
    """Keep ``scope`` and namespaced claims from a hook's result (Auth0's
    rules); report every other property and why it was dropped.

    A Hook's result is its ``access_token`` object. An Action's is what its
    ``api`` calls came to, ``{scope, claims}``: the granted scopes (an
    Action cannot change them) and the ``setCustomClaim`` calls.
    """
    reserved = tuple(reserved_domains)
    if kind == "action":
        return _filter_action_result(value, reserved)
    if value is None:
        return FilteredClaims(scope=[])
    if not isinstance(value, dict):
        raise HookResultInvalid(
            f"The hook must call back with an object, not {type(value).__name__}."
        )
    result = FilteredClaims(scope=[])
    for name, item in value.items():
        if name == "scope":
            scopes = _scopes(item)
            if scopes is None:
                result.dropped.append(
                    DroppedProperty(
                        name,
                        "scope must be an array (or space-separated string) "
                        "of scope names without spaces or quotes",
                    )
                )
            else:
                result.scope = scopes
            continue
        reason = _claim_rejection(name, reserved)
        if reason is None:
            result.claims[name] = item
        else:
            result.dropped.append(DroppedProperty(name, reason))
    return result


def _filter_action_result(value: Any, reserved_domains: tuple[str, ...]) -> FilteredClaims:
    if not isinstance(value, dict) or not isinstance(value.get("claims"), dict):
        raise HookResultInvalid("The Action's result is malformed.")
    result = FilteredClaims(scope=_scopes(value.get("scope")) or [])
    for name, item in value["claims"].items():
        reason = (
            "an Action keeps the granted scopes; setCustomClaim cannot change them"
            if name == "scope"
            else _claim_rejection(name, reserved_domains)
        )
        if reason is None:
            result.claims[name] = item
        else:
            result.dropped.append(DroppedProperty(name, reason))
    return result


@dataclass(frozen=True)
class ExtensibilityPoint:
    """What a point calls. A Hook gets ``arg_names`` (from ``sample_payload``
    in the Run panel); an Auth0 Action gets ``action_handler(event, api)``
    (``action_sample_payload``)."""

    trigger_id: str
    arg_names: tuple[str, ...]
    sample_payload: dict[str, Any]
    starter_script: str
    action_handler: str
    action_sample_payload: dict[str, Any]
    action_starter_script: str

    def sample_for(self, kind: str) -> dict[str, Any]:
        """The Run panel's sample payload for a Hook or an Action."""
        return self.action_sample_payload if kind == "action" else self.sample_payload

    def starter_for(self, kind: str) -> str:
        """Starter code for a new Hook or Action."""
        return self.action_starter_script if kind == "action" else self.starter_script

    def payload_keys(self) -> frozenset[str]:
        """Keys a test-run payload may have, in either format."""
        return frozenset(self.arg_names) | {"event", "request"}


CREDENTIALS_EXCHANGE = ExtensibilityPoint(
    trigger_id=TriggerId.CREDENTIALS_EXCHANGE,
    arg_names=("client", "scope", "audience", "context"),
    sample_payload={
        "client": {
            "tenant": "tenant_name",
            "id": "client_id",
            "name": "test_client",
            "metadata": {"some_metadata": "value"},
        },
        "scope": ["read:connections"],
        "audience": "https://api.example.com/",
        "context": {
            "ip": "127.0.0.1",
            "userAgent": "curl/8.0",
            "body": {"grant_type": "client_credentials", "audience": "https://api.example.com/"},
        },
    },
    starter_script="""/**
@param {object} client - information about the client
@param {string} client.name - name of client
@param {string} client.id - client id
@param {string} client.tenant - tenant name
@param {object} client.metadata - client metadata
@param {array|undefined} scope - array of strings representing the scope claim or undefined
@param {string} audience - token's audience claim
@param {object} context - additional authorization context
@param {object} context.webtask - webtask context
@param {function} cb - function (error, accessTokenClaims)
*/
module.exports = function(client, scope, audience, context, cb) {
  var access_token = {};
  access_token.scope = scope;

  // Modify scopes or add extra claims
  // access_token['https://example.com/claim'] = 'bar';
  // access_token.scope.push('extra');

  cb(null, access_token);
};
""",
    action_handler="onExecuteCredentialsExchange",
    action_sample_payload={
        "event": {
            "client": {
                "client_id": "client_id",
                "name": "test_client",
                "metadata": {"some_metadata": "value"},
            },
            "resource_server": {"identifier": "https://api.example.com/"},
            "tenant": {"id": "tenant_name"},
            "request": {
                "body": {
                    "grant_type": "client_credentials",
                    "audience": "https://api.example.com/",
                },
                "ip": "127.0.0.1",
                "hostname": "tenant.example.com",
                "method": "POST",
                "user_agent": "curl/8.0",
                "language": "en",
                "geoip": {},
            },
            "secrets": {},
            "transaction": {"requested_scopes": []},
            "accessToken": {"scope": ["read:connections"], "customClaims": {}},
        }
    },
    action_starter_script="""/**
 * Handler that will be called during the execution of a Client Credentials exchange.
 *
 * @param {Event} event - Details about client credentials grant request.
 * @param {CredentialsExchangeAPI} api - Methods to change the behavior of the grant.
 */
exports.onExecuteCredentialsExchange = async (event, api) => {
  // api.accessToken.setCustomClaim('https://example.com/claim', 'bar');
  // if (!event.client.metadata.allowed) api.access.deny('invalid_request', 'Not allowed.');
};
""",
)

POINTS: dict[str, ExtensibilityPoint] = {CREDENTIALS_EXCHANGE.trigger_id: CREDENTIALS_EXCHANGE}


def credentials_exchange_payload(
    *,
    tenant_slug: str,
    client_id: str,
    client_name: str,
    client_metadata: Mapping[str, str],
    audience: str,
    scope: list[str],
    params: Mapping[str, str],
    ip: str,
    user_agent: str,
    hostname: str = "",
    language: str = "",
) -> dict[str, Any]:
    """A credentials-exchange hook's arguments, from plain request values;
    ``context.body`` never carries the client secret. ``request`` is not a
    Hook argument: an Action's ``event.request`` takes what Hooks lack from it."""
    return {
        "request": {"hostname": hostname, "method": "POST", "language": language},
        "client": {
            "tenant": tenant_slug,
            "id": client_id,
            "name": client_name,
            "metadata": dict(client_metadata),
        },
        "scope": list(scope),
        "audience": audience,
        "context": {
            "ip": ip,
            "userAgent": user_agent,
            "body": {k: v for k, v in params.items() if k != "client_secret"},
        },
    }
