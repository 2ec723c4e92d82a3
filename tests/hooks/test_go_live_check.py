"""Putting a script live (save or restore of the enabled hook, enable) first
dry-runs it on the tenant's recorded token requests and clients
(``hooks.dry_run``); it is refused without a confirmation only for a
regression, in the services, the CLI and the dashboard's endpoints. Two
tenants side by side: one's traffic never judges the other's change."""

import json
from io import StringIO
from pathlib import Path

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient
from django.urls import reverse

from clients.services import client_delete, client_update
from hooks.dry_run import GoLiveRefused, hook_candidate, replay_inputs
from hooks.dry_run import dry_run as run_dry_run
from hooks.models import Hook, HookRun, HookStorage, RecordedInput
from hooks.services import hook_create, hook_enable, hook_restore_version, hook_save_script
from tenant.models import AuditEntry
from tests.dashboard.conftest import SEED_SCRIPT, make_admin
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db

THROWS = (
    "module.exports = function(client, scope, audience, context, cb) {\n"
    "  throw new Error('broken');\n"
    "};\n"
)
# Throws for one client only, at line 2.
THROWS_FOR_BILLING = (
    "module.exports = function(client, scope, audience, context, cb) {\n"
    "  if (client.name === 'billing') throw new Error('no billing');\n"
    "  cb(null, {scope: scope, 'https://example.com/v': 2});\n"
    "};\n"
)
# The hook: a claim from a JSON document in each client's metadata.
# It fails on the sample payload (no `profile` there) and serves every real client.
METADATA_HOOK = (
    "module.exports = function(client, scope, audience, context, cb) {\n"
    "  var profile = JSON.parse(String(client.metadata.profile));\n"
    "  cb(null, {scope: scope, 'https://example.com/plan': profile.plan});\n"
    "};\n"
)
# Compiles, but exports no hook: never saved, confirmed or not (check_script).
EXPORTS_NOTHING = "var x = 1;\n"


def token(tenant, client_id: str, secret: str, audience: str, scope: str | None = None):
    body = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "audience": audience,
    }
    if scope:
        body["scope"] = scope
    return HttpClient().post(
        f"/{tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
    )


class Shop:
    """A tenant with an API, two clients that have each called once with
    the seed hook enabled, and that hook."""

    def __init__(self, slug: str) -> None:
        self.tenant = make_tenant(slug)
        self.audience = f"https://api.{slug}.test/"
        api = make_api(self.tenant, self.audience, scopes=["read:data"])
        self.clients = {}
        for name, plan in (("orders", "gold"), ("billing", "free")):
            client, secret = make_client(
                self.tenant,
                {api: ["read:data"]},
                name=name,
                metadata={"profile": json.dumps({"plan": plan})},
            )
            self.clients[name] = (client, secret)
        self.hook = hook_create(
            tenant=self.tenant, name="live", script=SEED_SCRIPT, enabled=True, actor=TEST_ACTOR
        )

    def call(self, name: str) -> dict:
        client, secret = self.clients[name]
        response = token(self.tenant, client.client_id, secret, self.audience)
        assert response.status_code == 200, response.content
        return jwt.decode(response.json()["access_token"], options={"verify_signature": False})

    def call_all(self) -> None:
        for name in self.clients:
            self.call(name)


@pytest.fixture
def shop() -> Shop:
    shop = Shop("golive")
    shop.call_all()
    return shop


@pytest.fixture
def other() -> Shop:
    """Another tenant, whose clients have called too."""
    other = Shop("other")
    other.call_all()
    return other


def test_a_script_that_fails_for_a_client_that_calls_is_refused_naming_it(shop, other):
    with pytest.raises(GoLiveRefused) as caught:
        hook_save_script(
            hook=shop.hook, script=THROWS_FOR_BILLING, base_version=1, actor=TEST_ACTOR
        )
    message = caught.value.messages[0]
    billing = shop.clients["billing"][0].client_id
    assert f"billing ({billing})" in message
    assert "orders" not in message
    assert "1 recorded request would fail" in message
    assert "no billing (line 2" in message
    report = caught.value.dry_run
    assert [item.input.client_name for item in report.regressions] == ["billing"]
    # Only this tenant's inputs were replayed.
    assert {item.input.client_id for item in report.replayed} == {
        c.client_id for c, _ in shop.clients.values()
    }
    shop.hook.refresh_from_db()
    assert (shop.hook.version, shop.hook.script) == (1, SEED_SCRIPT)


def test_a_script_that_fails_only_on_the_sample_goes_live(shop, other):
    hook = hook_save_script(hook=shop.hook, script=METADATA_HOOK, base_version=1, actor=TEST_ACTOR)
    assert (hook.version, hook.script) == (2, METADATA_HOOK)
    assert shop.call("orders")["https://example.com/plan"] == "gold"
    assert shop.call("billing")["https://example.com/plan"] == "free"


def test_a_tenant_without_clients_takes_a_script_that_fails_on_the_sample(other):
    """The sample alone never refuses: with no client, nothing can break."""
    tenant = make_tenant("empty")
    hook = hook_create(tenant=tenant, name="h", script=SEED_SCRIPT, enabled=True, actor=TEST_ACTOR)
    saved = hook_save_script(hook=hook, script=THROWS, base_version=1, actor=TEST_ACTOR)
    assert saved.script == THROWS
    entry = AuditEntry.objects.filter(tenant=tenant, action="save").latest("id")
    assert (entry.after or {})["dry_run"]["sample"] == 1
    assert (entry.after or {})["dry_run"]["refused"] is False


def test_a_script_that_fails_for_every_client_is_refused_even_where_live_fails_too(shop):
    hook_save_script(
        hook=shop.hook, script=THROWS, base_version=1, confirm_failing=True, actor=TEST_ACTOR
    )
    with pytest.raises(GoLiveRefused, match="every client"):
        hook_save_script(hook=shop.hook, script=THROWS + "// 3", base_version=2, actor=TEST_ACTOR)


def test_clients_with_a_grant_that_never_called_are_tried_from_their_grant(other):
    shop = Shop("golive")  # nobody has called
    with pytest.raises(GoLiveRefused) as caught:
        hook_save_script(
            hook=shop.hook, script=THROWS_FOR_BILLING, base_version=1, actor=TEST_ACTOR
        )
    report = caught.value.dry_run
    assert {item.input.source for item in report.replayed} == {"grant"}
    assert "0 recorded requests would fail" in caught.value.messages[0]
    assert "billing" in caught.value.messages[0]


@pytest.mark.parametrize("script", [EXPORTS_NOTHING, ""], ids=["var", "empty"])
@pytest.mark.parametrize("confirm", [False, True])
def test_a_script_that_exports_no_hook_is_never_saved(shop, script, confirm):
    with pytest.raises(ValidationError) as caught:
        hook_save_script(
            hook=shop.hook, script=script, base_version=1, confirm_failing=confirm, actor=TEST_ACTOR
        )
    assert caught.value.code == "invalid_script"
    assert "module.exports must be a function" in caught.value.messages[0]
    shop.hook.refresh_from_db()
    assert (shop.hook.version, shop.hook.script) == (1, SEED_SCRIPT)


def test_a_confirmed_regression_goes_live_and_the_audit_entry_says_so(shop):
    hook = hook_save_script(
        hook=shop.hook,
        script=THROWS_FOR_BILLING,
        base_version=1,
        confirm_failing=True,
        actor=TEST_ACTOR,
    )
    assert (hook.version, hook.script, hook.enabled) == (2, THROWS_FOR_BILLING, True)
    entry = AuditEntry.objects.filter(tenant=shop.tenant, action="save").latest("id")
    summary = (entry.after or {})["dry_run"]
    assert summary["regressions"] == 1
    assert summary["confirmed"] is True
    assert summary["recorded_requests_failing"] == 1
    assert summary["clients_failing"] == [f"billing ({shop.clients['billing'][0].client_id})"]
    assert "payload" not in json.dumps(summary)


def test_a_disabled_hook_saves_failing_scripts_without_a_run(shop):
    draft = hook_create(tenant=shop.tenant, name="draft", script=SEED_SCRIPT, actor=TEST_ACTOR)
    before = HookRun.objects.count()
    assert (
        hook_save_script(hook=draft, script=THROWS, base_version=1, actor=TEST_ACTOR).version == 2
    )
    assert HookRun.objects.count() == before


def test_a_dry_run_writes_no_run_records_and_no_storage(shop):
    before = HookRun.objects.count()
    storing = (
        "module.exports = function(c, s, a, ctx, cb) {\n"
        "  ctx.webtask.storage.set({touched: true}, function () { cb(null, {scope: s}); });\n"
        "};\n"
    )
    hook_save_script(hook=shop.hook, script=storing, base_version=1, actor=TEST_ACTOR)
    assert HookRun.objects.count() == before
    assert not HookStorage.objects.filter(hook=shop.hook).exists()


def test_restoring_a_version_that_breaks_a_client_needs_confirmation(shop):
    hook_save_script(
        hook=shop.hook,
        script=THROWS_FOR_BILLING,
        base_version=1,
        confirm_failing=True,
        actor=TEST_ACTOR,
    )
    hook_save_script(hook=shop.hook, script=SEED_SCRIPT + "// 3", base_version=2, actor=TEST_ACTOR)
    with pytest.raises(GoLiveRefused, match="billing"):
        hook_restore_version(hook=shop.hook, number=2, base_version=3, actor=TEST_ACTOR)
    restored = hook_restore_version(
        hook=shop.hook, number=2, base_version=3, confirm_failing=True, actor=TEST_ACTOR
    )
    assert (restored.version, restored.script) == (4, THROWS_FOR_BILLING)


def test_enabling_a_hook_that_breaks_a_client_needs_confirmation(shop):
    broken = hook_create(
        tenant=shop.tenant, name="broken", script=THROWS_FOR_BILLING, actor=TEST_ACTOR
    )
    with pytest.raises(GoLiveRefused, match="billing"):
        hook_enable(hook=broken, actor=TEST_ACTOR)
    assert list(Hook.objects.filter(tenant=shop.tenant, enabled=True)) == [shop.hook]
    assert hook_enable(hook=broken, confirm_failing=True, actor=TEST_ACTOR) == shop.hook
    broken.refresh_from_db()
    assert broken.enabled


def test_enabling_the_first_hook_judges_it_against_tokens_without_a_hook(other):
    """With nothing live, every client gets its token today: a hook that
    fails for one of them is a regression."""
    tenant = make_tenant("fresh")
    api = make_api(tenant, "https://api.fresh.test/", scopes=["read:data"])
    make_client(tenant, {api: ["read:data"]}, name="billing")
    hook = hook_create(tenant=tenant, name="h", script=THROWS_FOR_BILLING, actor=TEST_ACTOR)
    with pytest.raises(GoLiveRefused, match="billing"):
        hook_enable(hook=hook, actor=TEST_ACTOR)


def test_a_stale_base_version_is_a_conflict_before_any_run(shop):
    hook_save_script(hook=shop.hook, script=SEED_SCRIPT + "// 2", base_version=1, actor=TEST_ACTOR)
    before = HookRun.objects.count()
    with pytest.raises(Exception, match="changed by someone else"):
        hook_save_script(hook=shop.hook, script=THROWS, base_version=1, actor=TEST_ACTOR)
    assert HookRun.objects.count() == before


def test_cli_update_refuses_a_script_that_breaks_a_calling_client_and_force_saves_it(
    shop, other, tmp_path: Path
):
    script = tmp_path / "empty.js"
    script.write_text("")
    with pytest.raises(CommandError, match=r"module\.exports must be a function"):
        call_command("hooks", "update", "live", "-p", "golive", str(script), "--force")
    script.write_text(THROWS_FOR_BILLING)
    billing = shop.clients["billing"][0].client_id
    with pytest.raises(CommandError) as caught:
        call_command("hooks", "update", "live", "-p", "golive", str(script))
    message = str(caught.value)
    assert f"billing ({billing})" in message
    assert "1 recorded request would fail" in message
    assert "--force" in message
    shop.hook.refresh_from_db()
    assert shop.hook.script == SEED_SCRIPT
    call_command("hooks", "update", "live", "-p", "golive", str(script), "--force")
    shop.hook.refresh_from_db()
    assert shop.hook.script == THROWS_FOR_BILLING
    assert shop.call("orders")["https://example.com/v"] == 2
    # The other tenant's hook and traffic are untouched.
    assert other.call("billing")["https://example.com/tier"] == "gold"


def test_cli_puts_the_metadata_hook_live_and_it_serves_every_client(shop, other, tmp_path):
    script = tmp_path / "profile.js"
    script.write_text(METADATA_HOOK)
    call_command("hooks", "create", "-n", "profile", "-p", "golive", str(script))
    out = StringIO()
    call_command("hooks", "enable", "profile", "-p", "golive", stdout=out)
    assert "Enabled hook profile" in out.getvalue()
    assert shop.call("orders")["https://example.com/plan"] == "gold"
    assert shop.call("billing")["https://example.com/plan"] == "free"
    call_command("hooks", "update", "profile", "-p", "golive", str(script))  # unchanged: no refusal
    assert "https://example.com/plan" not in other.call("orders")


def test_cli_enable_refuses_a_breaking_hook_and_force_enables_it(shop):
    hook_create(tenant=shop.tenant, name="broken", script=THROWS, actor=TEST_ACTOR)
    with pytest.raises(CommandError, match="--force"):
        call_command("hooks", "enable", "broken", "-p", "golive")
    call_command("hooks", "enable", "broken", "-p", "golive", "--force")
    assert Hook.objects.get(tenant=shop.tenant, name="broken").enabled


def test_dashboard_save_answers_422_with_what_changes_then_saves_when_confirmed(shop):
    http = HttpClient()
    http.force_login(make_admin("golive-admin", shop.tenant))
    url = reverse("admin:hooks_hook_save", args=[shop.hook.pk])
    refused = http.post(url, {"script": THROWS_FOR_BILLING, "base_version": 1})
    assert refused.status_code == 422
    body = refused.json()
    assert body["confirm"] is True
    assert body["dry_run"]["regressions"] == 1
    assert "tessera-wc-regression" in body["dry_run"]["html"]
    assert "no billing (line 2" in body["dry_run"]["html"]
    confirmed = http.post(
        url, {"script": THROWS_FOR_BILLING, "base_version": 1, "confirm_failing": "1"}
    )
    assert confirmed.status_code == 200
    assert confirmed.json()["version"] == 2


def test_dashboard_save_of_the_metadata_hook_goes_live_at_once(shop):
    http = HttpClient()
    http.force_login(make_admin("golive-admin", shop.tenant))
    url = reverse("admin:hooks_hook_save", args=[shop.hook.pk])
    assert http.post(url, {"script": METADATA_HOOK, "base_version": 1}).status_code == 200
    assert shop.call("billing")["https://example.com/plan"] == "free"


def test_dashboard_enable_shows_what_changes_on_its_confirmation_page(shop):
    broken = hook_create(
        tenant=shop.tenant, name="broken", script=THROWS_FOR_BILLING, actor=TEST_ACTOR
    )
    http = HttpClient()
    http.force_login(make_admin("golive-admin", shop.tenant))
    url = reverse("admin:hooks_hook_enable", args=[broken.pk])
    page = http.post(url)
    assert page.status_code == 409
    html = page.content.decode()
    assert "Go live anyway" in html
    assert "What changes" in html
    assert "tessera-wc-regression" in html
    broken.refresh_from_db()
    assert not broken.enabled
    assert http.post(url, {"confirm_failing": "1"}).status_code == 302
    broken.refresh_from_db()
    assert broken.enabled


def test_what_changes_endpoint_compares_the_editor_text_with_what_is_live(shop, other):
    http = HttpClient()
    http.force_login(make_admin("golive-admin", shop.tenant))
    url = reverse("admin:hooks_hook_what_changes", args=[shop.hook.pk])
    answer = http.post(url, {"script": THROWS_FOR_BILLING})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["recorded"], body["regressions"], body["refused"]) == (2, 1, True)
    orders = next(item for item in body["replayed"] if item["client_name"] == "orders")
    assert orders["claim_changes"] == [
        {
            "name": "https://example.com/tier",
            "live": "gold",
            "candidate": None,
            "change": "removed",
        },
        {"name": "https://example.com/v", "live": None, "candidate": 2, "change": "added"},
    ]
    # Nothing was saved, and another tenant's hook is a 404.
    shop.hook.refresh_from_db()
    assert shop.hook.version == 1
    assert (
        http.post(
            reverse("admin:hooks_hook_what_changes", args=[other.hook.pk]), {"script": SEED_SCRIPT}
        ).status_code
        == 404
    )


def test_what_changes_needs_the_run_permission(shop):
    http = HttpClient()
    http.force_login(make_admin("no-run", shop.tenant, can_run=False))
    url = reverse("admin:hooks_hook_what_changes", args=[shop.hook.pk])
    assert http.post(url, {"script": SEED_SCRIPT}).status_code == 403


def test_replay_inputs_are_the_tenants_own_in_order(shop, other):
    inputs = replay_inputs(tenant=shop.tenant, trigger_id=shop.hook.trigger_id)
    assert [item.source for item in inputs] == ["recorded", "recorded"]
    assert RecordedInput.objects.filter(tenant=other.tenant).count() == 2
    report = run_dry_run(
        tenant=shop.tenant,
        trigger_id=shop.hook.trigger_id,
        candidate=hook_candidate(hook=shop.hook, script=SEED_SCRIPT),
    )
    assert not report.refuses and not report.clients_changed()


def test_recorded_requests_are_replayed_as_they_would_be_made_today(shop, other):
    """A client's metadata fixed since it called is replayed as it is now; a
    deleted client's requests are not replayed (they would be refused before
    any hook runs)."""
    billing, _ = shop.clients["billing"]
    orders, _ = shop.clients["orders"]
    client_update(client=billing, metadata={"profile": '{"plan": "pro"}'}, actor=TEST_ACTOR)
    client_delete(client=orders, actor=TEST_ACTOR)
    inputs = replay_inputs(tenant=shop.tenant, trigger_id=shop.hook.trigger_id)
    assert [(item.source, item.client_id) for item in inputs] == [("recorded", billing.client_id)]
    assert inputs[0].payload["client"]["metadata"] == {"profile": '{"plan": "pro"}'}
    assert inputs[0].payload["scope"] == ["read:data"]


def test_dashboard_save_counts_as_a_test_run_for_the_limits(shop, settings):
    from hooks import trial_run_slots

    settings.TESSERA_TEST_RUNS_PER_USER = 1
    admin = make_admin("golive-admin", shop.tenant)
    http = HttpClient()
    http.force_login(admin)
    url = reverse("admin:hooks_hook_save", args=[shop.hook.pk])
    with trial_run_slots.test_run_slot(user_id=admin.pk):  # a Run in another tab
        busy = http.post(url, {"script": SEED_SCRIPT + "// 2", "base_version": 1})
    assert busy.status_code == 429
    assert busy.json()["busy"] is True
    shop.hook.refresh_from_db()
    assert shop.hook.version == 1
    assert http.post(url, {"script": SEED_SCRIPT + "// 2", "base_version": 1}).status_code == 200


def test_logs_source_keeps_test_runs_apart(shop):
    from hooks.trial_run import hook_test_run

    hook_test_run(tenant=shop.tenant, script=THROWS, payload={}, hook=shop.hook)
    out = StringIO()
    call_command("hooks", "logs", "-p", "golive", "--source", "token", stdout=out)
    assert "(test)" not in out.getvalue()
    out = StringIO()
    call_command("hooks", "logs", "-p", "golive", "--source", "test", stdout=out)
    assert "(test)" in out.getvalue()
