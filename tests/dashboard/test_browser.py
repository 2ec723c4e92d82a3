"""The dashboard in headless Chromium: from login to an edited, tested and
enabled hook, and tenant isolation of guessed URLs."""

import pytest

from hooks.models import Hook
from hooks.services import hook_create
from tests.dashboard.browser import (
    BROWSER_MARKS,
    SCREENSHOTS,
    fresh_secret,
    hook_url,
    log_in,
    token_claims,
    wait_for_editor,
)
from tests.dashboard.conftest import ENABLED_SECOND, SEED_SCRIPT, make_world
from tests.factories import TEST_ACTOR

pytestmark = BROWSER_MARKS


def test_create_hook_then_type_and_save_with_ctrl_s(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/hooks/hook/add/")
    page.fill("#id_name", "typed-hook")
    page.click("input[name=_save]")
    wait_for_editor(page)
    hook = Hook.objects.get(tenant=world.tenant, name="typed-hook")
    assert hook.enabled is False  # the seed hook was the point's first

    page.click(".django-ace-widget .ace_content >> nth=0")
    page.keyboard.press("Control+End")
    page.keyboard.type("\n// typed in the browser")
    page.keyboard.press("Control+s")
    page.wait_for_selector("#hook-save-status.ok")
    assert "Saved version 2" in page.inner_text("#hook-save-status")
    assert page.url.endswith(f"/admin/hooks/hook/{hook.pk}/change/")  # never left the page
    hook.refresh_from_db()
    assert hook.version == 2
    assert "// typed in the browser" in hook.script


@pytest.mark.page_problems(r"^HTTP 400: .*/save/$")  # the refused save
def test_syntax_error_blocks_save_with_line_and_column(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    page.evaluate("window.tesseraHookEditor.setValue('module.exports = function( {\\n', 1)")
    page.keyboard.press("Control+s")
    page.wait_for_selector("#hook-save-status.error")
    assert "line" in page.inner_text("#hook-save-status")
    world.hook.refresh_from_db()
    assert world.hook.script == SEED_SCRIPT


def test_run_shows_claims_and_console_of_the_seed_hook(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    page.click("#run-button")
    page.wait_for_selector("#run-result:not([hidden])")
    assert "https://example.com/tier" in page.inner_text("#run-claims")
    assert "gold" in page.inner_text("#run-claims")
    assert "exchanging for test_client" in page.inner_text("#run-console")
    assert page.inner_text("#run-outcome") == "ok"
    page.wait_for_selector("#runs-body td.tessera-outcome-ok")  # the live log caught up
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "hook-run.png"), full_page=True)


def test_run_uses_the_unsaved_text_and_reports_dropped_claims(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    page.evaluate(
        """window.tesseraHookEditor.setValue(
        "module.exports = function(client, scope, audience, context, cb) {\\n" +
        "  cb(null, {scope: scope, plain: 1, 'https://x.example.org/unsaved': true});" +
        "\\n};\\n", 1)"""
    )
    page.click("#run-button")
    page.wait_for_selector("#run-result:not([hidden])")
    assert "https://x.example.org/unsaved" in page.inner_text("#run-claims")
    assert "plain" in page.inner_text("#run-dropped")
    world.hook.refresh_from_db()
    assert world.hook.script == SEED_SCRIPT  # running saved nothing


def test_throwing_hook_shows_its_error_and_line(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    page.evaluate(
        """window.tesseraHookEditor.setValue(
        "module.exports = function(client, scope, audience, context, cb) {\\n" +
        "  throw new Error('boom');\\n};\\n", 1)"""
    )
    page.click("#run-button")
    page.wait_for_selector("#run-error-box:not([hidden])")
    error = page.inner_text("#run-error")
    assert "boom" in error
    assert "line 2" in error


def test_enabling_a_second_hook_disables_the_first(page, live_server, world):
    second = hook_create(
        tenant=world.tenant, name="second", script=SEED_SCRIPT, enabled=None, actor=TEST_ACTOR
    )
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, second))
    page.click("#hook-enable")
    page.wait_for_selector(".messagelist")
    assert ENABLED_SECOND in page.inner_text(".messagelist")
    world.hook.refresh_from_db()
    second.refresh_from_db()
    assert (world.hook.enabled, second.enabled) == (False, True)


def test_enabled_hooks_claims_appear_in_a_fresh_token(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/hooks/hook/")
    assert "● enabled" in page.inner_text(".tessera-points")
    assert token_claims(world, fresh_secret(world))["https://example.com/tier"] == "gold"


def test_landing_page_shows_the_tenant_at_a_glance(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/t/alpha/")
    text = page.inner_text("#content")
    assert "alpha API" in text
    assert "alpha service" in text
    assert "alpha-hook" in text
    # README's landing.png comes from test_browser_activity.py, with real traffic charted.


@pytest.mark.page_problems(r"^HTTP 404: .*/change/$")  # the point of the test
def test_other_tenants_hook_url_is_404(page, live_server, world):
    other = make_world("bravo")
    log_in(page, live_server, other.admin.username)
    response = page.goto(hook_url(live_server, world.hook))
    assert response is not None
    assert response.status == 404
    assert "alpha-hook" not in page.content()


AUTH0_ACTION = """exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim("https://my-api.exampleco.com/request-ip", event.request.ip);
};"""


def test_an_auth0_action_pasted_in_the_dashboard_shapes_a_real_token(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/hooks/hook/add/")
    page.wait_for_function("() => !!document.querySelector('.django-ace-widget').editor")
    page.select_option("#id_kind", "action")
    starter = page.evaluate("document.querySelector('.django-ace-widget').editor.getValue()")
    assert "exports.onExecuteCredentialsExchange" in starter
    page.evaluate(
        "text => document.querySelector('.django-ace-widget').editor.setValue(text, -1)",
        AUTH0_ACTION,
    )
    page.fill("#id_name", "request-ip")
    page.click("input[name=_save]")
    wait_for_editor(page)
    action = Hook.objects.get(tenant=world.tenant, name="request-ip")
    assert (action.kind, action.script) == ("action", AUTH0_ACTION)

    # Run takes the Action's sample event and shows the claim it sets.
    assert '"event"' in page.evaluate("document.getElementById('id_payload').value")
    page.click("#run-button")
    page.wait_for_selector("#run-claims:has-text('request-ip')")
    assert "127.0.0.1" in page.inner_text("#run-claims")
    assert page.inner_text("#run-value-title") == "Action result"

    page.click("#hook-enable")
    page.wait_for_selector("#hook-status:has-text('enabled')")
    assert (
        token_claims(world, fresh_secret(world))["https://my-api.exampleco.com/request-ip"]
        == "127.0.0.1"
    )
