"""An Action (the Actions format, SPEC §4) seen from real token requests to
a live server: every field of ``event``, and ``api.cache`` across requests
(delete, expiry, the 8 kB total), each tenant's apart from the other's."""

import json
import time
from typing import Any

import jwt
import pytest
import requests

from hooks.models import Hook
from hooks.services import hook_create, hook_secrets_set
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

AUD = "https://api.example.test/"
EVENT_CLAIM = "https://example.com/event"
RESULTS_CLAIM = "https://example.com/results"

SHOW_EVENT = """exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim('https://example.com/event', event);
};"""

# Runs the cache operations named by the request's `ops` parameter (JSON:
# [verb, key, value, options]; a value {c, n} is c repeated n times) and
# returns what each answered.
CACHE_OPS = """exports.onExecuteCredentialsExchange = async (event, api) => {
  const ops = JSON.parse(event.request.body.ops || '[]');
  const results = ops.map(([verb, key, value, options]) => {
    if (verb === 'get') {
      const entry = api.cache.get(key);
      return entry === undefined ? null : entry.value;
    }
    if (verb === 'set') {
      const text = typeof value === 'object' && value !== null ? value.c.repeat(value.n) : value;
      const result = api.cache.set(key, text, options);
      return result.type === 'success' ? 'success' : result.code;
    }
    return api.cache.delete(key).type;
  });
  api.accessToken.setCustomClaim('https://example.com/results', results);
};"""


class Tenant:
    def __init__(self, slug: str, script: str, metadata: dict[str, str]) -> None:
        self.tenant = make_tenant(slug)
        api = make_api(self.tenant, AUD, scopes=["read:data", "write:data"])
        self.client, self.secret = make_client(
            self.tenant, {api: ["read:data", "write:data"]}, name=f"{slug} svc", metadata=metadata
        )
        self.hook = hook_create(
            tenant=self.tenant, name="action", script=script, enabled=True, actor=TEST_ACTOR
        )
        assert self.hook.kind == "action"

    def token(self, headers: dict[str, str] | None = None, **params: str) -> dict[str, Any]:
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client.client_id,
            "client_secret": self.secret,
            "audience": AUD,
            **params,
        }
        response = requests.post(
            f"{self.tenant.issuer}oauth/token", data=body, headers=headers or {}, timeout=10
        )
        assert response.status_code == 200, response.text
        return jwt.decode(response.json()["access_token"], options={"verify_signature": False})

    def cache(self, *ops: list[Any]) -> list[Any]:
        return list(self.token(ops=json.dumps(ops))[RESULTS_CLAIM])


@pytest.fixture
def live(live_server, settings):
    settings.PUBLIC_URL = live_server.url
    return live_server


# --- event ---------------------------------------------------------------------


def test_every_event_field_comes_from_the_token_request(live):
    acme = Tenant("acme", SHOW_EVENT, {"tier": "gold"})
    hook_secrets_set(hook=acme.hook, secrets={"API_KEY": "acme-key"}, actor=TEST_ACTOR)
    globex = Tenant("globex", SHOW_EVENT, {"tier": "bronze"})

    headers = {"User-Agent": "billing-batch/2.1", "Accept-Language": "fr-CH, fr;q=0.9, en;q=0.8"}
    event = acme.token(headers, scope="read:data", extra="kept")[EVENT_CLAIM]

    assert set(event) == {
        "client",
        "resource_server",
        "tenant",
        "request",
        "secrets",
        "transaction",
        "accessToken",
    }
    assert event["client"] == {
        "client_id": acme.client.client_id,
        "name": "acme svc",
        "metadata": {"tier": "gold"},
    }
    assert event["resource_server"] == {"identifier": AUD}
    assert event["tenant"] == {"id": "acme"}
    request = event["request"]
    assert set(request) == {
        "body",
        "ip",
        "hostname",
        "method",
        "user_agent",
        "language",
        "geoip",
    }
    assert request["body"] == {
        "grant_type": "client_credentials",
        "client_id": acme.client.client_id,
        "audience": AUD,
        "scope": "read:data",
        "extra": "kept",
    }  # never the client secret
    assert request["ip"] == "127.0.0.1"
    assert request["hostname"] == "localhost"  # the live server's host, without the port
    assert request["method"] == "POST"
    assert request["user_agent"] == "billing-batch/2.1"
    assert request["language"] == "fr-CH"
    assert request["geoip"] == {}  # no GeoIP database configured
    assert event["secrets"] == {"API_KEY": "acme-key"}
    assert event["transaction"] == {"requested_scopes": ["read:data"]}
    assert event["accessToken"] == {"scope": ["read:data"], "customClaims": {}}

    # Without a scope parameter: nothing requested, everything granted.
    # The other tenant's Action sees its own client, tenant and no secrets.
    other = globex.token()[EVENT_CLAIM]
    assert other["client"]["client_id"] == globex.client.client_id
    assert other["client"]["metadata"] == {"tier": "bronze"}
    assert other["tenant"] == {"id": "globex"}
    assert other["secrets"] == {}
    assert other["transaction"] == {"requested_scopes": []}
    assert other["accessToken"]["scope"] == ["read:data", "write:data"]
    assert other["request"]["language"] == ""  # no Accept-Language
    assert "client_secret" not in other["request"]["body"]


# --- api.cache -----------------------------------------------------------------


def test_cache_delete_is_seen_by_the_next_request(live):
    acme = Tenant("acme", CACHE_OPS, {})
    globex = Tenant("globex", CACHE_OPS, {})
    assert acme.cache(["set", "k", "one"], ["set", "keep", "two"]) == ["success", "success"]
    assert globex.cache(["set", "k", "theirs"]) == ["success"]

    assert acme.cache(["get", "k"], ["delete", "k"], ["get", "k"]) == ["one", "success", None]
    assert acme.cache(["get", "k"], ["get", "keep"]) == [None, "two"]
    assert globex.cache(["get", "k"]) == ["theirs"]


def test_cache_entries_expire_after_their_ttl(live):
    acme = Tenant("acme", CACHE_OPS, {})
    assert acme.cache(
        ["set", "short", "s", {"ttl": 1500}],
        ["set", "long", "l", {"ttl": 60_000}],
        ["set", "default", "d"],
    ) == ["success", "success", "success"]
    assert acme.cache(["get", "short"], ["get", "long"]) == ["s", "l"]
    time.sleep(1.7)
    assert acme.cache(["get", "short"], ["get", "long"], ["get", "default"]) == [None, "l", "d"]
    # An absolute expires_at in the past is refused, one in the future kept.
    now_ms = int(time.time() * 1000)
    assert acme.cache(
        ["set", "past", "p", {"expires_at": now_ms - 1000}],
        ["set", "soon", "n", {"expires_at": now_ms + 1200}],
    ) == ["INVALID_EXPIRY", "success"]
    assert acme.cache(["get", "soon"]) == ["n"]
    time.sleep(1.4)
    assert acme.cache(["get", "soon"], ["get", "past"]) == [None, None]


def test_cache_holds_8_kb_in_total_across_requests(live):
    acme = Tenant("acme", CACHE_OPS, {})
    globex = Tenant("globex", CACHE_OPS, {})
    # 2,048 "é" are 4,096 bytes of UTF-8: the limits count bytes, not characters.
    assert acme.cache(
        ["set", "big", {"c": "\u00e9", "n": 2049}],
        ["set", "a", {"c": "\u00e9", "n": 2048}],
        ["set", "b", {"c": "x", "n": 4096}],
    ) == ["VALUE_TOO_LARGE", "success", "success"]
    # The next request sees a full cache, though it wrote nothing yet.
    assert acme.cache(["set", "c", "z"]) == ["CACHE_FULL"]
    # Replacing an entry counts its new size only.
    assert acme.cache(["set", "a", {"c": "y", "n": 4096}], ["set", "c", "z"]) == [
        "success",
        "CACHE_FULL",
    ]
    # A delete frees its bytes for the next write.
    assert acme.cache(["delete", "b"], ["set", "c", "z"], ["get", "c"]) == [
        "success",
        "success",
        "z",
    ]
    # Another tenant's Action has its own 8 kB.
    assert globex.cache(
        ["set", "a", {"c": "x", "n": 4096}], ["set", "b", {"c": "x", "n": 4096}]
    ) == [
        "success",
        "success",
    ]
    assert Hook.objects.count() == 2
