"""The hook page's dry runs in headless Chromium: the "What changes" panel
(the editor's text against what is live, per client, side by side), the
refusal of a save that breaks a calling client, and the Run panel's replay
of the editor's text on the recorded inputs. Two tenants whose clients have
called side by side: one's traffic never shows on the other's page."""

import json

import pytest

from clients.services import client_grant_create
from tests.dashboard.browser import (
    BROWSER_MARKS,
    SCREENSHOTS,
    fresh_secret,
    hook_url,
    log_in,
    token_claims,
    wait_for_editor,
)
from tests.dashboard.conftest import make_world
from tests.factories import TEST_ACTOR, make_client

pytestmark = BROWSER_MARKS

THROWS_FOR_BILLING = (
    "module.exports = function(client, scope, audience, context, cb) {\n"
    "  if (client.name === 'billing') throw new Error('no billing');\n"
    "  cb(null, {scope: scope, 'https://example.com/tier': 'platinum'});\n"
    "};\n"
)
METADATA_HOOK = (
    "module.exports = function(client, scope, audience, context, cb) {\n"
    "  var profile = JSON.parse(String(client.metadata.profile || '{}'));\n"
    "  cb(null, {scope: scope, 'https://example.com/plan': profile.plan || 'none'});\n"
    "};\n"
)


def with_billing(world):  # type: ignore[no-untyped-def]
    """A second client of the world; both have called through its hook."""
    billing, secret = make_client(
        world.tenant, name="billing", metadata={"profile": json.dumps({"plan": "free"})}
    )
    client_grant_create(client=billing, api=world.api, scopes=["read:data"], actor=TEST_ACTOR)
    token_claims(world, secret, client=billing)
    token_claims(world, fresh_secret(world))
    return billing


def set_script(page, script: str) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("(text) => window.tesseraHookEditor.setValue(text, 1)", script)


def test_what_changes_shows_the_client_that_would_fail_and_a_side_by_side_diff(
    page, live_server, world
):
    billing = with_billing(world)
    bravo = make_world("bravo")
    with_billing(bravo)
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    set_script(page, THROWS_FOR_BILLING)
    page.click("#what-changes-button")
    panel = page.wait_for_selector("#what-changes-result .tessera-what-changes")
    assert panel.get_attribute("data-refuses") == "true"
    summary = page.inner_text("#wc-summary")
    assert "2 recorded requests" in summary and "1 would fail" in summary
    failing = page.inner_text("#wc-clients-failing")
    assert f"billing ({billing.client_id})" in failing
    regression = page.locator(f"tr.tessera-wc-regression[data-client='{billing.client_id}']")
    assert "no billing (line 2" in regression.inner_text()
    diff = page.locator(f"tr.tessera-wc-diff[data-client='{world.client.client_id}']")
    changed = diff.locator("tr.tessera-sbs-changed").first.inner_text()
    assert "gold" in changed and "platinum" in changed
    # Only this tenant's clients were replayed.
    rows = page.locator("#what-changes-result tr.tessera-wc-row")
    assert rows.count() == 2
    assert bravo.client.client_id not in page.inner_text("#what-changes-result")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#what-changes").screenshot(path=str(SCREENSHOTS / "what-changes.png"))
    world.hook.refresh_from_db()
    assert world.hook.version == 1  # comparing saved nothing


@pytest.mark.page_problems(r"^HTTP 422: .*/save/$")
def test_a_save_that_breaks_a_calling_client_shows_what_changes_then_goes_live_confirmed(
    page, live_server, world
):
    billing = with_billing(world)
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    set_script(page, THROWS_FOR_BILLING)
    page.click("#save-button")
    page.wait_for_selector("#save-confirm:not([hidden])")
    assert "billing" in page.inner_text("#save-confirm-text")
    detail = page.inner_text("#save-confirm-detail")
    assert billing.client_id in detail and "no billing" in detail
    page.click("#save-confirm-button")
    page.wait_for_selector("#hook-save-status.ok")
    world.hook.refresh_from_db()
    assert (world.hook.version, world.hook.script) == (2, THROWS_FOR_BILLING)


def test_the_metadata_hook_saves_without_a_confirmation(page, live_server, world):
    with_billing(world)
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    set_script(page, METADATA_HOOK)
    page.click("#save-button")
    page.wait_for_selector("#hook-save-status.ok")
    assert page.is_hidden("#save-confirm")
    assert token_claims(world, fresh_secret(world))["https://example.com/plan"] == "none"


def test_run_on_recorded_inputs_shows_each_clients_result(page, live_server, world):
    billing = with_billing(world)
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    set_script(page, THROWS_FOR_BILLING)
    page.click("#replay-button")
    page.wait_for_selector("#replay-result:not([hidden]) .tessera-replay")
    assert "1 failed" in page.inner_text("#replay-summary")
    failed = page.locator(f"#replay-result tr[data-client='{billing.client_id}']").inner_text()
    assert "no billing (line 2" in failed
    served = page.locator(f"#replay-result tr[data-client='{world.client.client_id}']")
    assert "platinum" in served.inner_text()
    assert page.is_hidden("#run-result")  # the one-payload result is not mixed in
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#run").screenshot(path=str(SCREENSHOTS / "replay.png"))
