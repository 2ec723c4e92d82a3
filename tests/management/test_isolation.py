"""The Management API's isolation matrix over real HTTP: every endpoint x
missing scope → 403; no token, a bad signature, an expired token, a forged
algorithm or another tenant's token → 401; another tenant's object → 404."""

import base64
import json
import time
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apis.services import MANAGEMENT_SCOPES
from hooks.action_services import BindingSpec, action_create, action_deploy, bindings_replace
from hooks.models import HookRun
from hooks.pipeline import credentials_exchange
from hooks.points import POINTS
from hooks.services import hook_create
from tenant.selectors import signing_key_active
from tests.factories import TEST_ACTOR, make_api, make_client
from tests.management.conftest import ManagedTenant, client_with_scopes

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = "module.exports = function(c, s, a, ctx, cb) { cb(null, {}); };\n"
ACTION = "exports.onExecuteCredentialsExchange = async (event, api) => {};\n"
TRIGGER = "credentials-exchange"

# (method, path under api/v2/, scope, JSON body)
ENDPOINTS: list[tuple[str, str, str, Any]] = [
    ("GET", "hooks", "read:hooks", None),
    (
        "POST",
        "hooks",
        "create:hooks",
        {"name": "n", "script": SCRIPT, "triggerId": "credentials-exchange"},
    ),
    ("GET", "hooks/{hook}", "read:hooks", None),
    ("PATCH", "hooks/{hook}", "update:hooks", {"enabled": False}),
    ("DELETE", "hooks/{hook}", "delete:hooks", None),
    ("GET", "hooks/{hook}/secrets", "read:hooks", None),
    ("POST", "hooks/{hook}/secrets", "create:hooks", {"X": "1"}),
    ("PATCH", "hooks/{hook}/secrets", "update:hooks", {"X": "1"}),
    ("DELETE", "hooks/{hook}/secrets", "delete:hooks", ["X"]),
    ("GET", "resource-servers", "read:resource_servers", None),
    ("POST", "resource-servers", "create:resource_servers", {"identifier": "https://x/"}),
    ("GET", "resource-servers/{rs}", "read:resource_servers", None),
    ("PATCH", "resource-servers/{rs}", "update:resource_servers", {"name": "n"}),
    ("DELETE", "resource-servers/{rs}", "delete:resource_servers", None),
    ("GET", "clients", "read:clients", None),
    ("POST", "clients", "create:clients", {"name": "n"}),
    ("GET", "clients/{client}", "read:clients", None),
    ("PATCH", "clients/{client}", "update:clients", {"name": "n"}),
    ("DELETE", "clients/{client}", "delete:clients", None),
    ("POST", "clients/{client}/rotate-secret", "update:clients", None),
    ("GET", "client-grants", "read:client_grants", None),
    (
        "POST",
        "client-grants",
        "create:client_grants",
        {"client_id": "c", "audience": "a", "scope": []},
    ),
    ("PATCH", "client-grants/{grant}", "update:client_grants", {"scope": []}),
    ("DELETE", "client-grants/{grant}", "delete:client_grants", None),
    ("GET", "actions/triggers", "read:actions", None),
    ("GET", f"actions/triggers/{TRIGGER}/bindings", "read:actions", None),
    ("PATCH", f"actions/triggers/{TRIGGER}/bindings", "update:actions", {"bindings": []}),
    ("GET", "actions/actions", "read:actions", None),
    (
        "POST",
        "actions/actions",
        "create:actions",
        {"name": "n", "code": ACTION, "supported_triggers": [{"id": TRIGGER, "version": "v2"}]},
    ),
    ("GET", "actions/actions/{action}", "read:actions", None),
    ("PATCH", "actions/actions/{action}", "update:actions", {"name": "renamed"}),
    ("DELETE", "actions/actions/{action}", "delete:actions", None),
    ("POST", "actions/actions/{action}/deploy", "create:actions", None),
    ("POST", "actions/actions/{action}/test", "create:actions", {"payload": {}}),
    ("GET", "actions/actions/{action}/versions", "read:actions", None),
    ("GET", "actions/actions/{action}/versions/{version}", "read:actions", None),
    ("POST", "actions/actions/{action}/versions/{version}/deploy", "create:actions", {}),
    ("GET", "actions/executions/{execution}", "read:actions", None),
    ("GET", "actions/modules", "read:actions", None),
    ("GET", "tenants/settings", "read:tenant_settings", None),
    ("PATCH", "tenants/settings", "update:tenant_settings", {"friendly_name": "n"}),
]
OBJECT_ENDPOINTS = [e for e in ENDPOINTS if "{" in e[1]]


def objects_of(managed: ManagedTenant) -> dict[str, str]:
    """One object of each kind in the tenant, by the ids the API shows."""
    api = make_api(managed.tenant, f"https://api.{managed.tenant.slug}.test/")
    client, _ = make_client(managed.tenant, {api: ["read:data"]})
    hook = hook_create(tenant=managed.tenant, name="h", script=SCRIPT, actor=TEST_ACTOR)
    action = action_create(tenant=managed.tenant, name="a", code=ACTION, actor=TEST_ACTOR)
    version = action_deploy(action=action, actor=TEST_ACTOR)
    bindings_replace(
        tenant=managed.tenant,
        trigger_id=TRIGGER,
        bindings=[BindingSpec(action, "a")],
        actor=TEST_ACTOR,
    )
    credentials_exchange(tenant=managed.tenant, payload=POINTS[TRIGGER].sample_payload)
    execution = HookRun.objects.get(tenant=managed.tenant, execution_id__startswith="ex_")
    return {
        "hook": hook.public_id,
        "rs": api.public_id,
        "client": client.client_id,
        "grant": client.grants.get().public_id,
        "action": action.public_id,
        "version": version.public_id,
        "execution": execution.execution_id,
    }


def call(managed: ManagedTenant, method: str, path: str, token: str | None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.request(method, managed.api_url + path, headers=headers, json=body, timeout=10)


def assert_auth0_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["statusCode"] == status and body["error"] and body["message"]
    return body


@pytest.fixture
def worlds(acme, globex):
    return {"acme": objects_of(acme), "globex": objects_of(globex)}


def test_every_endpoint_needs_its_scope(acme, worlds):
    ids = worlds["acme"]
    for method, path, scope, body in ENDPOINTS:
        others = [s for s in MANAGEMENT_SCOPES if s != scope]
        limited = client_with_scopes(acme, others)
        response = call(acme, method, path.format(**ids), limited.token(), body)
        error = assert_auth0_error(response, 403)
        assert error["message"] == f"Insufficient scope; expected any of: {scope}."
        assert error["errorCode"] == "insufficient_scope"


def forged_tokens(acme: ManagedTenant, globex: ManagedTenant) -> dict[str, str]:
    key = signing_key_active(tenant=acme.tenant)
    now = int(time.time())
    claims = {
        "iss": acme.tenant.issuer,
        "sub": f"{acme.client_id}@clients",
        "azp": acme.client_id,
        "aud": acme.api_url,
        "iat": now,
        "exp": now + 600,
        "scope": " ".join(MANAGEMENT_SCOPES),
    }
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode())
    hs_header = {"kid": key.kid}
    return {
        "bad signature": jwt.encode(claims, stranger, "RS256", headers={"kid": key.kid}),
        "expired": jwt.encode(
            {**claims, "iat": now - 7200, "exp": now - 3600},
            key.private_key,
            "RS256",
            headers={"kid": key.kid},
        ),
        "wrong audience": jwt.encode(
            {**claims, "aud": "https://api.acme.test/"},
            key.private_key,
            "RS256",
            headers={"kid": key.kid},
        ),
        "alg none": (header.rstrip(b"=") + b"." + payload.rstrip(b"=") + b".").decode(),
        "HS256 with the public key": _hs256(claims, public_pem, hs_header),
        "another tenant's token": globex.token(),
        "garbage": "not.a.jwt",
    }


def _hs256(claims: dict, secret: bytes, header: dict) -> str:
    import hashlib
    import hmac

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode())
    body = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + signature).decode()


def test_bad_tokens_are_401_on_every_endpoint(acme, globex, worlds):
    ids = worlds["acme"]
    tokens: dict[str, str | None] = {"no token": None, **forged_tokens(acme, globex)}
    for method, path, _scope, body in ENDPOINTS:
        for name, token in tokens.items():
            response = call(acme, method, path.format(**ids), token, body)
            assert response.status_code == 401, (method, path, name, response.text)
            assert_auth0_error(response, 401)


def test_ids_are_opaque(worlds):
    ids = worlds["acme"]
    assert ids["hook"].startswith("hk_") and len(ids["hook"]) == 19
    assert ids["grant"].startswith("cgr_") and len(ids["grant"]) == 20
    assert len(ids["rs"]) == 24 and int(ids["rs"], 16) >= 0
    assert all(len(ids[kind]) == 36 for kind in ("action", "version"))


def test_another_tenants_object_is_404(acme, worlds):
    theirs = worlds["globex"]
    token = acme.token()
    for method, path, _scope, body in OBJECT_ENDPOINTS:
        response = call(acme, method, path.format(**theirs), token, body)
        assert_auth0_error(response, 404)
    # And nothing of theirs leaks through a list.
    lists = ("hooks?enabled=false", "resource-servers", "clients", "client-grants")
    for path in (*lists, "actions/actions", f"actions/triggers/{TRIGGER}/bindings"):
        text = call(acme, "GET", path, token).text
        assert all(value not in text for value in theirs.values()), path


def test_rate_limit_answers_429_with_headers(acme, settings):
    settings.TESSERA_MANAGEMENT_RATE_LIMIT = 3
    token = acme.token()
    statuses = []
    for _ in range(4):
        response = call(acme, "GET", "hooks", token)
        statuses.append(response.status_code)
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert int(response.headers["X-RateLimit-Reset"]) > time.time() - 1
    assert statuses == [200, 200, 200, 429]
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["Retry-After"]) >= 1
    assert_auth0_error(response, 429)
