"""The extensibility points: what a hook at each is called with, a sample
payload for the Run panel, starter code, and how its result is filtered.

Adding a point is one entry in ``POINTS``.
"""

import re
from collections.abc import Callable, Iterable
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


def filter_token_claims(value: Any, *, reserved_domains: Iterable[str]) -> FilteredClaims:
    """Keep ``scope`` and namespaced claims from a hook's ``access_token``
    (Auth0's rules); report every other property and why it was dropped."""
    if value is None:
        return FilteredClaims(scope=[])
    if not isinstance(value, dict):
        raise HookResultInvalid(
            f"The hook must call back with an object, not {type(value).__name__}."
        )
    reserved_domains = list(reserved_domains)
    result = FilteredClaims(scope=[])
    for name, item in value.items():
        if name == "scope":
            scopes = item.split() if isinstance(item, str) else item
            if not isinstance(scopes, list) or not all(
                isinstance(s, str) and SCOPE_TOKEN.match(s) for s in scopes
            ):
                result.dropped.append(
                    DroppedProperty(
                        name,
                        "scope must be an array (or space-separated string) "
                        "of scope names without spaces or quotes",
                    )
                )
                continue
            result.scope = list(dict.fromkeys(scopes))
            continue
        if name in RESERVED_CLAIMS:
            result.dropped.append(DroppedProperty(name, "reserved claim, set by Tessera"))
            continue
        parts = urlsplit(name)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            result.dropped.append(
                DroppedProperty(name, "not a namespaced claim: use an http(s) URL as its name")
            )
        elif _host_is_reserved(host, reserved_domains):
            result.dropped.append(DroppedProperty(name, f"namespace {host} is reserved"))
        else:
            result.claims[name] = item
    return result


@dataclass(frozen=True)
class ExtensibilityPoint:
    trigger_id: str
    arg_names: tuple[str, ...]
    sample_payload: dict[str, Any]
    starter_script: str
    filter_result: Callable[..., FilteredClaims]


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
    filter_result=filter_token_claims,
)

POINTS: dict[str, ExtensibilityPoint] = {CREDENTIALS_EXCHANGE.trigger_id: CREDENTIALS_EXCHANGE}
