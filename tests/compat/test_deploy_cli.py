"""auth0-deploy-cli (``a0deploy``), run as a process the way its docs show,
against Tessera over TLS: import a directory and a YAML tenant, get a token
for what it imported, export it back, import again and change nothing."""

import json
import subprocess
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from tests.compat.conftest import COMPAT_DIR, TlsTenant, node_library, require_node_library

LIBRARY = node_library("auth0-deploy-cli")
A0DEPLOY = COMPAT_DIR / "node_modules" / ".bin" / "a0deploy"
DEPLOY_TIMEOUT = 600  # seconds: the CLI compiles its whole schema (a CPU minute), retries on errors
INCLUDED_ONLY = ["resourceServers", "clients", "clientGrants", "actions", "triggers", "hooks"]
AUDIENCE = "https://api.deploy.test/"
CLAIM = "https://deploy.test/plan"
ACTION_CLAIM = "https://deploy.test/action"
# A legacy credentials-exchange Hook, as Auth0's docs write one.
HOOK = f"""module.exports = function (client, scope, audience, context, cb) {{
  var access_token = {{}};
  access_token.scope = scope;
  if (client.metadata.plan) {{
    access_token["{CLAIM}"] = client.metadata.plan;
  }}
  cb(null, access_token);
}};
"""
ACTION = f"""exports.onExecuteCredentialsExchange = async (event, api) => {{
  api.accessToken.setCustomClaim("{ACTION_CLAIM}", event.client.metadata.plan);
}};
"""
API = {
    "name": "Deploy API",
    "identifier": AUDIENCE,
    "scopes": [
        {"value": "read:data", "description": "Read data"},
        {"value": "write:data", "description": "Write data"},
    ],
    "signing_alg": "RS256",
    "token_lifetime": 3600,
}
CLIENT = {
    "name": "Deploy Worker",
    "app_type": "non_interactive",
    "grant_types": ["client_credentials"],
    "token_endpoint_auth_method": "client_secret_post",
    "client_metadata": {"plan": "gold"},
}
GRANT = {"client_id": "Deploy Worker", "audience": AUDIENCE, "scope": ["read:data"]}
HOOK_ASSET = {
    "name": "plan-claim",
    "triggerId": "credentials-exchange",
    "enabled": True,
    "secrets": {},
    "dependencies": {},
}

ACTION_ASSET = {
    "name": "plan-action",
    "code": "./actions/plan-action/code.js",
    "runtime": "node22",
    "dependencies": [],
    "secrets": [],
    "supported_triggers": [{"id": "credentials-exchange", "version": "v2"}],
    "deployed": True,
}
TRIGGERS = {"credentials-exchange": [{"action_name": "plan-action", "display_name": "plan"}]}


def a0deploy(tenant: TlsTenant, *args: str, **config: Any) -> subprocess.CompletedProcess:
    """``a0deploy ARGS --config_file …`` with the tenant's management client."""
    require_node_library("auth0-deploy-cli")
    config_file = tenant.server.root / f"{tenant.slug}-config.json"
    config_file.write_text(
        json.dumps(
            {
                "AUTH0_DOMAIN": tenant.domain,
                "AUTH0_CLIENT_ID": tenant.client_id,
                "AUTH0_CLIENT_SECRET": tenant.client_secret,
                "AUTH0_INCLUDED_ONLY": INCLUDED_ONLY,
                **config,
            }
        )
    )
    done = subprocess.run(
        [str(A0DEPLOY), *args, "--config_file", str(config_file)],
        cwd=COMPAT_DIR,
        env=tenant.server.node_env(),
        capture_output=True,
        text=True,
        timeout=DEPLOY_TIMEOUT,
        check=False,
    )
    return done


def output(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n{done.stdout[-6000:]}\n{done.stderr[-4000:]}"


def write_directory(root: Path, with_action: bool = False) -> Path:
    """Auth0's directory format: one JSON file per object, scripts beside them."""
    root.mkdir()
    for folder, name, body in (
        ("resource-servers", "Deploy API", API),
        ("clients", "Deploy Worker", CLIENT),
        ("grants", "Deploy Worker-api", GRANT),
        ("hooks", "plan-claim", {**HOOK_ASSET, "script": "./plan-claim.js"}),
    ):
        (root / folder).mkdir(exist_ok=True)
        (root / folder / f"{name}.json").write_text(json.dumps(body, indent=2))
    (root / "hooks" / "plan-claim.js").write_text(HOOK)
    if with_action:
        (root / "actions" / "plan-action").mkdir(parents=True)
        (root / "actions" / "plan-action" / "code.js").write_text(ACTION)
        (root / "actions" / "plan-action.json").write_text(json.dumps(ACTION_ASSET, indent=2))
        (root / "triggers").mkdir()
        (root / "triggers" / "triggers.json").write_text(json.dumps(TRIGGERS, indent=2))
    return root


def write_yaml(root: Path) -> Path:
    """Auth0's YAML format: one tenant.yaml, scripts in folders beside it."""
    root.mkdir()
    (root / "hooks").mkdir()
    (root / "hooks" / "plan-claim.js").write_text(HOOK)
    tenant = {
        "resourceServers": [API],
        "clients": [CLIENT],
        "clientGrants": [GRANT],
        "hooks": [{**HOOK_ASSET, "script": "./hooks/plan-claim.js"}],
    }
    path = root / "tenant.yaml"
    path.write_text(yaml.safe_dump(tenant, sort_keys=False))
    return path


def assert_ok(done: subprocess.CompletedProcess, library: str) -> str:
    """The CLI's output, once it exited 0 and proposed no deletion."""
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"{library}: {output(done)}"
    # Only the input's objects are planned: the built-in Management API (and
    # the CLI's own client) are neither proposed for deletion nor deleted.
    assert "should be deleted" not in log, f"{library}: {output(done)}"
    return log


def state(tenant: TlsTenant, with_actions: bool = False) -> dict[str, Any]:
    """What the Management API shows of everything the CLI manages."""
    hooks = tenant.get("hooks")
    actions = {}
    if with_actions:
        actions = {
            "actions": tenant.get("actions/actions"),
            "bindings": tenant.get("actions/triggers/credentials-exchange/bindings"),
        }
    return {
        **actions,
        "resource_servers": tenant.get("resource-servers"),
        "clients": tenant.get("clients"),
        "client_grants": tenant.get("client-grants"),
        "hooks": hooks,
        "hook_secrets": {hook["id"]: tenant.get(f"hooks/{hook['id']}/secrets") for hook in hooks},
    }


def named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matches = [item for item in items if item["name"] == name]
    assert len(matches) == 1, f"{name!r} in {items}"
    return matches[0]


def assert_imported(tenant: TlsTenant, library: str) -> None:
    """The input's objects exist as the input says; the worker gets a token
    for the API carrying the hook's claim."""
    now = state(tenant)
    api = named(now["resource_servers"], "Deploy API")
    assert api["identifier"] == AUDIENCE, library
    assert api["scopes"] == API["scopes"], library
    assert api["token_lifetime"] == 3600, library
    system = named(now["resource_servers"], "Auth0 Management API")
    assert (system["is_system"], system["identifier"]) == (True, tenant.audience), library
    worker = named(now["clients"], "Deploy Worker")
    assert worker["client_metadata"] == {"plan": "gold"}, library
    grants = [g for g in now["client_grants"] if g["client_id"] == worker["client_id"]]
    assert [(g["audience"], g["scope"]) for g in grants] == [(AUDIENCE, ["read:data"])], library
    hook = named(now["hooks"], "plan-claim")
    assert (hook["triggerId"], hook["enabled"], hook["script"]) == (
        "credentials-exchange",
        True,
        HOOK,
    ), library

    rotated = tenant.api("POST", f"clients/{worker['client_id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    response = tenant.token(worker["client_id"], rotated.json()["client_secret"], AUDIENCE)
    assert response.status_code == 200, f"{library}: {response.text}"
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert (claims[CLAIM], claims["scope"], claims["iss"]) == ("gold", "read:data", tenant.issuer)


def changed(before: Any, after: Any, where: str = "") -> list[str]:
    """Each leaf that differs, as ``path: before -> after``."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            difference
            for key in sorted(before.keys() | after.keys(), key=str)
            for difference in changed(before.get(key), after.get(key), f"{where}.{key}")
        ]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d
            for n, pair in enumerate(zip(before, after, strict=True))
            for d in changed(*pair, f"{where}[{n}]")
        ]
    return [] if before == after else [f"{where}: {before!r} -> {after!r}"]


def assert_reimport_changes_nothing(
    tenant: TlsTenant, library: str, source: Path, with_actions: bool = False
) -> None:
    """The same input again, deletes allowed: it succeeds, every object is
    as it was and the audit trail has no new entry."""
    before, audit_before = state(tenant, with_actions), tenant.audit()
    log = assert_ok(
        a0deploy(tenant, "import", "--input_file", str(source), AUTH0_ALLOW_DELETE=True), library
    )
    assert "Import Successful" in log, library
    differences = changed(before, state(tenant, with_actions))
    assert differences == [], f"{library}: the second import changed {differences}"
    new_entries = tenant.audit()[len(audit_before) :]
    assert new_entries == [], f"{library}: the second import changed {new_entries}"


@pytest.mark.parametrize("library", [LIBRARY])
def test_import_export_reimport_directory(tls_tessera, library, tmp_path):
    tenant = tls_tessera.tenant("dir")
    other = tls_tessera.tenant("dir-other")
    other_before = state(other)
    source = write_directory(tmp_path / "in")

    assert_ok(a0deploy(tenant, "import", "--input_file", str(source)), library)
    assert_imported(tenant, library)
    assert state(other) == other_before, f"{library} changed another tenant"

    exported = tmp_path / "out"
    done = a0deploy(tenant, "export", "--format", "directory", "--output_folder", str(exported))
    assert done.returncode == 0, f"{library}: {output(done)}"

    def read(name: str) -> Any:
        return json.loads((exported / name).read_text())

    assert [p.name for p in (exported / "resource-servers").iterdir()] == ["Deploy API.json"]
    assert read("resource-servers/Deploy API.json") | {"is_system": False} == {
        **API,
        "is_system": False,
    }, library
    client = read("clients/Deploy Worker.json")
    assert client["client_metadata"] == {"plan": "gold"}, library
    assert client["grant_types"] == ["client_credentials"], library
    assert read("grants/Deploy Worker-Deploy API.json") == GRANT, library
    hook = read("hooks/plan-claim.json")
    assert {k: hook[k] for k in ("name", "triggerId", "enabled")} == {
        "name": "plan-claim",
        "triggerId": "credentials-exchange",
        "enabled": True,
    }, library
    assert (exported / "hooks" / hook["script"]).read_text() == HOOK, library

    assert_reimport_changes_nothing(tenant, library, source)


@pytest.mark.parametrize("library", [LIBRARY])
def test_import_export_reimport_yaml(tls_tessera, library, tmp_path):
    tenant = tls_tessera.tenant("yaml")
    source = write_yaml(tmp_path / "in")

    assert_ok(a0deploy(tenant, "import", "--input_file", str(source)), library)
    assert_imported(tenant, library)

    exported = tmp_path / "out"
    done = a0deploy(tenant, "export", "--format", "yaml", "--output_folder", str(exported))
    assert done.returncode == 0, f"{library}: {output(done)}"
    dumped = yaml.safe_load((exported / "tenant.yaml").read_text())
    assert [rs["name"] for rs in dumped["resourceServers"]] == ["Deploy API"], library
    assert named(dumped["resourceServers"], "Deploy API")["scopes"] == API["scopes"], library
    assert named(dumped["clients"], "Deploy Worker")["client_metadata"] == {"plan": "gold"}
    assert [g for g in dumped["clientGrants"] if g["client_id"] == "Deploy Worker"] == [GRANT]
    hook = named(dumped["hooks"], "plan-claim")
    assert (hook["triggerId"], hook["enabled"]) == ("credentials-exchange", True), library
    assert (exported / hook["script"]).read_text() == HOOK, library

    assert_reimport_changes_nothing(tenant, library, source)


@pytest.mark.parametrize("library", [LIBRARY])
def test_import_export_reimport_action_with_triggers(tls_tessera, library, tmp_path):
    tenant = tls_tessera.tenant("actions")
    other = tls_tessera.tenant("actions-other")
    source = write_directory(tmp_path / "in", with_action=True)

    assert_ok(a0deploy(tenant, "import", "--input_file", str(source)), library)
    actions = tenant.get("actions/actions")["actions"]
    assert [(a["name"], a["all_changes_deployed"]) for a in actions] == [("plan-action", True)]
    bindings = tenant.get("actions/triggers/credentials-exchange/bindings")["bindings"]
    assert [(b["action"]["name"], b["display_name"]) for b in bindings] == [
        ("plan-action", "plan")
    ], library
    assert other.get("actions/actions")["actions"] == [], library
    worker = named(tenant.get("clients"), "Deploy Worker")
    secret = tenant.api("POST", f"clients/{worker['client_id']}/rotate-secret").json()
    response = tenant.token(worker["client_id"], secret["client_secret"], AUDIENCE)
    assert response.status_code == 200, f"{library}: {response.text}"
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert (claims[CLAIM], claims[ACTION_CLAIM]) == ("gold", "gold"), library  # hook, then action

    exported = tmp_path / "out"
    done = a0deploy(tenant, "export", "--format", "directory", "--output_folder", str(exported))
    assert done.returncode == 0, f"{library}: {output(done)}"
    action = json.loads((exported / "actions" / "plan-action.json").read_text())
    assert (action["deployed"], action["supported_triggers"]) == (
        True,
        ACTION_ASSET["supported_triggers"],
    ), library
    assert (exported / action["code"]).read_text() == ACTION, library
    assert json.loads((exported / "triggers" / "triggers.json").read_text()) == TRIGGERS

    assert_reimport_changes_nothing(tenant, library, source, with_actions=True)
