"""Careless and hostile input to the Management API: always an Auth0-shaped
4xx, never a 5xx or HTML, and nothing stored."""

import pytest
import requests

from hooks.action_services import SecretSpec, action_create
from hooks.models import Action, Hook, TriggerBinding
from hooks.services import hook_create
from tenant.models import AuditEntry
from tests.factories import TEST_ACTOR, make_api

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = "module.exports = function(c, s, a, ctx, cb) { cb(null, {}); };\n"
ACTION = "exports.onExecuteCredentialsExchange = async (event, api) => {};\n"
TRIGGER = "credentials-exchange"
CX = '"supported_triggers": [{"id": "credentials-exchange", "version": "v2"}]'

# (method, path, raw JSON body)
BAD_REQUESTS = [
    ("POST", "hooks", '{"name": "a\\ud800", "script": "x", "triggerId": "credentials-exchange"}'),
    ("POST", "hooks", '{"name": "n", "script": "x\\u0000", "triggerId": "credentials-exchange"}'),
    ("POST", "hooks", '{"name": "n", "script": "x", "triggerId": "post-login"}'),
    ("POST", "hooks", "[]"),
    ("POST", "hooks", "null"),
    ("POST", "hooks", "{not json"),
    ("POST", "hooks/{hook}/secrets", '{"A": "\\ud800"}'),
    ("POST", "hooks/{hook}/secrets", '{"A\\u0000": "v"}'),
    ("POST", "hooks/{hook}/secrets", '{"A": 1}'),
    ("POST", "hooks/{hook}/secrets", '{"bad name!": "v"}'),
    ("POST", "hooks/{hook}/secrets", "{}"),
    ("DELETE", "hooks/{hook}/secrets", '["\\ud800"]'),
    ("DELETE", "hooks/{hook}/secrets", '"KEY"'),
    ("PATCH", "hooks/{hook}", '{"script": "module.exports = function( {"}'),
    ("PATCH", "hooks/{hook}", '{"enabled": "perhaps"}'),
    ("PATCH", "hooks/{hook}", '{"triggerId": "credentials-exchange"}'),
    ("POST", "clients", '{"name": "c", "client_metadata": {"k\\ud800": "v"}}'),
    ("POST", "clients", '{"name": "c", "app_type": "spa"}'),
    ("POST", "clients", '{"name": "c", "grant_types": ["password"]}'),
    ("POST", "clients", '{"name": "c", "client_metadata": {"k": "' + "v" * 300 + '"}}'),
    ("POST", "resource-servers", '{"identifier": "https://x/", "scopes": [{"value": "a b"}]}'),
    ("POST", "resource-servers", '{"identifier": "https://x/", "token_lifetime": 2592001}'),
    ("PATCH", "resource-servers/{rs}", '{"identifier": "https://other/"}'),
    ("POST", "client-grants", '{"client_id": "\\u0000", "audience": "a", "scope": []}'),
    ("GET", "clients?client_id=%00", None),
    ("GET", "client-grants?audience=%00", None),
    ("GET", "hooks?per_page=101", None),
    ("GET", "hooks?page=-1", None),
    ("GET", "hooks?page=99999999999999999999", None),
    ("GET", "hooks?include_totals=maybe", None),
    ("POST", "actions/actions", "[]"),
    ("POST", "actions/actions", '{"name": "a\\ud800", "code": "", ' + CX + "}"),
    ("POST", "actions/actions", '{"name": "a\\nb", "code": "", ' + CX + "}"),
    ("POST", "actions/actions", '{"name": "n", "code": "x\\u0000", ' + CX + "}"),
    ("POST", "actions/actions", '{"name": "n", "code": "", "supported_triggers": "x"}'),
    ("POST", "actions/actions", '{"name": "n", "code": "", "supported_triggers": []}'),
    ("POST", "actions/actions", '{"name": "n", "code": "", "runtime": "node8", ' + CX + "}"),
    ("POST", "actions/actions", '{"name": "n", "code": "", "dependencies": [{}], ' + CX + "}"),
    (
        "POST",
        "actions/actions",
        '{"name": "n", "code": "", "secrets": [{"name": "A", "value": 1}], ' + CX + "}",
    ),
    ("PATCH", "actions/actions/{action}", '{"name": ""}'),
    ("PATCH", "actions/actions/{action}", '{"secrets": [{"name": "NEW"}]}'),
    (
        "PATCH",
        "actions/actions/{action}",
        '{"supported_triggers": [{"id": "credentials-exchange", "version": "v1"}]}',
    ),
    ("PATCH", f"actions/triggers/{TRIGGER}/bindings", '{"bindings": "x"}'),
    (
        "PATCH",
        f"actions/triggers/{TRIGGER}/bindings",
        '{"bindings": [{"ref": {"type": "nope", "value": "a"}}]}',
    ),
    (
        "PATCH",
        f"actions/triggers/{TRIGGER}/bindings",
        '{"bindings": [{"ref": {"type": "action_name", "value": "\\u0000"}}]}',
    ),
    (
        "PATCH",
        f"actions/triggers/{TRIGGER}/bindings",
        '{"bindings": [{"ref": {"type": "action_name", "value": "none"}}]}',
    ),
    ("POST", "actions/actions/{action}/test", '{"payload": []}'),
    ("POST", "actions/actions/{action}/versions/nope/deploy", "{}"),
    ("GET", "actions/actions?per_page=101", None),
    ("GET", "actions/actions?deployed=maybe", None),
    ("GET", "actions/actions?page=-1", None),
    ("GET", "actions/executions/%00", None),
]


@pytest.fixture
def ids(acme):
    hook = hook_create(
        tenant=acme.tenant, name="h", script=SCRIPT, secrets={"KEY": "v"}, actor=TEST_ACTOR
    )
    api = make_api(acme.tenant, "https://api.x/")
    action = action_create(
        tenant=acme.tenant, name="a", code=ACTION, actor=TEST_ACTOR, secrets=[SecretSpec("K", "v")]
    )
    return {"hook": hook.public_id, "rs": api.public_id, "action": action.public_id}


def test_bad_input_is_a_json_4xx_and_changes_nothing(acme, ids):
    token = acme.token()
    before = AuditEntry.objects.count()
    for method, path, body in BAD_REQUESTS:
        response = requests.request(
            method,
            acme.api_url + path.format(**ids),
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=10,
        )
        assert 400 <= response.status_code < 500, (method, path, body, response.text)
        assert response.headers["Content-Type"].startswith("application/json"), path
        assert response.json()["statusCode"] == response.status_code
    assert AuditEntry.objects.count() == before
    assert Hook.objects.get(name="h").version == 1
    action = Action.objects.get()
    assert (action.name, action.revision, action.secrets.count()) == ("a", 1, 1)
    assert not TriggerBinding.objects.exists()


def test_unknown_paths_and_methods_are_auth0_json(acme):
    token = acme.token()
    headers = {"Authorization": f"Bearer {token}"}
    missing = requests.get(f"{acme.api_url}users", headers=headers, timeout=10)
    assert missing.status_code == 404 and missing.json()["statusCode"] == 404
    put = requests.put(f"{acme.api_url}hooks", headers=headers, json={}, timeout=10)
    assert put.status_code == 405 and put.json()["statusCode"] == 405


def test_oversized_body_is_413_json(acme):
    response = requests.post(
        f"{acme.api_url}hooks",
        json={"name": "big", "script": "//" + "x" * 3_000_000, "triggerId": "credentials-exchange"},
        headers={"Authorization": f"Bearer {acme.token()}"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["statusCode"] == 413
    assert not Hook.objects.filter(name="big").exists()
