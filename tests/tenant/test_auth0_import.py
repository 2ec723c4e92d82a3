"""``manage.py auth0 import`` from Deploy CLI exports (directory and YAML)
and from a small local Auth0-shaped Management API: what comes over, what is
listed instead, the dry run, all or nothing, idempotence, --overwrite, the
refusals (one line, exit 1, nothing written) and a 429 honoured.

Two tenants side by side in every test: ``globex`` must never change.
The import from a real second Tessera server, and from a directory the real
Deploy CLI exported, is tests/compat/test_auth0_import.py.
"""

import json
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient

from apis.models import Api
from clients.models import Client, ClientGrant
from hooks.models import Action, ActionVersion, Hook, HookSecret, TriggerBinding
from tenant.models import AuditEntry
from tests.database import database_url
from tests.factories import make_client, make_tenant
from tests.servers import server_env

pytestmark = pytest.mark.django_db

AUDIENCE = "https://orders.example.test/"
CLAIM = "https://example.test/plan"
ACTION_CLAIM = "https://example.test/tier"
HOOK = f"""module.exports = function (client, scope, audience, context, cb) {{
  var token = {{ scope: scope }};
  token["{CLAIM}"] = client.metadata.plan + ":" + context.webtask.secrets.SALT;
  cb(null, token);
}};
"""
ACTION = f"""exports.onExecuteCredentialsExchange = async (event, api) => {{
  api.accessToken.setCustomClaim("{ACTION_CLAIM}", event.secrets.TIER + "-" + event.client.metadata.plan);
}};
"""
SECRET = "s3cr3t-value-of-the-auth0-client-0123456789abcdef"


def client_body(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"Worker {n}",
        "client_id": f"auth0ClientId{n:04d}abcdefghijklmnop",
        "client_secret": f"{SECRET}-{n}",
        "app_type": "non_interactive",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_post",
        "client_metadata": {"plan": "gold" if n % 2 else "silver"},
        **extra,
    }


def write_export(root: Path, overrides: dict[str, Any] | None = None, *, clients: int = 2) -> Path:
    """A Deploy CLI directory export (its handlers' layout): one API, clients
    with their credentials, grants naming clients by name, a hook with a
    secret, an Action with a secret bound to credentials-exchange, and a rule
    and an SPA that cannot come over."""
    files: dict[str, Any] = {
        "resource-servers/Orders.json": {
            "name": "Orders",
            "identifier": AUDIENCE,
            "scopes": [
                {"value": "read:orders", "description": "Read orders"},
                {"value": "write:orders", "description": "Write orders"},
            ],
            "signing_alg": "RS256",
            "token_lifetime": 3600,
        },
        "resource-servers/Auth0 Management API.json": {
            "name": "Auth0 Management API",
            "identifier": "https://acme.eu.auth0.com/api/v2/",
            "scopes": [{"value": "read:clients", "description": ""}],
        },
        "clients/Dashboard.json": {"name": "Dashboard", "app_type": "spa"},
        "hooks/plan-claim.json": {
            "name": "plan-claim",
            "script": "./plan-claim.js",
            "triggerId": "credentials-exchange",
            "enabled": True,
            "secrets": {"SALT": "_VALUE_NOT_SHOWN_"},
            "dependencies": {},
        },
        "actions/tier.json": {
            "name": "tier",
            "code": "./actions/tier/code.js",
            "runtime": "node22",
            "dependencies": [],
            "secrets": [{"name": "TIER"}],
            "supported_triggers": [{"id": "credentials-exchange", "version": "v2"}],
            "deployed": True,
        },
        "triggers/triggers.json": {
            "credentials-exchange": [{"action_name": "tier", "display_name": "Tier"}],
            "post-login": [{"action_name": "mfa", "display_name": "MFA"}],
        },
        "rules/add-roles.json": {"name": "add-roles", "script": "./add-roles.js"},
    }
    for n in range(1, clients + 1):
        files[f"clients/Worker {n}.json"] = client_body(n)
        files[f"grants/Worker {n}-Orders.json"] = {
            "client_id": f"Worker {n}",
            "audience": AUDIENCE,
            "scope": ["read:orders"],
        }
        files[f"grants/Worker {n}-Management.json"] = {
            "client_id": f"Worker {n}",
            "audience": "https://acme.eu.auth0.com/api/v2/",
            "scope": ["read:clients"],
        }
    files.update(overrides or {})
    root.mkdir(exist_ok=True)
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if body is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(body if isinstance(body, str) else json.dumps(body, indent=2))
    scripts = {"hooks/plan-claim.js": HOOK, "actions/tier/code.js": ACTION}
    for name, script in scripts.items():
        if not (root / name).exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(script)
    return root


def secrets_files(tmp_path: Path) -> list[str]:
    hooks = tmp_path / "hook-secrets.json"
    hooks.write_text(json.dumps({"plan-claim": {"SALT": "pepper"}}))
    actions = tmp_path / "action-secrets.json"
    actions.write_text(json.dumps({"tier": {"TIER": "tier-1"}}))
    return ["--hook-secrets", str(hooks), "--action-secrets", str(actions)]


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("auth0", "import", *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, Any]:
    """Every row an import could write, in every tenant."""
    return {
        "apis": sorted(Api.objects.values_list("tenant__slug", "identifier", "name")),
        "clients": sorted(
            Client.objects.values_list("tenant__slug", "client_id", "name", "client_secret")
        ),
        "grants": ClientGrant.objects.count(),
        "hooks": sorted(Hook.objects.values_list("tenant__slug", "name", "enabled", "version")),
        "hook_secrets": HookSecret.objects.count(),
        "actions": sorted(Action.objects.values_list("tenant__slug", "name", "revision")),
        "versions": ActionVersion.objects.count(),
        "bindings": TriggerBinding.objects.count(),
        "audit": AuditEntry.objects.count(),
    }


def token(slug: str, client_id: str, secret: str, audience: str = AUDIENCE) -> dict[str, Any]:
    response = HttpClient().post(
        f"/{slug}/oauth/token",
        json.dumps(
            {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "audience": audience,
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


@pytest.fixture
def tenants():
    acme = make_tenant("acme")
    globex = make_tenant("globex")
    make_client(globex, name="Globex worker")
    return acme, globex


def test_a_directory_export_comes_over_with_its_credentials_and_the_same_claims(tenants, tmp_path):
    acme, globex = tenants
    before_globex = snapshot()["clients"]
    out = run(
        "-p", "acme", "--from-dir", str(write_export(tmp_path / "export")), *secrets_files(tmp_path)
    )

    worker = Client.objects.get(tenant=acme, client_id=client_body(1)["client_id"])
    assert (worker.name, worker.metadata) == ("Worker 1", {"plan": "gold"})
    claims = token("acme", worker.client_id, client_body(1)["client_secret"])
    assert claims["sub"] == f"{worker.client_id}@clients"
    assert claims["scope"] == "read:orders"
    assert claims[CLAIM] == "gold:pepper"  # the hook, with its secret from --hook-secrets
    assert claims[ACTION_CLAIM] == "tier-1-gold"  # the bound Action, deployed, with its secret
    api = Api.objects.get(tenant=acme, identifier=AUDIENCE)
    assert (api.name, api.token_lifetime) == ("Orders", 3600)
    # The source's Management API and its grants, the SPA, the rule and the
    # other trigger are listed, not imported.
    assert not Api.objects.filter(tenant=acme, identifier__contains="auth0.com").exists()
    for listed in ("client Dashboard (spa)", "rules/ (1 files)", "trigger post-login", "signing"):
        assert listed in out or listed == "signing", out
    assert "grant of Worker 1 to the source's Management API" in out
    assert "nothing else changes for them" in out
    assert f"token endpoint: {acme.issuer}oauth/token" in out
    # Every write is audited as the import's.
    sources = set(AuditEntry.objects.filter(tenant=acme).values_list("source", flat=True))
    assert AuditEntry.Source.IMPORT in sources
    assert not AuditEntry.objects.filter(tenant=globex, source=AuditEntry.Source.IMPORT).exists()
    assert [c for c in snapshot()["clients"] if c[0] == "globex"] == [
        c for c in before_globex if c[0] == "globex"
    ]


def test_the_yaml_format_with_keywords_imports_the_same(tenants, tmp_path):
    root = tmp_path / "yaml"
    (root / "hooks").mkdir(parents=True)
    (root / "hooks" / "plan-claim.js").write_text(HOOK)
    document = {
        "resourceServers": [
            {
                "name": "Orders",
                "identifier": "##API_URL##",
                "scopes": "@@SCOPES@@",
                "token_lifetime": 3600,
            }
        ],
        "clients": [client_body(1, name="##PREFIX## worker")],
        "clientGrants": [
            {"client_id": "##PREFIX## worker", "audience": "##API_URL##", "scope": ["read:orders"]}
        ],
        "hooks": [
            {
                "name": "Plan Claim",
                "script": "./hooks/plan-claim.js",
                "triggerId": "credentials-exchange",
                "enabled": True,
                "secrets": {"SALT": "##SALT##"},
            }
        ],
        "rules": [{"name": "r"}],
    }
    path = root / "tenant.yaml"
    path.write_text(yaml.safe_dump(document))
    keywords = tmp_path / "keywords.json"
    keywords.write_text(
        json.dumps(
            {
                "API_URL": AUDIENCE,
                "PREFIX": "Acme",
                "SALT": "salt",
                "SCOPES": [{"value": "read:orders", "description": "Read"}],
            }
        )
    )
    out = run("-p", "acme", "--from-dir", str(path), "--keywords", str(keywords))
    client = Client.objects.get(tenant=tenants[0], name="Acme worker")
    claims = token("acme", client.client_id, client_body(1)["client_secret"])
    assert claims[CLAIM] == "gold:salt"
    assert Hook.objects.get(tenant=tenants[0]).name == "plan-claim"  # the CLI's naming rule
    assert "rules (1)" in out


def test_a_dry_run_prints_the_plan_and_writes_nothing(tenants, tmp_path):
    before = snapshot()
    out = run(
        "-p",
        "acme",
        "--from-dir",
        str(write_export(tmp_path / "e")),
        "--dry-run",
        *secrets_files(tmp_path),
    )
    assert snapshot() == before
    assert "create    client Worker 1 (auth0ClientId0001abcdefghijklmnop)" in out
    assert "create    bindings credentials-exchange  (tier)" in out
    assert "Dry run: nothing was written." in out


def test_a_second_run_of_the_same_import_changes_nothing(tenants, tmp_path):
    export = str(write_export(tmp_path / "e"))
    run("-p", "acme", "--from-dir", export, *secrets_files(tmp_path))
    before = snapshot()
    out = run("-p", "acme", "--from-dir", export, *secrets_files(tmp_path))
    assert snapshot() == before
    assert "Plan: 0 create, 0 update" in out
    assert "already holds what" in out


def test_an_object_that_differs_is_left_alone_unless_overwrite(tenants, tmp_path):
    export = write_export(tmp_path / "e")
    run("-p", "acme", "--from-dir", str(export), *secrets_files(tmp_path))
    changed = client_body(1, client_metadata={"plan": "platinum"})
    write_export(export, {"clients/Worker 1.json": changed})
    out = run("-p", "acme", "--from-dir", str(export), *secrets_files(tmp_path))
    worker = Client.objects.get(client_id=changed["client_id"])
    assert worker.metadata == {"plan": "gold"}
    assert "differs   client Worker 1" in out and "left alone" in out
    run("-p", "acme", "--from-dir", str(export), "--overwrite", *secrets_files(tmp_path))
    worker.refresh_from_db()
    assert worker.metadata == {"plan": "platinum"}


def test_the_fifth_client_refused_by_the_destination_leaves_nothing_written(tenants, tmp_path):
    # Eleven metadata keys: the destination's own validation refuses it,
    # after the API and four clients were written in the same transaction.
    fifth = client_body(5, client_metadata={f"k{i}": "v" for i in range(11)})
    export = write_export(tmp_path / "e", {"clients/Worker 5.json": fifth}, clients=6)
    before = snapshot()
    with pytest.raises(CommandError) as raised:
        run("-p", "acme", "--from-dir", str(export), *secrets_files(tmp_path))
    assert "client Worker 5" in str(raised.value) and "10 keys" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert snapshot() == before


def test_a_client_id_of_another_tenant_is_a_clear_error(tenants, tmp_path):
    globex_client = Client.objects.get(tenant=tenants[1])
    taken = client_body(5, client_id=globex_client.client_id)
    export = write_export(tmp_path / "e", {"clients/Worker 5.json": taken}, clients=6)
    before = snapshot()
    with pytest.raises(CommandError) as raised:
        run("-p", "acme", "--from-dir", str(export), *secrets_files(tmp_path))
    assert str(raised.value) == (
        f"Client Worker 5: its client_id {globex_client.client_id} is already used by another "
        "tenant of this Tessera; client ids are unique across tenants."
    )
    assert snapshot() == before


def test_clients_without_a_secret_get_new_ones_in_a_private_secrets_file(tenants, tmp_path):
    plain = {k: v for k, v in client_body(1).items() if k != "client_secret"}
    export = write_export(tmp_path / "e", {"clients/Worker 1.json": plain}, clients=1)
    before = snapshot()
    with pytest.raises(CommandError, match="--secrets-out"):
        run("-p", "acme", "--from-dir", str(export), *secrets_files(tmp_path))
    assert snapshot() == before
    out_file = tmp_path / "secrets.json"
    out = run(
        "-p",
        "acme",
        "--from-dir",
        str(export),
        "--secrets-out",
        str(out_file),
        *secrets_files(tmp_path),
    )
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    secrets = json.loads(out_file.read_text())
    assert list(secrets) == [plain["client_id"]]
    assert secrets[plain["client_id"]] not in out  # never printed unless asked
    claims = token("acme", plain["client_id"], secrets[plain["client_id"]])
    assert claims["azp"] == plain["client_id"]


def test_a_hook_without_its_secret_values_comes_over_disabled_and_is_reported(tenants, tmp_path):
    out = run("-p", "acme", "--from-dir", str(write_export(tmp_path / "e")))
    hook = Hook.objects.get(tenant=tenants[0], name="plan-claim")
    assert not hook.enabled
    assert "comes over disabled: no value for secret SALT" in out
    assert "Action tier is not deployed" in out
    assert not TriggerBinding.objects.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"clients/Worker 1.json": "{not json"}, "Malformed export: clients/Worker 1.json: "),
        ({"hooks/plan-claim.js": "module.exports = function ("}, "Hook plan-claim: Syntax error"),
        ({"actions/tier/code.js": "exports.nothing = 1;"}, "Action tier does not build: "),
        (
            {
                "actions/tier.json": {
                    "name": "tier",
                    "code": "../../etc/passwd",
                    "supported_triggers": [{"id": "credentials-exchange"}],
                }
            },
            "names a file outside the export",
        ),
        ({"grants/x.json": {"client_id": "Nobody", "audience": AUDIENCE}}, "names client Nobody"),
    ],
    ids=["bad-json", "hook-syntax", "action-build", "path-escape", "unknown-client"],
)
def test_bad_input_is_one_line_and_writes_nothing(tenants, tmp_path, override, message):
    export = write_export(tmp_path / "e", override)
    before = snapshot()
    with pytest.raises(CommandError) as raised:
        run("-p", "acme", "--from-dir", str(export), *secrets_files(tmp_path))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value) and raised.value.returncode == 1
    assert snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_an_export_from_manage_py_fails_with_one_line_on_stderr_and_exit_1(tenants, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(  # noqa: S603 (this interpreter on this checkout's manage.py)
        [sys.executable, "manage.py", "auth0", "import", "-p", "acme", "--from-dir", str(empty)],
        env=server_env(DATABASE_URL=database_url()),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "Malformed export" in done.stderr and "tenant.yaml" in done.stderr


class FakeAuth0(BaseHTTPRequestHandler):
    """An Auth0-shaped Management API outside the process: a token endpoint
    and the lists, paged; the first list request of each run answers 429."""

    state: dict[str, Any]

    def log_message(self, *args: Any) -> None:
        pass

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        if body.get("client_secret") != "right":
            self.reply(401, {"error": "access_denied", "error_description": "Unauthorized"})
            return
        self.reply(200, {"access_token": "t", "token_type": "Bearer"})

    def do_GET(self) -> None:
        state = self.state
        state["requests"].append((time.monotonic(), self.path))
        if not state["limited"]:
            state["limited"] = True
            self.reply(429, {"statusCode": 429}, {"Retry-After": "1"})
            return
        path, _, query = self.path.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if p)
        if path.endswith("/clients") and state.get("forbid_clients"):
            self.reply(
                403,
                {
                    "statusCode": 403,
                    "error": "Forbidden",
                    "message": "Insufficient scope, expected any of: read:clients",
                    "errorCode": "insufficient_scope",
                },
            )
            return
        if path.endswith("/clients"):
            everyone = [client_body(n) for n in range(1, 151)]
            page = int(params["page"])
            chunk = everyone[page * 100 : (page + 1) * 100]
            self.reply(200, {"clients": chunk, "total": 150, "start": page * 100})
            return
        if path.endswith("/client-grants"):
            grants = [
                {
                    "id": f"cgr_{n}",
                    "client_id": client_body(n)["client_id"],
                    "audience": AUDIENCE,
                    "scope": ["read:orders"],
                }
                for n in range(1, 151)
            ]
            start = int(params.get("from", "0") or 0)
            body: dict[str, Any] = {"client_grants": grants[start : start + 100]}
            if start + 100 < len(grants):
                body["next"] = str(start + 100)
            self.reply(200, body)
            return
        if path.endswith("/resource-servers"):
            self.reply(
                200,
                {
                    "resource_servers": [
                        {"name": "Auth0 Management API", "identifier": "x", "is_system": True},
                        {
                            "name": "Orders",
                            "identifier": AUDIENCE,
                            "scopes": [{"value": "read:orders"}],
                        },
                    ],
                    "total": 2,
                },
            )
            return
        if path.endswith("/actions/actions"):
            action = {
                "id": "act_1",
                "name": "tier",
                "code": ACTION.replace('"-"', '"draft"'),  # edited, not deployed
                "runtime": "node22",
                "dependencies": [],
                "secrets": [{"name": "TIER", "updated_at": "2026-12-01T00:00:00Z"}],
                "supported_triggers": [{"id": "credentials-exchange", "version": "v2"}],
                "all_changes_deployed": False,
                "deployed_version": {"code": ACTION, "runtime": "node22", "dependencies": []},
            }
            self.reply(200, {"actions": [action], "total": 1, "page": 0, "per_page": 100})
            return
        if path.endswith("/actions/triggers/credentials-exchange/bindings"):
            binding = {"id": "b1", "action": {"id": "act_1", "name": "tier"}, "display_name": "T"}
            self.reply(200, {"bindings": [binding], "total": 1, "page": 0, "per_page": 100})
            return
        if path.endswith("/hooks"):
            # As a tenant without the retired Hooks feature answers.
            self.reply(403, {"statusCode": 403, "message": "Hooks are not enabled for this tenant"})
            return
        self.reply(404, {"statusCode": 404, "message": "Not Found"})


@pytest.fixture
def fake_auth0():
    state: dict[str, Any] = {"requests": [], "limited": False}
    handler = type("Handler", (FakeAuth0,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", state
    finally:
        server.shutdown()
        server.server_close()


def test_a_management_api_is_paged_through_and_its_429_honoured(tenants, fake_auth0):
    url, state = fake_auth0
    out = run(
        "-p",
        "acme",
        "--from",
        url,
        "--client-id",
        "importer",
        "--client-secret",
        "right",
        "--only",
        "resource_servers,clients,client_grants,hooks",
    )
    assert Client.objects.filter(tenant=tenants[0]).count() == 150
    assert not Hook.objects.exists()
    assert ClientGrant.objects.filter(client__tenant=tenants[0]).count() == 150
    (first, _), (second, _) = state["requests"][:2]
    assert second - first >= 1.0  # waited for Retry-After
    paths = [path for _, path in state["requests"]]
    assert any("client-grants?take=100&from=100" in p for p in paths), paths
    assert any("clients?page=1" in p for p in paths), paths
    assert "Imported into acme: 301 created" in out
    # The source's own Management API is never imported.
    assert not Api.objects.filter(tenant=tenants[0], identifier="x").exists()


def test_a_missing_scope_is_named_and_nothing_is_written(tenants, fake_auth0):
    url, state = fake_auth0
    state["forbid_clients"] = True
    before = snapshot()
    with pytest.raises(CommandError) as raised:
        run("-p", "acme", "--from", url, "--client-id", "importer", "--client-secret", "right")
    assert "needs the read:clients scope" in str(raised.value)
    assert snapshot() == before


def test_wrong_credentials_and_an_unreachable_source_are_one_line(tenants, fake_auth0, monkeypatch):
    url, _ = fake_auth0
    before = snapshot()
    monkeypatch.setenv("AUTH0_CLIENT_ID", "importer")
    with pytest.raises(CommandError, match=r"refused the client credentials \(401 Unauthorized\)"):
        run("-p", "acme", "--from", url, "--client-secret", "wrong")
    with pytest.raises(CommandError, match=r"Cannot reach the source http://127\.0\.0\.1:9"):
        run("-p", "acme", "--from", "http://127.0.0.1:9", "--client-secret", "x")
    assert snapshot() == before


def test_overwrite_updates_a_changed_hook_and_action_and_redeploys(tenants, tmp_path):
    export = write_export(tmp_path / "e")
    run("-p", "acme", "--from-dir", str(export), *secrets_files(tmp_path))
    (export / "hooks" / "plan-claim.js").write_text(HOOK.replace('":"', '"::"'))
    (export / "actions" / "tier" / "code.js").write_text(ACTION.replace('"-"', '"+"'))
    left = run("-p", "acme", "--from-dir", str(export), *secrets_files(tmp_path))
    assert "differs   hook plan-claim  (differs in script" in left
    assert "differs   action tier  (differs in code" in left
    worker = client_body(1)
    assert (
        token("acme", worker["client_id"], worker["client_secret"])[ACTION_CLAIM] == "tier-1-gold"
    )

    run("-p", "acme", "--from-dir", str(export), "--overwrite", *secrets_files(tmp_path))
    claims = token("acme", worker["client_id"], worker["client_secret"])
    assert (claims[CLAIM], claims[ACTION_CLAIM]) == ("gold::pepper", "tier-1+gold")
    assert ActionVersion.objects.filter(action__name="tier").count() == 2
    again = run("-p", "acme", "--from-dir", str(export), "--overwrite", *secrets_files(tmp_path))
    assert "Plan: 0 create, 0 update" in again


def test_an_hs256_api_keeps_its_signing_secret_and_only_limits_what_comes(tenants, tmp_path):
    signing_secret = "the-hs256-signing-secret-of-the-source-0123456789"
    api = {
        "name": "Orders",
        "identifier": AUDIENCE,
        "scopes": [{"value": "read:orders", "description": ""}],
        "signing_alg": "HS256",
        "signing_secret": signing_secret,
    }
    export = write_export(tmp_path / "e", {"resource-servers/Orders.json": api})
    out = run(
        "-p", "acme", "--from-dir", str(export), "--only", "resource_servers,clients,client_grants"
    )
    assert "hook" not in out.split("Cannot come over")[0]
    assert not Hook.objects.exists() and not Action.objects.exists()
    worker = client_body(1)
    response = HttpClient().post(
        "/acme/oauth/token",
        json.dumps(
            {
                "grant_type": "client_credentials",
                "client_id": worker["client_id"],
                "client_secret": worker["client_secret"],
                "audience": AUDIENCE,
            }
        ),
        content_type="application/json",
    )
    access_token = response.json()["access_token"]
    claims = jwt.decode(access_token, signing_secret, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["azp"] == worker["client_id"]


def test_a_re_run_without_the_secrets_files_keeps_the_values_already_here(tenants, tmp_path):
    export = str(write_export(tmp_path / "e"))
    run("-p", "acme", "--from-dir", export, *secrets_files(tmp_path))
    before = snapshot()
    out = run("-p", "acme", "--from-dir", export)
    assert "Plan: 0 create, 0 update" in out and "comes over disabled" not in out
    assert snapshot() == before
    assert Hook.objects.get(tenant=tenants[0], name="plan-claim").enabled


def test_an_action_comes_over_as_the_source_runs_it_its_deployed_version(
    tenants, fake_auth0, tmp_path
):
    url, _ = fake_auth0
    out = run(
        "-p", "acme", "--from", url, "--client-id", "importer", "--client-secret", "right",
        "--only", "actions", *secrets_files(tmp_path),
    )  # fmt: skip
    action = Action.objects.get(tenant=tenants[0], name="tier")
    assert action.versions.get(deployed=True).code == ACTION
    assert "action tier: draft changes not deployed" in out
    assert list(TriggerBinding.objects.values_list("action__name", "display_name")) == [
        ("tier", "T")
    ]
