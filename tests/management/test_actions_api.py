"""The Management API's ``actions/*`` over real HTTP, two tenants side by
side: Auth0's shapes and codes, the flow it configures reaching the token
endpoint, hostile input, and auth0-python's management client driving it."""

import json
from typing import Any

import jwt
import pytest
import requests
from auth0.management.actions import Actions

from hooks.models import Action, ActionVersion, HookRun, TriggerBinding
from tenant.models import AuditEntry
from tests.factories import make_api, make_client
from tests.management.conftest import ManagedTenant

pytestmark = pytest.mark.django_db(transaction=True)

AUD = "https://orders.example/"
TRIGGER = "credentials-exchange"
TRIGGERS = [{"id": TRIGGER, "version": "v2"}]


def code_setting(value: str) -> str:
    return f"""exports.onExecuteCredentialsExchange = async (event, api) => {{
  api.accessToken.setCustomClaim('https://example.com/v', {json.dumps(value)});
  api.accessToken.setCustomClaim('https://example.com/key', event.secrets.KEY || null);
}};
"""


class Api:
    """The tenant's Management API with a full token."""

    def __init__(self, managed: ManagedTenant) -> None:
        self.managed = managed
        self.headers = {"Authorization": f"Bearer {managed.token()}"}

    def __call__(self, method: str, path: str, body: Any = None, **params: Any):
        return requests.request(
            method,
            self.managed.api_url + path,
            headers=self.headers,
            json=body,
            params=params,
            timeout=30,
        )

    def create(self, name: str, code: str, **fields: Any) -> dict:
        body = {"name": name, "code": code, "supported_triggers": TRIGGERS, **fields}
        response = self("POST", "actions/actions", body)
        assert response.status_code == 201, response.text
        return response.json()

    def deploy_and_bind(self, action: dict) -> None:
        """Deploy ``action`` and make it the trigger's whole flow."""
        assert self("POST", f"actions/actions/{action['id']}/deploy").status_code == 200
        body = {"bindings": [{"ref": {"type": "action_id", "value": action["id"]}}]}
        assert self("PATCH", f"actions/triggers/{TRIGGER}/bindings", body).status_code == 200


def auth0_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["statusCode"] == status and body["error"] and body["message"]
    return body


def token_claims(managed: ManagedTenant, client_and_secret) -> dict:
    client, secret = client_and_secret
    response = requests.post(
        f"{managed.tenant.issuer}oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": secret,
            "audience": AUD,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


@pytest.fixture
def service(acme):
    api = make_api(acme.tenant, AUD, scopes=["read:orders"])
    return make_client(acme.tenant, {api: ["read:orders"]})


def test_create_answers_auth0s_action(acme):
    api = Api(acme)
    action = api.create("tier", code_setting("1"), secrets=[{"name": "KEY", "value": "s3cr3t"}])
    assert len(action["id"]) == 36 and action["name"] == "tier"
    assert action["supported_triggers"] == TRIGGERS
    assert (action["status"], action["runtime"], action["all_changes_deployed"]) == (
        "built",
        "node22",
        False,
    )
    assert [s["name"] for s in action["secrets"]] == ["KEY"]
    assert "s3cr3t" not in json.dumps(action) and "deployed_version" not in action
    assert "s3cr3t" not in api("GET", f"actions/actions/{action['id']}").text


def test_list_is_paged_with_totals_and_filtered(acme, globex):
    api = Api(acme)
    first = api.create("a1", code_setting("1"))
    api.create("a2", code_setting("2"))
    api.create("a3", code_setting("3"))
    Api(globex).create("theirs", code_setting("x"))
    api("POST", f"actions/actions/{first['id']}/deploy")
    page = api("GET", "actions/actions", page=1, per_page=2).json()
    assert (page["total"], page["page"], page["per_page"]) == (3, 1, 2)
    assert [a["name"] for a in page["actions"]] == ["a3"]
    assert [
        a["name"] for a in api("GET", "actions/actions", actionName="a2").json()["actions"]
    ] == ["a2"]
    deployed = api("GET", "actions/actions", deployed="true").json()["actions"]
    assert [a["name"] for a in deployed] == ["a1"]
    assert api("GET", "actions/actions", triggerId="post-login").json()["total"] == 0
    auth0_error(api("GET", "actions/actions", per_page=101), 400)


def test_deploy_refuses_a_failed_build_with_auth0s_text(acme):
    api = Api(acme)
    action = api.create("broken", "exports.onExecuteCredentialsExchange = (;")
    assert action["status"] == "failed" and action["errors"][0]["msg"]
    error = auth0_error(api("POST", f"actions/actions/{action['id']}/deploy"), 400)
    assert "must be in the 'built' state" in error["message"]
    assert not ActionVersion.objects.exists()


def test_the_flow_configured_through_the_api_reaches_the_token(acme, service):
    api = Api(acme)
    first = api.create("first", code_setting("first"), secrets=[{"name": "KEY", "value": "k1"}])
    second = api.create("second", code_setting("second"))
    for action in (first, second):
        version = api("POST", f"actions/actions/{action['id']}/deploy").json()
        assert (version["number"], version["deployed"], version["status"]) == (1, True, "built")
    response = api(
        "PATCH",
        f"actions/triggers/{TRIGGER}/bindings",
        {
            "bindings": [
                {"ref": {"type": "action_name", "value": "second"}, "display_name": "Second"},
                {"ref": {"type": "action_id", "value": first["id"]}},
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert [b["display_name"] for b in response.json()["bindings"]] == ["Second", "first"]
    listed = api("GET", f"actions/triggers/{TRIGGER}/bindings").json()
    assert [b["action"]["name"] for b in listed["bindings"]] == ["second", "first"]
    assert listed["total"] == 2
    claims = token_claims(acme, service)
    assert claims["https://example.com/v"] == "first"  # the later one wins
    assert claims["https://example.com/key"] == "k1"
    run = HookRun.objects.get(tenant=acme.tenant, execution_id__startswith="ex_")
    execution = api("GET", f"actions/executions/{run.execution_id}").json()
    assert execution["id"] == run.execution_id and execution["status"] == "final"
    assert [r["action_name"] for r in execution["results"]] == ["second", "first"]


def test_draft_versions_and_rollback(acme, service):
    api = Api(acme)
    action = api.create("a", code_setting("v1"))
    api.deploy_and_bind(action)
    updated = api("PATCH", f"actions/actions/{action['id']}", {"code": code_setting("v2")}).json()
    assert updated["all_changes_deployed"] is False
    assert updated["deployed_version"]["number"] == 1
    assert token_claims(acme, service)["https://example.com/v"] == "v1"
    api("POST", f"actions/actions/{action['id']}/deploy")
    assert token_claims(acme, service)["https://example.com/v"] == "v2"
    versions = api("GET", f"actions/actions/{action['id']}/versions").json()
    assert [(v["number"], v["deployed"]) for v in versions["versions"]] == [(2, True), (1, False)]
    first = versions["versions"][1]
    assert api("GET", f"actions/actions/{action['id']}/versions/{first['id']}").json()["code"] == (
        code_setting("v1")
    )
    rolled = api("POST", f"actions/actions/{action['id']}/versions/{first['id']}/deploy", {})
    assert rolled.status_code == 200 and rolled.json()["number"] == 3
    assert token_claims(acme, service)["https://example.com/v"] == "v1"


def test_test_runs_the_draft_on_the_payload(acme):
    api = Api(acme)
    code = """exports.onExecuteCredentialsExchange = async (event, api) => {
  console.log('tier', event.client.metadata.tier);
  api.accessToken.setCustomClaim('https://example.com/tier', event.client.metadata.tier);
};
"""
    action = api.create("t", code)
    response = api(
        "POST",
        f"actions/actions/{action['id']}/test",
        {"payload": {"client": {"client_id": "c", "name": "n", "metadata": {"tier": "gold"}}}},
    )
    assert response.status_code == 200, response.text
    payload = response.json()["payload"]
    assert payload["accessToken"]["customClaims"] == {"https://example.com/tier": "gold"}
    assert "tier gold" in payload["logs"]
    auth0_error(api("POST", f"actions/actions/{action['id']}/test", {"payload": "x"}), 400)


def test_delete_of_a_bound_action_needs_force(acme, globex):
    api = Api(acme)
    action = api.create("bound", code_setting("x"))
    api.deploy_and_bind(action)
    auth0_error(api("DELETE", f"actions/actions/{action['id']}"), 409)
    assert api("DELETE", f"actions/actions/{action['id']}", force="true").status_code == 204
    assert not TriggerBinding.objects.exists() and not Action.objects.exists()
    assert api("GET", f"actions/triggers/{TRIGGER}/bindings").json()["bindings"] == []


def test_triggers_modules_and_the_system_api(acme):
    api = Api(acme)
    triggers = api("GET", "actions/triggers").json()["triggers"]
    assert [(t["id"], t["version"]) for t in triggers] == [(TRIGGER, "v2")]
    assert api("GET", "actions/modules").json() == {
        "modules": [],
        "total": 0,
        "page": 0,
        "per_page": 50,
    }
    listed = api("GET", "resource-servers").json()
    system = [rs for rs in listed if rs["identifier"] == acme.api_url]
    assert system and system[0]["is_system"] is True
    scopes = {s["value"] for s in system[0]["scopes"]}
    assert {"read:actions", "create:actions", "update:actions", "delete:actions"} <= scopes


def test_writes_are_audited_as_the_management_client(acme):
    api = Api(acme)
    action = api.create(
        "audited", code_setting("x"), secrets=[{"name": "KEY", "value": "zz-hidden"}]
    )
    api.deploy_and_bind(action)
    entries = AuditEntry.objects.filter(tenant=acme.tenant, object_type__in=["action", "trigger"])
    assert list(entries.order_by("id").values_list("action", "actor_id")) == [
        ("create", acme.client_id),
        ("deploy", acme.client_id),
        ("bindings.replace", acme.client_id),
    ]
    assert "zz-hidden" not in json.dumps(list(entries.values_list("before", "after")))


# ---- hostile input ----------------------------------------------------------------------


def bindings_of(n: int, value: str = "a") -> dict:
    return {"bindings": [{"ref": {"type": "action_name", "value": value}}] * n}


def test_unknown_trigger_is_refused(acme):
    api = Api(acme)
    auth0_error(api("GET", "actions/triggers/post-login/bindings"), 404)
    auth0_error(api("PATCH", "actions/triggers/post-login/bindings", {"bindings": []}), 404)
    body = {"name": "x", "code": code_setting("x"), "supported_triggers": [{"id": "post-login"}]}
    auth0_error(api("POST", "actions/actions", body), 400)
    body["supported_triggers"] = [{"id": TRIGGER, "version": "v1"}]
    auth0_error(api("POST", "actions/actions", body), 400)
    assert not Action.objects.exists()


def test_too_many_bindings_are_refused_and_nothing_is_written(acme):
    api = Api(acme)
    for i in range(21):
        action = api.create(f"a{i}", code_setting(str(i)))
        api("POST", f"actions/actions/{action['id']}/deploy")
    too_many = {"bindings": [{"ref": {"type": "action_name", "value": f"a{i}"}} for i in range(21)]}
    error = auth0_error(api("PATCH", f"actions/triggers/{TRIGGER}/bindings", too_many), 400)
    assert "at most 20" in error["message"]
    auth0_error(api("PATCH", f"actions/triggers/{TRIGGER}/bindings", bindings_of(101, "a0")), 400)
    auth0_error(api("PATCH", f"actions/triggers/{TRIGGER}/bindings", bindings_of(2, "a0")), 400)
    assert not TriggerBinding.objects.exists()
    too_many["bindings"] = too_many["bindings"][:20]
    assert api("PATCH", f"actions/triggers/{TRIGGER}/bindings", too_many).status_code == 200


def test_another_tenants_action_cannot_be_bound(acme, globex):
    theirs = Api(globex).create("theirs", code_setting("x"))
    Api(globex)("POST", f"actions/actions/{theirs['id']}/deploy")
    api = Api(acme)
    for ref in (
        {"type": "action_id", "value": theirs["id"]},
        {"type": "action_name", "value": "theirs"},
    ):
        auth0_error(
            api("PATCH", f"actions/triggers/{TRIGGER}/bindings", {"bindings": [{"ref": ref}]}), 404
        )
    assert not TriggerBinding.objects.exists()
    auth0_error(api("GET", f"actions/actions/{theirs['id']}"), 404)


def test_a_200_kb_script_is_refused(acme):
    api = Api(acme)
    code = "// " + "x" * 200_000 + "\n" + code_setting("x")
    body = {"name": "big", "code": code, "supported_triggers": TRIGGERS}
    error = auth0_error(api("POST", "actions/actions", body), 400)
    assert error["message"] == "The code is larger than 100000 bytes."
    assert not Action.objects.exists()
    small = api.create("small", code_setting("x"))
    auth0_error(api("PATCH", f"actions/actions/{small['id']}", {"code": code}), 400)
    assert Action.objects.get().code == code_setting("x")


def test_secrets_over_auth0s_limits_are_refused(acme):
    api = Api(acme)
    body = {
        "name": "s",
        "code": code_setting("x"),
        "supported_triggers": TRIGGERS,
        "secrets": [{"name": f"S{i}", "value": "v"} for i in range(31)],
    }
    auth0_error(api("POST", "actions/actions", body), 400)
    body["secrets"] = [{"name": "S", "value": "v" * 4097}]
    auth0_error(api("POST", "actions/actions", body), 400)
    body["secrets"] = [{"name": "bad name!", "value": "v"}]
    auth0_error(api("POST", "actions/actions", body), 400)
    body["secrets"] = [{"name": "N" * 129, "value": "v"}]
    auth0_error(api("POST", "actions/actions", body), 400)
    body["dependencies"] = [{"name": f"d{i}", "version": "1"} for i in range(11)]
    body["secrets"] = []
    auth0_error(api("POST", "actions/actions", body), 400)
    assert not Action.objects.exists()


def test_names_are_unique_per_tenant(acme, globex):
    Api(globex).create("same", code_setting("x"))
    api = Api(acme)
    api.create("same", code_setting("x"))
    body = {"name": "same", "code": code_setting("x"), "supported_triggers": TRIGGERS}
    assert auth0_error(api("POST", "actions/actions", body), 409)["errorCode"] == "action_conflict"


# ---- auth0-python -------------------------------------------------------------------------


def test_auth0_python_round_trip(acme, service):
    domain = acme.tenant.issuer.removeprefix("http://").rstrip("/")
    actions = Actions(domain, acme.token(), protocol="http")
    action = actions.create_action(
        {
            "name": "sdk",
            "code": code_setting("v1"),
            "supported_triggers": TRIGGERS,
            "runtime": "node18",
            "secrets": [{"name": "KEY", "value": "sdk-key"}],
        }
    )
    assert actions.get_action(action["id"])["status"] == "built"
    actions.deploy_action(action["id"])
    actions.update_trigger_bindings(
        TRIGGER, {"bindings": [{"ref": {"type": "action_id", "value": action["id"]}}]}
    )
    assert [b["action"]["id"] for b in actions.get_trigger_bindings(TRIGGER)["bindings"]] == [
        action["id"]
    ]
    claims = token_claims(acme, service)
    assert (claims["https://example.com/v"], claims["https://example.com/key"]) == ("v1", "sdk-key")
    actions.update_action(action["id"], {"code": code_setting("v2")})
    actions.deploy_action(action["id"])
    assert token_claims(acme, service)["https://example.com/v"] == "v2"
    versions = actions.get_action_versions(action["id"])["versions"]
    first = next(v for v in versions if v["number"] == 1)
    assert actions.get_action_version(action["id"], first["id"])["deployed"] is False
    actions.rollback_action_version(action["id"], first["id"])
    assert token_claims(acme, service)["https://example.com/v"] == "v1"
    listed = actions.get_actions(trigger_id=TRIGGER, deployed=True)
    assert [a["name"] for a in listed["actions"]] == ["sdk"] and listed["total"] == 1
    assert actions.get_triggers()["triggers"][0]["id"] == TRIGGER
    # auth0-python 4 has no method for /test: its own REST client calls it.
    tested = actions.client.post(
        actions._url("actions", action["id"], "test"),
        data={"payload": {"secrets": {}}},
    )
    assert tested["payload"]["accessToken"]["customClaims"]["https://example.com/v"] == "v2"
    run = HookRun.objects.filter(tenant=acme.tenant, execution_id__startswith="ex_").first()
    assert run is not None and actions.get_execution(run.execution_id)["results"]
    actions.delete_action(action["id"], force=True)
    assert actions.get_actions()["total"] == 0
    assert not TriggerBinding.objects.exists()
