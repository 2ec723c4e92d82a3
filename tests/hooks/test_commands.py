"""The hooks CLI (SPEC §6): ``manage.py hooks …`` and ``manage.py wt …`` run
through call_command against the database and the real sandbox."""

import base64
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient
from django.utils import timezone

from hooks.choices import RunOutcome, RunSource
from hooks.models import Hook, HookRun, HookSecret
from hooks.selectors import hook_secrets
from hooks.services import hook_create
from tenant import cli as tenant_cli
from tests.database import database_url
from tests.factories import SEED_HOOK as SEED
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db

AUD = "https://api.example.test/"
GOOD = "module.exports = function(c, s, a, ctx, cb) { cb(null, {scope: s}); };\n"
SECRET = "q1Xo4gT0n3mBz3P1sW9yZ1l7c2Vq5R8tK0aYbHn6dFs="
SEED_META = [
    "--meta",
    "wt-compiler=auth0-ext-compilers/client-credentials-exchange",
    "--meta",
    "auth0-extension=runtime",
    "--meta",
    "auth0-extension-name=credentials-exchange",
]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def tenant():
    return make_tenant("acme")


@pytest.fixture
def script_file(tmp_path: Path) -> Path:
    path = tmp_path / "myrule.js"
    path.write_text(SEED)
    return path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def token_claims(tenant) -> dict:
    api = make_api(tenant, AUD, scopes=["test"])
    client, secret = make_client(tenant, {api: ["test"]})
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": AUD,
    }
    response = HttpClient().post(
        f"/{tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    jwks = jwt.PyJWKSet.from_dict(HttpClient().get(f"/{tenant.slug}/.well-known/jwks.json").json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    return jwt.decode(token, key, algorithms=["RS256"], audience=AUD, issuer=tenant.issuer)


# --- the seed flows ------------------------------------------------------------------


def test_seed_create_then_enable_issues_tokens_with_the_claims(tenant, script_file):
    output = run(
        "hooks",
        "create",
        "-t",
        "credentials-exchange",
        "-n",
        "client-credentials-exchange-hook",
        "-p",
        "acme",
        str(script_file),
    )
    hook = Hook.objects.get(tenant=tenant)
    assert not hook.enabled
    assert "disabled" in output
    assert "hooks enable client-credentials-exchange-hook -p acme" in output

    run("hooks", "enable", "--tenant", "acme", "client-credentials-exchange-hook")

    claims = token_claims(tenant)
    assert claims["https://foo.com/claim"] == "bar"
    assert claims["scope"] == "test extra"


def test_seed_wt_create_enables_and_tokens_carry_the_claims(tenant, script_file):
    output = run(
        "wt",
        "create",
        str(script_file),
        "-p",
        "acme",
        *SEED_META,
        "--meta",
        f"auth0-extension-secret={SECRET}",
        "--secret",
        f"auth0-extension-secret={SECRET}",
    )
    hook = Hook.objects.get(tenant=tenant)
    assert hook.name == "myrule" and hook.enabled
    assert hook_secrets(hook=hook) == {"auth0-extension-secret": SECRET}
    assert SECRET not in output

    claims = token_claims(tenant)
    assert claims["https://foo.com/claim"] == "bar"
    assert claims["scope"] == "test extra"


# --- create, update --------------------------------------------------------------------


def test_create_with_syntax_error_reports_line_and_column_and_creates_nothing(tenant, tmp_path):
    bad = write(tmp_path, "bad.js", "module.exports = function() {\n  var x = ;\n};\n")
    with pytest.raises(CommandError, match=r"line 2, column \d+"):
        run("hooks", "create", "-n", "bad", "-p", "acme", str(bad))
    assert not Hook.objects.exists()


def test_create_duplicate_name_fails_and_keeps_the_first(tenant, script_file, tmp_path):
    run("hooks", "create", "-n", "h", "-p", "acme", str(script_file))
    other = write(tmp_path, "other.js", GOOD)
    with pytest.raises(CommandError, match="already exists"):
        run("hooks", "create", "-n", "h", "-p", "acme", str(other))
    assert Hook.objects.get().script == SEED


def test_create_unreadable_file_is_one_clear_error(tenant, tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read script .*missing\.js"):
        run("hooks", "create", "-n", "h", "-p", "acme", str(tmp_path / "missing.js"))
    assert not Hook.objects.exists()


def test_unknown_tenant_is_one_clear_error(script_file):
    with pytest.raises(CommandError, match="Unknown tenant: nope"):
        run("hooks", "create", "-n", "h", "-p", "nope", str(script_file))


def test_create_rejects_unknown_point(tenant, script_file):
    with pytest.raises(CommandError, match="invalid choice"):
        run(
            "hooks",
            "create",
            "-t",
            "pre-user-registration",
            "-n",
            "h",
            "-p",
            "acme",
            str(script_file),
        )


def test_update_saves_a_new_version(tenant, script_file, tmp_path):
    run("hooks", "create", "-n", "h", "-p", "acme", str(script_file))
    output = run("hooks", "update", "h", "-p", "acme", str(write(tmp_path, "v2.js", GOOD)))
    hook = Hook.objects.get()
    assert hook.version == 2 and hook.script == GOOD
    assert list(hook.versions.values_list("number", flat=True)) == [2, 1]
    assert "version 2" in output


def test_update_with_syntax_error_keeps_the_saved_version(tenant, script_file, tmp_path):
    run("hooks", "create", "-n", "h", "-p", "acme", str(script_file))
    with pytest.raises(CommandError, match="Syntax error at line 1"):
        run(
            "hooks",
            "update",
            "h",
            "-p",
            "acme",
            str(write(tmp_path, "v2.js", "module.exports = (")),
        )
    hook = Hook.objects.get()
    assert hook.version == 1 and hook.script == SEED


# --- enable, disable, ls, rm ------------------------------------------------------------


def test_enable_says_which_hook_it_disabled(tenant):
    hook_create(tenant=tenant, name="old", script=GOOD, enabled=True, actor=TEST_ACTOR)
    hook_create(tenant=tenant, name="new", script=GOOD, actor=TEST_ACTOR)
    output = run("hooks", "enable", "new", "-p", "acme")
    assert "Enabled hook new" in output and "disabled old" in output
    assert list(Hook.objects.filter(enabled=True).values_list("name", flat=True)) == ["new"]


def test_disable_turns_the_hook_off(tenant):
    hook_create(tenant=tenant, name="h", script=GOOD, enabled=True, actor=TEST_ACTOR)
    assert "Disabled hook h" in run("hooks", "disable", "h", "-p", "acme")
    assert not Hook.objects.get().enabled


def test_enable_cannot_reach_another_tenants_hook(tenant):
    make_tenant("globex")
    hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)
    with pytest.raises(CommandError, match="Unknown hook for tenant globex: h"):
        run("hooks", "enable", "h", "-p", "globex")
    assert not Hook.objects.get().enabled


def test_ls_prints_a_table_of_the_tenants_hooks_only(tenant):
    hook_create(tenant=tenant, name="first", script=GOOD, enabled=True, actor=TEST_ACTOR)
    hook_create(tenant=tenant, name="second", script=GOOD, actor=TEST_ACTOR)
    hook_create(tenant=make_tenant("globex"), name="theirs", script=GOOD, actor=TEST_ACTOR)
    lines = run("hooks", "ls", "-p", "acme").splitlines()
    assert lines[0].split() == ["NAME", "POINT", "ENABLED", "VERSION", "UPDATED"]
    assert lines[1].split()[:4] == ["first", "credentials-exchange", "yes", "1"]
    assert lines[2].split()[:4] == ["second", "credentials-exchange", "no", "1"]
    assert len(lines) == 3


def test_ls_without_hooks_says_so(tenant):
    assert "no hooks" in run("hooks", "ls", "-p", "acme")


def test_rm_deletes_the_hook_and_its_secrets(tenant):
    hook_create(tenant=tenant, name="h", script=GOOD, secrets={"K": "v"}, actor=TEST_ACTOR)
    assert "Deleted hook h" in run("hooks", "rm", "h", "-p", "acme")
    assert not Hook.objects.exists() and not HookSecret.objects.exists()


def test_rm_unknown_hook_fails(tenant):
    with pytest.raises(CommandError, match="Unknown hook for tenant acme: nope"):
        run("hooks", "rm", "nope", "-p", "acme")


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_set_ls_rm_never_print_values(tenant):
    hook = hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)
    output = run("hooks", "secrets", "set", "h", "-p", "acme", "API_KEY=s3cr3t-value", "B=x=y")
    assert hook_secrets(hook=hook) == {"API_KEY": "s3cr3t-value", "B": "x=y"}
    listing = run("hooks", "secrets", "ls", "h", "-p", "acme")
    assert listing.split() == ["API_KEY", "B"]
    assert "s3cr3t-value" not in output + listing
    run("hooks", "secrets", "rm", "h", "-p", "acme", "B")
    assert hook_secrets(hook=hook) == {"API_KEY": "s3cr3t-value"}


def test_secrets_set_rejects_a_pair_without_equals_and_sets_nothing(tenant):
    hook = hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)
    with pytest.raises(CommandError, match="KEY=VALUE"):
        run("hooks", "secrets", "set", "h", "-p", "acme", "GOOD=1", "BAD")
    assert hook_secrets(hook=hook) == {}


def test_secrets_rm_of_a_missing_name_removes_nothing(tenant):
    hook = hook_create(tenant=tenant, name="h", script=GOOD, secrets={"A": "1"}, actor=TEST_ACTOR)
    with pytest.raises(CommandError, match="Hook h has no secret NOPE"):
        run("hooks", "secrets", "rm", "h", "-p", "acme", "A", "NOPE")
    assert hook_secrets(hook=hook) == {"A": "1"}


def test_secrets_set_rejects_an_invalid_name(tenant):
    hook = hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)
    with pytest.raises(CommandError, match="secret names"):
        run("hooks", "secrets", "set", "h", "-p", "acme", "bad name=1")
    assert hook_secrets(hook=hook) == {}


# --- run -----------------------------------------------------------------------------------------


def test_run_with_the_sample_payload_prints_value_claims_console_and_logs_it(tenant):
    hook = hook_create(
        tenant=tenant,
        name="h",
        script="""
module.exports = function(client, scope, audience, context, cb) {
  console.log('hello from ' + client.name);
  cb(null, {scope: scope.concat(['extra']), 'https://foo.com/claim': 'bar', plain: 1});
};""",
        actor=TEST_ACTOR,
    )
    output = run("hooks", "run", "h", "-p", "acme")
    assert "Outcome: ok" in output
    assert "Duration:" in output and " ms" in output
    assert '"scope": "read:connections extra"' in output
    assert '"https://foo.com/claim": "bar"' in output
    assert "plain: not a namespaced claim" in output
    assert "hello from test_client" in output
    run_row = HookRun.objects.get(hook=hook)
    assert run_row.source == RunSource.TEST and run_row.outcome == RunOutcome.OK


def test_run_with_payload_and_unsaved_file(tenant, tmp_path):
    hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)
    payload = write(
        tmp_path,
        "p.json",
        json.dumps({"scope": ["a"], "audience": "x", "client": {"name": "c"}, "context": {}}),
    )
    other = write(
        tmp_path,
        "o.js",
        "module.exports = function(c, s, a, ctx, cb) { cb(null, {'https://x.test/aud': a}); };",
    )
    output = run("hooks", "run", "h", "-p", "acme", "--payload", str(payload), "--file", str(other))
    assert '"https://x.test/aud": "x"' in output
    assert Hook.objects.get().script == GOOD


def test_run_exits_non_zero_when_the_hook_errs(tenant):
    hook_create(
        tenant=tenant,
        name="h",
        script="""
module.exports = function(client, scope, audience, context, cb) {
  console.log('about to fail');
  cb(new Error('access denied'));
};""",
        actor=TEST_ACTOR,
    )
    out = StringIO()
    with pytest.raises(CommandError, match="access denied") as raised:
        call_command("hooks", "run", "h", "-p", "acme", stdout=out)
    assert raised.value.returncode == 1
    assert "Outcome: error" in out.getvalue() and "about to fail" in out.getvalue()
    assert HookRun.objects.get().outcome == RunOutcome.ERROR


def test_run_rejects_bad_payload_json(tenant, tmp_path):
    hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)
    with pytest.raises(CommandError, match="not valid JSON"):
        run("hooks", "run", "h", "-p", "acme", "--payload", str(write(tmp_path, "p.json", "{")))
    with pytest.raises(CommandError, match="Unknown payload keys: user"):
        run(
            "hooks",
            "run",
            "h",
            "-p",
            "acme",
            "--payload",
            str(write(tmp_path, "q.json", '{"user": 1}')),
        )
    assert not HookRun.objects.exists()


# --- logs ----------------------------------------------------------------------------------------


def add_run(hook: Hook, **fields) -> HookRun:
    defaults = {
        "tenant": hook.tenant,
        "source": RunSource.TOKEN,
        "started_at": timezone.now(),
        "duration_ms": 3.5,
        "outcome": RunOutcome.OK,
        "console": "",
        "error": "",
    }
    return HookRun.objects.create(hook=hook, **{**defaults, **fields})


def test_logs_lists_recent_runs_with_console_and_error(tenant):
    hook = hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)
    add_run(hook, console="line one\n")
    add_run(hook, outcome=RunOutcome.ERROR, error="Error: access denied")
    other = hook_create(tenant=make_tenant("globex"), name="theirs", script=GOOD, actor=TEST_ACTOR)
    add_run(other, console="not yours")
    output = run("hooks", "logs", "-p", "acme")
    lines = output.splitlines()
    assert "h  ok  3.5 ms" in lines[0] and lines[1] == "    line one"
    assert "h  error" in lines[2] and "error: Error: access denied" in lines[3]
    assert "not yours" not in output


def test_logs_of_one_hook_as_json(tenant):
    hook = hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)
    other = hook_create(tenant=tenant, name="other", script=GOOD, actor=TEST_ACTOR)
    add_run(hook, console="mine")
    add_run(other, console="theirs")
    rows = [
        json.loads(line) for line in run("hooks", "logs", "-p", "acme", "h", "--json").splitlines()
    ]
    assert [(r["hook"], r["console"], r["outcome"]) for r in rows] == [("h", "mine", "ok")]


def test_logs_follow_prints_new_runs_as_they_happen(tenant, monkeypatch):
    hook = hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)
    add_run(hook, console="old")
    polls = []

    def fake_sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:
            add_run(hook, console="new one")

    monkeypatch.setattr(tenant_cli, "sleep", fake_sleep)
    output = run("hooks", "logs", "-p", "acme", "--follow", "--max-polls", "3")
    assert polls == [1.0, 1.0, 1.0]
    assert output.index("old") < output.index("Following") < output.index("new one")
    assert output.count("new one") == 1


def test_wt_logs_follows_until_interrupted(tenant, monkeypatch):
    hook = hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)

    def fake_sleep(seconds: float) -> None:
        if HookRun.objects.exists():
            raise KeyboardInterrupt
        add_run(hook, console="streamed")

    monkeypatch.setattr(tenant_cli, "sleep", fake_sleep)
    output = run("wt", "logs", "-p", "acme")
    assert "streamed" in output


def test_prune_runs_deletes_old_runs(tenant):
    hook = hook_create(tenant=tenant, name="h", script=GOOD, actor=TEST_ACTOR)
    add_run(hook, started_at=timezone.now() - timedelta(days=30))
    add_run(hook)
    assert "Deleted 1 hook runs" in run("hooks", "prune-runs")
    assert HookRun.objects.count() == 1


# --- wt create refusals ---------------------------------------------------------------------


def test_wt_create_name_option_and_secrets_without_extension_secret(tenant, script_file):
    run(
        "wt",
        "create",
        str(script_file),
        "-p",
        "acme",
        "--name",
        "cc",
        *SEED_META,
        "--secret",
        "API=1",
    )
    hook = Hook.objects.get()
    assert hook.name == "cc" and hook.enabled and hook_secrets(hook=hook) == {"API": "1"}


def test_wt_create_disables_the_previously_enabled_hook(tenant, script_file):
    hook_create(tenant=tenant, name="old", script=GOOD, enabled=True, actor=TEST_ACTOR)
    output = run("wt", "create", str(script_file), "-p", "acme", *SEED_META)
    assert "disabled old" in output
    assert list(Hook.objects.filter(enabled=True).values_list("name", flat=True)) == ["myrule"]


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (["--meta", "auth0-extension-name=credentials-exchange"], "auth0-extension=runtime"),
        (
            [*SEED_META[:4], "--meta", "auth0-extension-name=send-phone-message"],
            "Unknown auth0-extension-name 'send-phone-message'",
        ),
        (SEED_META[:4], "Missing --meta auth0-extension-name"),
        (
            ["--meta", "wt-compiler=auth0-ext-compilers/password-exchange", *SEED_META[2:]],
            "wt-compiler",
        ),
        (
            [
                *SEED_META,
                "--meta",
                f"auth0-extension-secret={SECRET}",
                "--secret",
                "auth0-extension-secret=other",
            ],
            "does not match",
        ),
        ([*SEED_META, "--meta", f"auth0-extension-secret={SECRET}"], "does not match"),
    ],
)
def test_wt_create_refuses_bad_metadata_and_creates_nothing(tenant, script_file, meta, message):
    with pytest.raises(CommandError, match=message):
        run("wt", "create", str(script_file), "-p", "acme", *meta)
    assert not Hook.objects.exists() and not HookSecret.objects.exists()


def test_wt_create_with_a_bad_secret_creates_nothing(tenant, script_file):
    with pytest.raises(CommandError, match="secret names"):
        run("wt", "create", str(script_file), "-p", "acme", *SEED_META, "--secret", "bad name=1")
    assert not Hook.objects.exists()


def test_wt_create_duplicate_name_fails(tenant, script_file):
    hook_create(tenant=tenant, name="myrule", script=GOOD, actor=TEST_ACTOR)
    with pytest.raises(CommandError, match="already exists"):
        run("wt", "create", str(script_file), "-p", "acme", *SEED_META)
    assert Hook.objects.get().script == GOOD


# --- the README's webtask example, run by a shell ----------------------------------


def readme_webtask_block() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```sh\n(SECRET=\$\(openssl .*?)\n```", readme, re.DOTALL)
    assert block, "README has no webtask example"
    # `wt logs` follows until Ctrl+C; the example's chain ends before it.
    return block[1].split("\npython manage.py wt logs", 1)[0]


@pytest.mark.django_db(transaction=True)
def test_readme_webtask_example_runs_as_written(tenant, script_file):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DATABASE_URL": database_url(),
        "TESSERA_VAR_DIR": str(settings.VAR_DIR),
        "TESSERA_KEK": settings.TESSERA_KEK,
    }
    (script_file.parent / "manage.py").symlink_to(Path(settings.BASE_DIR) / "manage.py")
    shell = subprocess.run(  # noqa: S603 - bash on the README's own text
        ["bash", "-c", readme_webtask_block()],  # noqa: S607 - the user's bash
        cwd=script_file.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    hook = Hook.objects.get(tenant=tenant, name="myrule")
    assert hook.enabled
    secret = hook_secrets(hook=hook)["auth0-extension-secret"]
    assert len(base64.b64decode(secret, validate=True)) == 32


def test_the_seeds_openssl_line_fails_on_openssl_3():
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=True)  # noqa: S607
    if not version.stdout.startswith("OpenSSL 3"):
        pytest.skip(f"README speaks of OpenSSL 3; this is {version.stdout.strip()}")
    seeds = subprocess.run(["openssl", "rand", "32", "-base64"], capture_output=True)  # noqa: S607
    assert seeds.returncode != 0
