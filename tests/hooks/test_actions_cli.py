"""``manage.py actions …`` (issue 23, item 5): Auth0's ``auth0 actions`` CLI
and the trigger's flow, on one tenant each, run as a user runs them
(call_command, and ``manage.py`` in its own process for exit codes and
stderr), two tenants side by side in every test."""

import io
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import jwt
import pytest
import requests
from django.conf import settings
from django.core.management import CommandError, call_command

from hooks.models import Action, ActionVersion, HookRun, TriggerBinding
from hooks.services import hook_create
from tenant.models import AuditEntry
from tests.database import database_url
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant
from tests.hooks.actions_cli import actions, refused

AUD = "https://api.example.test/"
TIER = "https://example.com/tier"


def claim_code(value: str, claim: str = TIER) -> str:
    return f"""exports.onExecuteCredentialsExchange = async (event, api) => {{
  api.accessToken.setCustomClaim('{claim}', {json.dumps(value)});
}};
"""


SECRET_CLAIM = """exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim('https://example.com/key', event.secrets.KEY);
};
"""
DENY = """exports.onExecuteCredentialsExchange = async (event, api) => {
  console.log('denying ' + event.client.name);
  api.access.deny('invalid_request', 'No tokens for ' + event.client.name);
};
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


class Side:
    """A tenant with an API and a client granted it."""

    def __init__(self, slug: str) -> None:
        self.tenant = make_tenant(slug)
        api = make_api(self.tenant, AUD, scopes=["read:data"])
        self.client, self.secret = make_client(self.tenant, {api: ["read:data"]})

    def claims(self) -> dict:
        response = requests.post(
            f"{self.tenant.issuer}oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client.client_id,
                "client_secret": self.secret,
                "audience": AUD,
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


@pytest.fixture
def sides():
    return make_tenant("acme"), make_tenant("globex")


# --- the round trip, through a live server -----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_create_deploy_bind_update_rollback_unbind_rm_round_trip(live_server, settings, tmp_path):
    settings.PUBLIC_URL = live_server.url
    acme, globex = Side("acme"), Side("globex")
    v1 = write(tmp_path, "v1.js", claim_code("gold"))
    # The same name in both tenants: each command works on its own tenant's.
    assert "Created action tier" in actions("create", "-n", "tier", "-p", "acme", v1)
    actions("create", "-n", "tier", "-p", "globex", write(tmp_path, "g.js", claim_code("globex")))
    assert actions("deploy", "tier", "-p", "acme") == "Deployed action tier version 1\n"
    assert TIER not in acme.claims()  # deployed, not bound: not run
    assert "Bound action tier to credentials-exchange at position 1 of 1" in actions(
        "bind", "tier", "-p", "acme"
    )
    assert acme.claims()[TIER] == "gold"
    assert TIER not in globex.claims()

    actions("update", "tier", "-p", "acme", write(tmp_path, "v2.js", claim_code("platinum")))
    assert acme.claims()[TIER] == "gold"  # a saved draft is not live
    assert actions("deploy", "tier", "-p", "acme") == "Deployed action tier version 2\n"
    assert acme.claims()[TIER] == "platinum"

    assert actions("rollback", "tier", "1", "-p", "acme") == (
        "Deployed action tier version 3 (the code of version 1)\n"
    )
    assert acme.claims()[TIER] == "gold"
    versions = actions("versions", "tier", "-p", "acme").splitlines()
    assert [line.split()[:2] for line in versions[1:]] == [["3", "yes"], ["2", "no"], ["1", "no"]]
    flow = actions("flow", "-p", "acme")
    assert "1       tier (version 3)" in flow and "globex" not in flow
    assert "nothing runs" in actions("flow", "-p", "globex")

    assert actions("unbind", "tier", "-p", "acme") == (
        "Unbound action tier from credentials-exchange\n"
    )
    assert TIER not in acme.claims()
    assert actions("rm", "tier", "-p", "acme") == "Deleted action tier\n"
    assert list(Action.objects.values_list("tenant__slug", "name")) == [("globex", "tier")]
    assert not ActionVersion.objects.filter(action__tenant=acme.tenant).exists()

    # Every write through the services, as the shell's user, in acme's trail only.
    entries = AuditEntry.objects.filter(tenant=acme.tenant, object_type__in=["action", "trigger"])
    assert set(entries.values_list("actor_kind", flat=True)) == {"cli"}
    assert list(entries.order_by("id").values_list("action", flat=True)) == [
        "create",
        "deploy",
        "bindings.replace",
        "update",
        "deploy",
        "rollback v1",
        "bindings.replace",
        "delete",
    ]
    assert AuditEntry.objects.filter(tenant=globex.tenant, object_type="action").count() == 1


# --- each command on its own tenant ------------------------------------------------------


@pytest.mark.django_db
def test_another_tenants_action_is_unknown_by_name_and_by_id(sides, tmp_path):
    actions("create", "-n", "theirs", "-p", "globex", write(tmp_path, "a.js", claim_code("x")))
    theirs = Action.objects.get()
    for ref in ("theirs", theirs.public_id):
        for command in ("show", "deploy", "versions", "test", "rm", "bind", "unbind"):
            assert refused(command, ref, "-p", "acme") == (f"Unknown action for tenant acme: {ref}")
    assert refused("rollback", "theirs", "1", "-p", "acme").startswith("Unknown action")
    assert refused("update", "theirs", "-p", "acme", "--secret", "K=v").startswith("Unknown action")
    assert "theirs" not in actions("ls", "-p", "acme")
    assert actions("ls", "-p", "acme") == "Tenant acme has no actions.\n"
    # By id in its own tenant.
    assert f"Id:                   {theirs.public_id}" in actions(
        "show", theirs.public_id, "-p", "globex"
    )
    assert refused("show", "x", "-p", "nope") == "Unknown tenant: nope"
    assert Action.objects.get().status == "built" and not ActionVersion.objects.exists()


@pytest.mark.django_db
def test_ls_and_show_tell_status_deployment_and_secret_names(sides, tmp_path, monkeypatch):
    acme, _globex = sides
    code = write(tmp_path, "s.js", SECRET_CLAIM)
    monkeypatch.setenv("ACME_KEY", "from-the-environment")
    actions(
        "create", "-n", "keyed", "-p", "acme", code, "-d", "lodash@4.17.21",
        "-d", "@tootallnate/once=2.0.0", "--secret-from-env", "KEY=ACME_KEY", "-r", "node18",
    )  # fmt: skip
    actions("create", "-n", "keyed", "-p", "globex", code, "--secret", "KEY=globex-value")
    actions("deploy", "keyed", "-p", "acme")
    actions("update", "keyed", "-p", "acme", "-d", "uuid@9.0.0")

    ls = actions("ls", "-p", "acme").splitlines()
    assert ls[0].split() == ["NAME", "ID", "TRIGGER", "STATUS", "DEPLOYED", "UPDATED"]
    assert ls[1].split()[:6] == [
        "keyed", Action.objects.get(tenant=acme).public_id, "credentials-exchange", "built",
        "v1", "(draft",
    ]  # fmt: skip
    shown = json.loads(actions("show", "keyed", "-p", "acme", "--json"))
    assert shown["dependencies"] == [{"name": "uuid", "version": "9.0.0"}]
    assert (shown["runtime"], shown["secrets"], shown["deployed_version"]) == ("node18", ["KEY"], 1)
    assert shown["all_changes_deployed"] is False
    text = actions("show", "keyed", "-p", "acme")
    assert "Secrets:              KEY" in text and "event.secrets.KEY" in text
    every_output = text + json.dumps(shown) + actions("ls", "-p", "acme", "--json")
    assert "from-the-environment" not in every_output
    assert "globex-value" not in every_output
    trail = json.dumps(list(AuditEntry.objects.values_list("before", "after")))
    assert "from-the-environment" not in trail and "globex-value" not in trail


@pytest.mark.django_db
def test_code_from_stdin_and_secrets_from_a_file(sides, tmp_path, monkeypatch):
    acme, globex = sides
    monkeypatch.setattr(sys, "stdin", io.StringIO(SECRET_CLAIM))
    secrets = write(tmp_path, "secrets.env", "# the API key\nKEY=from-a-file\n\nOTHER=x=y\n")
    actions("create", "-n", "keyed", "-p", "acme", "-", "--secrets-file", secrets)
    action = Action.objects.get(tenant=acme)
    assert action.code == SECRET_CLAIM
    report = actions("test", "keyed", "-p", "acme")
    assert '"https://example.com/key": "from-a-file"' in report
    actions("update", "keyed", "-p", "acme", "--rm-secret", "OTHER", "--secret", "KEY=new")
    assert '"https://example.com/key": "new"' in actions("test", "keyed", "-p", "acme")
    assert list(action.secrets.values_list("name", flat=True)) == ["KEY"]
    assert refused("update", "keyed", "-p", "acme", "--rm-secret", "NOPE") == (
        "Action keyed has no secret NOPE"
    )
    assert refused("create", "-n", "k2", "-p", "acme", "x.js", "--secret-from-env", "UNSET_VAR_1")
    assert not Action.objects.filter(tenant=globex).exists()


@pytest.mark.django_db
def test_test_runs_the_draft_on_the_sample_or_a_payload(sides, tmp_path):
    acme, globex = sides
    hook_create(tenant=globex, name="h", script=DENY, enabled=True, actor=TEST_ACTOR)
    actions("create", "-n", "tier", "-p", "acme", write(tmp_path, "a.js", claim_code("gold")))
    actions("deploy", "tier", "-p", "acme")
    actions("update", "tier", "-p", "acme", write(tmp_path, "b.js", claim_code("draft")))
    report = actions("test", "tier", "-p", "acme")
    assert report.startswith("Outcome: ok\nDuration: ")
    assert f'"{TIER}": "draft"' in report  # the draft, not the deployed version

    actions("create", "-n", "deny", "-p", "acme", write(tmp_path, "d.js", DENY))
    payload = write(tmp_path, "p.json", json.dumps({"event": {"client": {"name": "billing"}}}))
    with pytest.raises(CommandError) as raised:
        call_command(
            "actions",
            "test",
            "deny",
            "-p",
            "acme",
            "--payload",
            payload,
            stdout=(out := StringIO()),
        )
    assert str(raised.value).startswith("Action deny failed: ") and "billing" in str(raised.value)
    assert "Console:\n  denying billing" in out.getvalue()
    bad = write(tmp_path, "bad.json", "[1]")
    assert refused("test", "deny", "-p", "acme", "--payload", bad) == (
        "The payload must be a JSON object."
    )
    assert not HookRun.objects.filter(tenant=acme).exists()  # a test of a draft leaves no run


# --- bad input: one line, exit 1, nothing half-made ---------------------------------------


@pytest.mark.django_db
def test_a_draft_that_does_not_compile_is_saved_failed_and_cannot_deploy(sides, tmp_path):
    acme, globex = sides
    broken = write(tmp_path, "broken.js", "exports.onExecuteCredentialsExchange = (;\n")
    message = refused("create", "-n", "broken", "-p", "acme", broken)
    assert message.startswith("Action broken was saved but failed to build: Syntax error at line 1")
    assert Action.objects.get(tenant=acme).status == "failed"
    assert "Status:               failed" in actions("show", "broken", "-p", "acme")
    assert refused("deploy", "broken", "-p", "acme").startswith(
        "Action 'broken' must be in the 'built' state"
    )
    hook = write(tmp_path, "hook.js", "module.exports = function (c, s, a, ctx, cb) { cb(); };")
    assert "onExecuteCredentialsExchange" in refused("create", "-n", "hook", "-p", "globex", hook)
    good = write(tmp_path, "good.js", claim_code("ok"))
    actions("update", "broken", "-p", "acme", good)
    assert actions("deploy", "broken", "-p", "acme") == "Deployed action broken version 1\n"
    assert not ActionVersion.objects.filter(action__tenant=globex).exists()


@pytest.mark.django_db
def test_bad_dependencies_files_and_limits_are_refused_and_create_nothing(sides, tmp_path):
    good = write(tmp_path, "good.js", claim_code("x"))
    for spec in ("lodash", "lodash@", "@scope", "Bad Name@1", "lodash@1 2", "=1"):
        assert refused("create", "-n", "a", "-p", "acme", good, "-d", spec) == (
            f"A dependency must look like NAME@VERSION, got {spec!r}"
        )
    eleven = [arg for i in range(11) for arg in ("-d", f"pkg{i}@1.0.0")]
    assert "at most 10 dependencies" in refused("create", "-n", "a", "-p", "acme", good, *eleven)
    secrets = [arg for i in range(31) for arg in ("-s", f"S{i}=v")]
    assert "at most 30 secrets" in refused("create", "-n", "a", "-p", "acme", good, *secrets)
    assert "at most 4096" in refused(
        "create", "-n", "a", "-p", "acme", good, "-s", "K=" + "v" * 4097
    )
    assert refused("create", "-n", "a", "-p", "acme", good, "-s", "novalue") == (
        "A secret must look like KEY=VALUE, got 'novalue'"
    )
    big = write(tmp_path, "big.js", "// " + "x" * 200_000 + "\n" + claim_code("x"))
    assert refused("create", "-n", "a", "-p", "acme", big) == (
        "The code is larger than 100000 bytes."
    )
    assert refused("create", "-n", "a", "-p", "acme", str(tmp_path / "missing.js")).startswith(
        "Cannot read code"
    )
    assert not Action.objects.exists()
    actions("create", "-n", "a", "-p", "acme", good)
    actions("create", "-n", "a", "-p", "globex", good)  # the same name in another tenant
    assert refused("create", "-n", "a", "-p", "acme", good) == (
        "An action with name 'a' already exists."
    )
    assert refused("rollback", "a", "1", "-p", "acme") == "Action a has no version 1"
    assert Action.objects.count() == 2


@pytest.mark.django_db
def test_bindings_refuse_undeployed_twice_bound_and_a_21st_action(sides, tmp_path):
    _acme, globex = sides
    code = write(tmp_path, "a.js", claim_code("x"))
    actions("create", "-n", "draft", "-p", "acme", code)
    assert refused("bind", "draft", "-p", "acme") == (
        "Action 'draft' must be deployed before it can be bound."
    )
    for i in range(21):
        actions("create", "-n", f"a{i}", "-p", "acme", code)
        actions("deploy", f"a{i}", "-p", "acme")
    for i in range(20):
        actions("bind", f"a{i}", "-p", "acme")
    assert refused("bind", "a20", "-p", "acme") == "A trigger has at most 20 bound actions."
    assert refused("bind", "a3", "-p", "acme") == (
        "Action a3 is already bound to credentials-exchange"
    )
    assert refused("unbind", "a20", "-p", "acme") == (
        "Action a20 is not bound to credentials-exchange"
    )
    actions("unbind", "a0", "-p", "acme")
    assert refused("bind", "a20", "-p", "acme", "--position", "21") == (
        "--position must be between 1 and 20"
    )
    actions("bind", "a20", "-p", "acme", "--position", "1", "--display-name", "First")
    flow = actions("flow", "-p", "acme").splitlines()
    assert flow[1].split() == ["1", "First", "[a20]", "(version", "1)"]
    assert flow[2].split()[:2] == ["2", "a1"] and len(flow) == 21
    assert not TriggerBinding.objects.filter(tenant=globex).exists()


@pytest.mark.django_db
def test_rm_refuses_a_bound_action_unless_forced(sides, tmp_path):
    acme, _globex = sides
    code = write(tmp_path, "a.js", claim_code("x"))
    for slug in ("acme", "globex"):
        actions("create", "-n", "tier", "-p", slug, code)
        actions("deploy", "tier", "-p", slug)
        actions("bind", "tier", "-p", slug)
    hook_create(tenant=acme, name="legacy", script=DENY, enabled=True, actor=TEST_ACTOR)
    flow = actions("flow", "-p", "acme").splitlines()
    assert [line.split()[:2] for line in flow[1:]] == [["hook", "legacy"], ["1", "tier"]]
    assert refused("rm", "tier", "-p", "acme") == (
        "Action 'tier' is bound to the credentials-exchange trigger; "
        "unbind it first or rerun with --force."
    )
    assert actions("rm", "tier", "-p", "acme", "--force") == (
        "Deleted action tier; unbound it from credentials-exchange\n"
    )
    assert list(TriggerBinding.objects.values_list("tenant__slug", flat=True)) == ["globex"]


# --- as a user runs it: manage.py in its own process --------------------------------------


def manage(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, our manage.py
        [sys.executable, "manage.py", "actions", *args],
        input=stdin,
        env={**os.environ, "DATABASE_URL": database_url()},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_manage_py_exits_1_with_one_line_on_stderr_for_bad_input():
    make_tenant("acme")
    make_tenant("globex")
    created = manage("create", "-n", "piped", "-p", "acme", "-", stdin=claim_code("x"))
    assert (created.returncode, created.stderr) == (0, "")
    assert created.stdout.startswith("Created action piped (")
    deployed = manage("deploy", "piped", "-p", "acme")
    assert (deployed.returncode, deployed.stdout) == (0, "Deployed action piped version 1\n")

    cases = {
        ("deploy", "piped", "-p", "globex"): "Unknown action for tenant globex: piped",
        ("create", "-n", "d", "-p", "acme", "-", "-d", "lodash"): (
            "A dependency must look like NAME@VERSION, got 'lodash'"
        ),
    }
    for args, message in cases.items():
        result = manage(*args, stdin=claim_code("x"))
        assert (result.returncode, result.stdout, result.stderr) == (
            1,
            "",
            f"CommandError: {message}\n",
        ), args
    broken = manage("create", "-n", "broken", "-p", "acme", stdin="exports.x = (;")
    assert broken.returncode == 1
    assert broken.stderr.count("\n") == 1
    assert broken.stderr.startswith("CommandError: Action broken was saved but failed to build")
    assert list(Action.objects.order_by("name").values_list("name", "status")) == [
        ("broken", "failed"),
        ("piped", "built"),
    ]
