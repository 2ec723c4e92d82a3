"""The Management API never refuses, on runtime grounds, what Auth0 accepts:
``PATCH /hooks/{id} {"enabled": true}`` (auth0-python's ``Hooks.update``,
what Terraform and the Deploy CLI send), Action deploys and binding changes.
It still refuses what cannot compile or build, and the dry run's summary goes
into the change's audit entry. Two tenants side by side."""

import json

import pytest
import requests
from auth0.exceptions import Auth0Error
from auth0.management.hooks import Hooks

from clients.services import client_create, client_grant_create
from hooks.action_services import BindingSpec, action_create, action_deploy, bindings_replace
from tenant.models import AuditEntry
from tests.factories import TEST_ACTOR, make_api
from tests.management.conftest import ManagedTenant, sdk, token_claims

pytestmark = pytest.mark.django_db(transaction=True)

# The hook: it fails on the sample payload and serves every real client.
METADATA_HOOK = (
    "module.exports = function(client, scope, audience, context, cb) {\n"
    "  var profile = JSON.parse(String(client.metadata.profile));\n"
    "  cb(null, {scope: scope, 'https://example.com/plan': profile.plan});\n"
    "};\n"
)
ACTION_V1 = (
    "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
    "  api.accessToken.setCustomClaim('https://example.com/a', 1);\n"
    "};\n"
)
ACTION_BREAKS_BILLING = (
    "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
    "  if (event.client.name === 'billing') throw new Error('no billing');\n"
    "  api.accessToken.setCustomClaim('https://example.com/a', 2);\n"
    "};\n"
)


def real_clients(managed: ManagedTenant) -> tuple[str, dict[str, tuple[str, str]]]:
    """An API and two clients whose metadata holds a JSON profile."""
    audience = f"https://orders.{managed.tenant.slug}.test/"
    api = make_api(managed.tenant, audience, scopes=["read:orders"])
    clients = {}
    for name, plan in (("orders", "gold"), ("billing", "free")):
        client, secret = client_create(
            tenant=managed.tenant,
            name=name,
            metadata={"profile": json.dumps({"plan": plan})},
            actor=TEST_ACTOR,
        )
        client_grant_create(client=client, api=api, scopes=["read:orders"], actor=TEST_ACTOR)
        clients[name] = (client.client_id, secret)
    return audience, clients


def claims(managed: ManagedTenant, client: tuple[str, str], audience: str) -> dict:
    return token_claims(managed.tenant.issuer, *client, audience)


def test_the_metadata_hook_goes_live_through_auth0_python_and_serves_every_client(acme, globex):
    audience, clients = real_clients(acme)
    other_audience, other_clients = real_clients(globex)
    hooks = sdk(acme, Hooks)
    hook = hooks.create(
        {"name": "profile", "script": METADATA_HOOK, "triggerId": "credentials-exchange"}
    )
    # The management client has no profile: the hook would fail for it. Auth0
    # accepts the change, and so does Tessera; the audit entry says so.
    assert hooks.update(hook["id"], {"enabled": True})["enabled"] is True
    assert claims(acme, clients["orders"], audience)["https://example.com/plan"] == "gold"
    assert claims(acme, clients["billing"], audience)["https://example.com/plan"] == "free"
    assert "https://example.com/plan" not in claims(globex, other_clients["orders"], other_audience)
    entry = AuditEntry.objects.get(tenant=acme.tenant, source="api", action="enable")
    summary = (entry.after or {})["dry_run"]
    assert summary["from_grants"] == 3
    assert summary["clients_failing"] == [f"Management client ({acme.client_id})"]
    assert (summary["refused"], summary["confirmed"]) == (True, True)
    # What cannot compile is still refused, as at Auth0.
    with pytest.raises(Auth0Error) as error:
        hooks.update(hook["id"], {"script": "module.exports = function( {"})
    assert error.value.status_code == 400 and "line" in error.value.message


def test_action_deploys_and_bindings_through_the_api_never_refuse(acme, globex):
    audience, clients = real_clients(acme)
    real_clients(globex)
    action = action_create(tenant=acme.tenant, name="tag", code=ACTION_V1, actor=TEST_ACTOR)
    action_deploy(action=action, actor=TEST_ACTOR)
    bindings_replace(
        tenant=acme.tenant,
        trigger_id="credentials-exchange",
        bindings=[BindingSpec(action, "tag")],
        actor=TEST_ACTOR,
    )
    assert claims(acme, clients["billing"], audience)["https://example.com/a"] == 1
    headers = {"Authorization": f"Bearer {acme.token()}"}
    patched = requests.patch(
        f"{acme.api_url}actions/actions/{action.public_id}",
        json={"code": ACTION_BREAKS_BILLING},
        headers=headers,
        timeout=10,
    )
    assert patched.status_code == 200, patched.text
    deployed = requests.post(
        f"{acme.api_url}actions/actions/{action.public_id}/deploy", headers=headers, timeout=30
    )
    assert deployed.status_code == 200, deployed.text
    assert claims(acme, clients["orders"], audience)["https://example.com/a"] == 2
    entry = AuditEntry.objects.filter(tenant=acme.tenant, source="api", action="deploy").get()
    summary = (entry.after or {})["dry_run"]
    assert summary["regressions"] == 1
    assert summary["recorded_requests_failing"] == 1  # billing called before the deploy
    assert summary["clients_failing"] == [f"billing ({clients['billing'][0]})"]
    # A build that fails is still refused.
    requests.patch(
        f"{acme.api_url}actions/actions/{action.public_id}",
        json={"code": "exports.onExecuteCredentialsExchange = async ( => {"},
        headers=headers,
        timeout=10,
    )
    refused = requests.post(
        f"{acme.api_url}actions/actions/{action.public_id}/deploy", headers=headers, timeout=30
    )
    assert refused.status_code == 400
    # Unbinding through the API is never refused either, and is audited with its dry run.
    unbound = requests.patch(
        f"{acme.api_url}actions/triggers/credentials-exchange/bindings",
        json={"bindings": []},
        headers=headers,
        timeout=30,
    )
    assert unbound.status_code == 200, unbound.text
    entry = AuditEntry.objects.get(tenant=acme.tenant, source="api", action="bindings.replace")
    assert (entry.after or {})["dry_run"]["inputs"] >= 2
