"""``make run``'s demo: the logins it prints, and that the README's sample
token response is what the demo really returns, over real HTTP."""

import json
import re
import urllib.request
from io import StringIO
from pathlib import Path

import jwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client as HttpClient

from hooks.models import Hook
from hooks.services import hook_create, hook_enable
from tenant.models import AuditEntry, Tenant
from tests.factories import TEST_ACTOR

pytestmark = pytest.mark.django_db(transaction=True)


def run_demo() -> str:
    out = StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


def printed(output: str, label: str) -> str:
    match = re.search(rf"^  {label}:\s+(\S.*)$", output, re.MULTILINE)
    assert match, f"{label} not printed:\n{output}"
    return match[1]


def readme_sample_response() -> dict[str, object]:
    readme = (Path(django_settings.BASE_DIR) / "README.md").read_text()
    block = re.search(r"```json\n(\{\"access_token\".*?)\n```", readme, re.DOTALL)
    assert block, "README has no sample token response"
    return dict(json.loads(block[1]))


def test_the_first_login_is_the_demo_tenants_admin_and_the_superuser_second():
    output = run_demo()
    lines = [line for line in output.splitlines() if "/ " in line and ":" in line]
    assert lines[0].lstrip().startswith("Tenant admin:")
    assert lines[1].lstrip().startswith("Superuser:")
    username, _, password = printed(output, "Tenant admin").split()[:3]
    admin = User.objects.get(username=username)
    assert admin.is_staff and not admin.is_superuser
    assert list(admin.tenants.values_list("slug", flat=True)) == ["demo"]
    assert admin.has_perm("hooks.run_hook")
    http = HttpClient()
    assert http.login(username=username, password=password)
    page = http.get("/admin/").content.decode()
    assert "Demo" in page
    assert "Users" not in page  # the per-tenant dashboard, not the superuser's
    superuser = User.objects.get(username=printed(output, "Superuser").split()[0])
    assert superuser.is_superuser


def test_every_demo_write_is_audited_as_the_cli_and_reruns_add_no_member():
    run_demo()
    run_demo()
    entries = AuditEntry.objects.filter(tenant__slug="demo")
    assert set(entries.values_list("source", flat=True)) == {"cli"}
    added = entries.filter(object_type="membership", action="add-member")
    assert sorted(added.values_list("object_repr", flat=True)) == ["admin", "demo-admin"]
    # Each run gives new passwords: recorded by name, never by value.
    assert entries.filter(action="set-password").count() == 4
    assert all(e.before is None and e.after is None for e in entries.filter(action="set-password"))


def test_readme_sample_response_is_what_the_demo_returns(live_server, settings):
    settings.PUBLIC_URL = live_server.url
    output = run_demo()
    tenant = Tenant.objects.get(slug="demo")
    body = json.dumps(
        {
            "client_id": printed(output, "client_id"),
            "client_secret": printed(output, "client_secret"),
            "audience": "https://api.demo.test/",
            "grant_type": "client_credentials",
        }
    ).encode()
    request = urllib.request.Request(
        f"{tenant.issuer}oauth/token", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        answer = json.load(response)
    sample = readme_sample_response()
    assert list(answer) == list(sample)
    assert {k: v for k, v in answer.items() if k != "access_token"} == {
        k: v for k, v in sample.items() if k != "access_token"
    }
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["https://foo.com/claim"] == "bar"
    assert claims["scope"] == "read:data extra"


def test_the_banner_names_the_hook_actually_enabled():
    assert "add-claim (adds https://foo.com/claim" in printed(run_demo(), "Enabled hook")
    other = hook_create(
        tenant=Tenant.objects.get(slug="demo"),
        name="tier",
        script="module.exports = function(c, s, a, x, cb) { cb(null, {scope: s}); };",
        actor=TEST_ACTOR,
    )
    hook_enable(hook=other, actor=TEST_ACTOR)
    assert printed(run_demo(), "Enabled hook") == "tier (version 1)"
    Hook.objects.filter(tenant__slug="demo").update(enabled=False)
    assert printed(run_demo(), "Enabled hook").startswith("none")
