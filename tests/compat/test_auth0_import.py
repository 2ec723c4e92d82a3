"""``manage.py auth0 import`` between two Tessera servers with separate
databases: tenant A on the TLS server (its own database, granian) is the
source, the live server (pytest's database) is B. A is read through its
Management API, then through what the real Deploy CLI exports from it; a
token from B for A's client carries the same claims as one from A."""

import json
from io import StringIO
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from django.core.management import call_command

from clients.models import Client
from tenant.models import AuditEntry
from tests.compat.conftest import TlsTenant, node_library
from tests.compat.test_deploy_cli import a0deploy, output
from tests.factories import make_client, make_tenant

LIBRARY = node_library("auth0-deploy-cli")
AUDIENCE = "https://billing.import.test/"
HOOK_CLAIM = "https://import.test/plan"
ACTION_CLAIMS = {"tier": "https://import.test/tier", "order": "https://import.test/order"}
LAST_ACTION = "https://import.test/last"
HOOK = f"""module.exports = function (client, scope, audience, context, cb) {{
  var token = {{ scope: scope }};
  token["{HOOK_CLAIM}"] = client.metadata.plan + ":" + context.webtask.secrets.SALT;
  cb(null, token);
}};
"""


def action_code(name: str) -> str:
    # Each Action also names itself in one shared claim: the last one wins,
    # so the claim shows the order the flow ran them in.
    return f"""exports.onExecuteCredentialsExchange = async (event, api) => {{
  api.accessToken.setCustomClaim("{ACTION_CLAIMS[name]}", event.secrets.TIER + "/" + event.client.metadata.plan);
  api.accessToken.setCustomClaim("{LAST_ACTION}", "{name}");
}};
"""


def created(response: requests.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 204), f"{response.status_code} {response.text}"
    return response.json() if response.content else {}  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def source(tls_tessera) -> tuple[TlsTenant, dict[str, str]]:
    """Tenant A: an API, two clients with metadata (one using Basic), their
    grants, an enabled hook with a secret, and two deployed Actions with a
    dependency and secrets, bound in order. Returns A and its clients'
    secrets by client id."""
    a = tls_tessera.tenant("source")
    created(
        a.api(
            "POST",
            "resource-servers",
            json={
                "name": "Billing",
                "identifier": AUDIENCE,
                "scopes": [
                    {"value": "read:invoices", "description": "Read invoices"},
                    {"value": "pay:invoices", "description": "Pay"},
                ],
                "token_lifetime": 7200,
            },
        )
    )
    secrets = {}
    for name, plan, method in (
        ("Billing worker", "gold", "client_secret_post"),
        ("Ledger", "silver", "client_secret_basic"),
    ):
        body = created(
            a.api(
                "POST",
                "clients",
                json={
                    "name": name,
                    "app_type": "non_interactive",
                    "client_metadata": {"plan": plan},
                    "token_endpoint_auth_method": method,
                },
            )
        )
        secrets[body["client_id"]] = body["client_secret"]
        created(
            a.api(
                "POST",
                "client-grants",
                json={
                    "client_id": body["client_id"],
                    "audience": AUDIENCE,
                    "scope": ["read:invoices"],
                },
            )
        )
    hook = created(
        a.api(
            "POST",
            "hooks",
            json={
                "name": "plan-claim",
                "script": HOOK,
                "triggerId": "credentials-exchange",
                "enabled": True,
            },
        )
    )
    created(a.api("POST", f"hooks/{hook['id']}/secrets", json={"SALT": "pepper"}))
    for name in ACTION_CLAIMS:
        action = created(
            a.api(
                "POST",
                "actions/actions",
                json={
                    "name": name,
                    "code": action_code(name),
                    "runtime": "node22",
                    "dependencies": [{"name": "events", "version": "3.3.0"}],
                    "secrets": [{"name": "TIER", "value": f"{name}-secret"}],
                    "supported_triggers": [{"id": "credentials-exchange", "version": "v2"}],
                },
            )
        )
        created(a.api("POST", f"actions/actions/{action['id']}/deploy"))
    created(
        a.api(
            "PATCH",
            "actions/triggers/credentials-exchange/bindings",
            json={
                "bindings": [
                    {"ref": {"type": "action_name", "value": "order"}, "display_name": "Order"},
                    {"ref": {"type": "action_name", "value": "tier"}, "display_name": "Tier"},
                ]
            },
        )
    )
    return a, secrets


def secrets_files(tmp_path: Path) -> list[str]:
    hooks = tmp_path / "hook-secrets.json"
    hooks.write_text(json.dumps({"plan-claim": {"SALT": "pepper"}}))
    actions = tmp_path / "action-secrets.json"
    actions.write_text(
        json.dumps({"tier": {"TIER": "tier-secret"}, "order": {"TIER": "order-secret"}})
    )
    return ["--hook-secrets", str(hooks), "--action-secrets", str(actions)]


def run(*args: str) -> str:
    out = StringIO()
    call_command("auth0", "import", *args, stdout=out)
    return out.getvalue()


def claims_of(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    return {k: v for k, v in claims.items() if k not in ("iss", "iat", "exp", "jti")}


def token_from_b(issuer: str, client_id: str, secret: str) -> requests.Response:
    return requests.post(
        f"{issuer}oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "audience": AUDIENCE,
        },
        timeout=30,
    )


def assert_same_claims(
    a: TlsTenant, a_secrets: dict[str, str], issuer: str, b_secrets: dict[str, str]
) -> None:
    for client_id, secret in a_secrets.items():
        from_a = claims_of(a.token(client_id, secret, AUDIENCE))
        from_b = claims_of(token_from_b(issuer, client_id, b_secrets[client_id]))
        assert from_b == from_a
        assert from_a[HOOK_CLAIM] in ("gold:pepper", "silver:pepper")
        assert from_a[ACTION_CLAIMS["tier"]].startswith("tier-secret/")
        assert from_a[LAST_ACTION] == "tier"  # the flow runs order, then tier


@pytest.fixture
def trust_a(tls_tessera, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_tessera.ca))


def test_a_tenant_read_through_its_management_api_issues_the_same_tokens_on_b(
    tessera, source, trust_a, tmp_path
):
    a, a_secrets = source
    b = make_tenant("dest")
    bystander = make_tenant("bystander")
    make_client(bystander)
    secrets_out = tmp_path / "secrets.json"
    args = [
        "-p", "dest", "--from", a.issuer, "--client-id", a.client_id,
        "--client-secret", a.client_secret, "--secrets-out", str(secrets_out),
        *secrets_files(tmp_path),
    ]  # fmt: skip
    out = run(*args)
    assert "Cannot come over" in out and "grant of Management client" in out, out
    b_secrets = json.loads(secrets_out.read_text())
    # Tessera reveals no client secret: each client keeps its id and gets a new secret.
    assert set(a_secrets) <= set(b_secrets)
    assert_same_claims(a, a_secrets, b.issuer, b_secrets)
    assert Client.objects.filter(tenant=bystander).count() == 1

    audit = AuditEntry.objects.filter(tenant=b).count()
    again = run(*args)
    assert "Plan: 0 create, 0 update" in again, again
    assert AuditEntry.objects.filter(tenant=b).count() == audit


def test_a_directory_the_deploy_cli_exported_from_a_imports_the_same(tessera, source, tmp_path):
    a, a_secrets = source
    b = make_tenant("dest")
    exported = tmp_path / "export"
    done = a0deploy(
        a,
        "export",
        "--format",
        "directory",
        "--output_folder",
        str(exported),
        AUTH0_EXPORT_IDENTIFIERS=True,
    )
    assert done.returncode == 0, f"{LIBRARY}: {output(done)}"
    # A client file that carries its secret keeps it: the same credentials
    # work on B. The other gets a new one.
    worker_file = exported / "clients" / "Billing worker.json"
    worker = json.loads(worker_file.read_text())
    worker["client_secret"] = a_secrets[worker["client_id"]]
    worker_file.write_text(json.dumps(worker))
    secrets_out = tmp_path / "secrets.json"
    out = run(
        "-p", "dest", "--from-dir", str(exported), "--secrets-out", str(secrets_out),
        *secrets_files(tmp_path),
    )  # fmt: skip
    assert "1 clients kept their client_id and secret" in out, out
    b_secrets = {
        worker["client_id"]: worker["client_secret"],
        **json.loads(secrets_out.read_text()),
    }
    assert worker["client_id"] not in json.loads(secrets_out.read_text())
    assert_same_claims(a, a_secrets, b.issuer, b_secrets)
