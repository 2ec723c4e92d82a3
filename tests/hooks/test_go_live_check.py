"""Putting a script live (save or restore of the enabled hook, enable) runs it
on the point's sample payload first; a failing one needs an explicit
confirmation, in the services, the CLI and the dashboard's endpoints."""

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient
from django.urls import reverse

from hooks.choices import RunSource
from hooks.models import Hook, HookRun
from hooks.services import (
    HookSampleRunFailed,
    hook_create,
    hook_enable,
    hook_restore_version,
    hook_save_script,
)
from tests.dashboard.conftest import SEED_SCRIPT, make_admin
from tests.factories import TEST_ACTOR, make_tenant

pytestmark = pytest.mark.django_db

THROWS = "module.exports = function(client, scope, audience, context, cb) {\n  throw new Error('broken');\n};\n"
# Compiles, but exports no hook: never saved, confirmed or not (check_script).
EXPORTS_NOTHING = "var x = 1;\n"


@pytest.fixture
def enabled_hook() -> Hook:
    return hook_create(
        tenant=make_tenant("golive"),
        name="live",
        script=SEED_SCRIPT,
        enabled=True,
        actor=TEST_ACTOR,
    )


def test_saving_a_failing_script_on_the_enabled_hook_is_refused(enabled_hook):
    with pytest.raises(HookSampleRunFailed) as caught:
        hook_save_script(hook=enabled_hook, script=THROWS, base_version=1, actor=TEST_ACTOR)
    assert caught.value.report.ok is False
    enabled_hook.refresh_from_db()
    assert (enabled_hook.version, enabled_hook.script) == (1, SEED_SCRIPT)


@pytest.mark.parametrize("script", [EXPORTS_NOTHING, ""], ids=["var", "empty"])
@pytest.mark.parametrize("confirm", [False, True])
def test_a_script_that_exports_no_hook_is_never_saved(enabled_hook, script, confirm):
    with pytest.raises(ValidationError) as caught:
        hook_save_script(
            hook=enabled_hook,
            script=script,
            base_version=1,
            confirm_failing=confirm,
            actor=TEST_ACTOR,
        )
    assert caught.value.code == "invalid_script"
    assert "module.exports must be a function" in caught.value.messages[0]
    enabled_hook.refresh_from_db()
    assert (enabled_hook.version, enabled_hook.script) == (1, SEED_SCRIPT)


def test_confirmed_failing_save_goes_live(enabled_hook):
    hook = hook_save_script(
        hook=enabled_hook, script=THROWS, base_version=1, confirm_failing=True, actor=TEST_ACTOR
    )
    assert (hook.version, hook.script, hook.enabled) == (2, THROWS, True)


def test_a_disabled_hook_saves_failing_scripts_without_a_run():
    tenant = make_tenant("draft")
    hook = hook_create(
        tenant=tenant, name="draft", script=SEED_SCRIPT, enabled=False, actor=TEST_ACTOR
    )
    assert hook_save_script(hook=hook, script=THROWS, base_version=1, actor=TEST_ACTOR).version == 2
    assert not HookRun.objects.filter(hook=hook).exists()


def test_the_sample_run_is_logged_as_a_test_run(enabled_hook):
    with pytest.raises(HookSampleRunFailed):
        hook_save_script(hook=enabled_hook, script=THROWS, base_version=1, actor=TEST_ACTOR)
    run = HookRun.objects.get(hook=enabled_hook)
    assert run.source == RunSource.TEST
    assert "broken" in run.error


def test_restoring_a_failing_version_needs_confirmation(enabled_hook):
    hook_save_script(
        hook=enabled_hook, script=THROWS, base_version=1, confirm_failing=True, actor=TEST_ACTOR
    )
    hook_save_script(
        hook=enabled_hook, script=SEED_SCRIPT + "// 3", base_version=2, actor=TEST_ACTOR
    )
    with pytest.raises(HookSampleRunFailed):
        hook_restore_version(hook=enabled_hook, number=2, base_version=3, actor=TEST_ACTOR)
    restored = hook_restore_version(
        hook=enabled_hook, number=2, base_version=3, confirm_failing=True, actor=TEST_ACTOR
    )
    assert (restored.version, restored.script) == (4, THROWS)


def test_enabling_a_failing_hook_needs_confirmation(enabled_hook):
    broken = hook_create(tenant=enabled_hook.tenant, name="broken", script=THROWS, actor=TEST_ACTOR)
    with pytest.raises(HookSampleRunFailed):
        hook_enable(hook=broken, actor=TEST_ACTOR)
    assert list(Hook.objects.filter(enabled=True)) == [enabled_hook]
    assert hook_enable(hook=broken, confirm_failing=True, actor=TEST_ACTOR) == enabled_hook
    broken.refresh_from_db()
    assert broken.enabled


def test_a_stale_base_version_is_a_conflict_before_any_run(enabled_hook):
    hook_save_script(
        hook=enabled_hook, script=SEED_SCRIPT + "// 2", base_version=1, actor=TEST_ACTOR
    )
    before = HookRun.objects.count()
    with pytest.raises(Exception, match="changed by someone else"):
        hook_save_script(hook=enabled_hook, script=THROWS, base_version=1, actor=TEST_ACTOR)
    assert HookRun.objects.count() == before


def test_cli_update_refuses_a_failing_script_and_force_saves_it(enabled_hook, tmp_path: Path):
    script = tmp_path / "empty.js"
    script.write_text("")
    with pytest.raises(CommandError, match=r"module\.exports must be a function"):
        call_command("hooks", "update", "live", "-p", "golive", str(script), "--force")
    enabled_hook.refresh_from_db()
    assert enabled_hook.script == SEED_SCRIPT
    script.write_text(THROWS)
    with pytest.raises(CommandError, match="broken"):
        call_command("hooks", "update", "live", "-p", "golive", str(script))
    call_command("hooks", "update", "live", "-p", "golive", str(script), "--force")
    enabled_hook.refresh_from_db()
    assert enabled_hook.script == THROWS


def test_cli_enable_refuses_a_failing_hook_and_force_enables_it(enabled_hook):
    hook_create(tenant=enabled_hook.tenant, name="broken", script=THROWS, actor=TEST_ACTOR)
    with pytest.raises(CommandError, match="--force"):
        call_command("hooks", "enable", "broken", "-p", "golive")
    call_command("hooks", "enable", "broken", "-p", "golive", "--force")
    assert Hook.objects.get(name="broken").enabled


def test_dashboard_save_answers_422_with_the_report_then_saves_when_confirmed(enabled_hook):
    http = HttpClient()
    http.force_login(make_admin("golive-admin", enabled_hook.tenant))
    url = reverse("admin:hooks_hook_save", args=[enabled_hook.pk])
    refused = http.post(url, {"script": THROWS, "base_version": 1})
    assert refused.status_code == 422
    body = refused.json()
    assert body["confirm"] is True
    assert body["report"]["error"]["message"].endswith("broken")
    confirmed = http.post(url, {"script": THROWS, "base_version": 1, "confirm_failing": "1"})
    assert confirmed.status_code == 200
    assert confirmed.json()["version"] == 2


def test_dashboard_enable_shows_a_confirmation_page(enabled_hook):
    broken = hook_create(tenant=enabled_hook.tenant, name="broken", script=THROWS, actor=TEST_ACTOR)
    http = HttpClient()
    http.force_login(make_admin("golive-admin", enabled_hook.tenant))
    url = reverse("admin:hooks_hook_enable", args=[broken.pk])
    page = http.post(url)
    assert page.status_code == 409
    assert "Go live anyway" in page.content.decode()
    broken.refresh_from_db()
    assert not broken.enabled
    assert http.post(url, {"confirm_failing": "1"}).status_code == 302
    broken.refresh_from_db()
    assert broken.enabled


def test_logs_source_keeps_test_runs_apart(enabled_hook, capsys):
    from io import StringIO

    from hooks.trial_run import hook_test_run

    hook_test_run(tenant=enabled_hook.tenant, script=THROWS, payload={}, hook=enabled_hook)
    out = StringIO()
    call_command("hooks", "logs", "-p", "golive", "--source", "token", stdout=out)
    assert "(test)" not in out.getvalue()
    out = StringIO()
    call_command("hooks", "logs", "-p", "golive", "--source", "test", stdout=out)
    assert "(test)" in out.getvalue()


def test_dashboard_save_counts_as_a_test_run_for_the_limits(enabled_hook, settings):
    from hooks import trial_run_slots

    settings.TESSERA_TEST_RUNS_PER_USER = 1
    admin = make_admin("golive-admin", enabled_hook.tenant)
    http = HttpClient()
    http.force_login(admin)
    url = reverse("admin:hooks_hook_save", args=[enabled_hook.pk])
    with trial_run_slots.test_run_slot(user_id=admin.pk):  # a Run in another tab
        busy = http.post(url, {"script": SEED_SCRIPT + "// 2", "base_version": 1})
    assert busy.status_code == 429
    assert busy.json()["busy"] is True
    enabled_hook.refresh_from_db()
    assert enabled_hook.version == 1
    assert http.post(url, {"script": SEED_SCRIPT + "// 2", "base_version": 1}).status_code == 200
