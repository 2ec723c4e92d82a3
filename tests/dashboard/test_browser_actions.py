"""The Actions pages in headless Chromium: the Flow page driven by the
keyboard alone (bind, reorder, unbind), each step checked with a real token
request, the Action page from first code to a rollback, and a deploy and a
bind that would break a calling client, shown with what changes and made
only when confirmed."""

import pytest

from clients.services import client_rotate_secret
from hooks.action_services import action_update
from hooks.models import Action
from tests.dashboard.actions import TRIGGER, bound_names, claim_code, make_action
from tests.dashboard.browser import BROWSER_MARKS, log_in, token_claims, wait_for_editor
from tests.dashboard.conftest import make_admin, make_world
from tests.factories import TEST_ACTOR
from tests.hooks.go_live import BREAKS_BILLING, CLAIM, Calling

pytestmark = BROWSER_MARKS

LAST = "https://example.com/last"


def focused_id(page) -> str:  # type: ignore[no-untyped-def]
    return str(page.evaluate("document.activeElement && document.activeElement.id"))


def tab_to(page, element_id: str, limit: int = 80) -> None:  # type: ignore[no-untyped-def]
    """Press Tab until the element with ``element_id`` has the focus."""
    for _ in range(limit):
        if focused_id(page) == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id} (stuck on #{focused_id(page)})")


def press_enter_and_wait(page) -> None:  # type: ignore[no-untyped-def]
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state("load")


def bind_with_keyboard(page, action: Action) -> None:  # type: ignore[no-untyped-def]
    tab_to(page, "bind-action")
    # A closed <select> takes a typed name's first letter, as screen readers expect.
    page.keyboard.type(action.name[0])
    assert page.eval_on_selector("#bind-action", "s => s.value") == action.public_id
    page.keyboard.press("Tab")
    assert focused_id(page) == "bind-button"
    press_enter_and_wait(page)


def test_flow_page_binds_reorders_and_unbinds_with_the_keyboard_alone(page, live_server, world):
    bravo = make_world("bravo")  # a second tenant beside it, whose Action is never offered
    make_action(bravo.tenant, "bravo-action")
    first, second, third = (make_action(world.tenant, n) for n in ("first", "second", "third"))
    secret = client_rotate_secret(client=world.client, actor=TEST_ACTOR)
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/hooks/action/flow/{world.tenant.slug}/{TRIGGER}/")
    assert "bravo-action" not in page.content()
    assert page.inner_text("#flow-hook").startswith("Hook alpha-hook")

    for action in (first, second, third):
        bind_with_keyboard(page, action)
    assert bound_names(world.tenant) == ["first", "second", "third"]
    claims = token_claims(world, secret)
    assert claims[LAST] == "third"
    assert claims["https://example.com/tier"] == "gold"  # the enabled hook ran first
    assert "Every deployed action is bound." in page.inner_text("#flow-bind")

    # Move "third" up twice: the focus stays on it across the reloads.
    tab_to(page, f"up-{third.public_id}")
    press_enter_and_wait(page)
    assert focused_id(page) == f"up-{third.public_id}"
    press_enter_and_wait(page)
    assert focused_id(page) == f"down-{third.public_id}"  # first now: no Move up
    assert bound_names(world.tenant) == ["third", "first", "second"]
    assert page.locator(".tessera-flow-action").all_inner_texts()[0].startswith("Action third")
    assert token_claims(world, secret)[LAST] == "second"

    tab_to(page, f"remove-{second.public_id}")
    press_enter_and_wait(page)
    assert bound_names(world.tenant) == ["third", "first"]
    assert "Unbound second from credentials-exchange." in page.inner_text(".messagelist")
    claims = token_claims(world, secret)
    assert claims[LAST] == "first"
    assert "https://example.com/second" not in claims
    assert {"https://example.com/third", "https://example.com/first"} <= set(claims)
    # The landing page shows the same flow, linking to this page.
    page.goto(f"{live_server.url}/admin/t/{world.tenant.slug}/")
    steps = page.locator("#flow-panel li").all_inner_texts()
    assert [s.split(" version")[0] for s in steps] == [
        "Hook alpha-hook",
        "Action third",
        "Action first",
    ]


def test_action_page_from_code_to_deploy_and_rollback(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/hooks/action/add/")
    page.fill("#id_name", "tier")
    page.click("input[name=_save]")
    wait_for_editor(page)
    action = Action.objects.get(tenant=world.tenant, name="tier")
    assert action.status == "built"  # the starter code builds

    def type_code(code: str) -> None:
        page.evaluate("code => window.tesseraHookEditor.setValue(code, 1)", code)

    type_code(claim_code("tier", "v1"))
    page.click("#run-button")
    page.wait_for_selector("#run-result:not([hidden])")
    assert '"https://example.com/tier": "v1"' in page.inner_text("#run-claims")
    action.refresh_from_db()
    assert "v1" not in action.code  # Run saves nothing

    page.keyboard.press("Control+s")
    page.wait_for_selector("#hook-save-status.ok")
    assert "Saved; built" in page.inner_text("#hook-save-status")
    assert page.inner_text("#action-status") == "Built"
    assert not page.is_visible("#action-build-errors")

    page.click("#action-deploy")
    page.wait_for_selector("#versions-table")
    assert "Deployed version 1." in page.inner_text(".messagelist")
    assert page.inner_text("#action-sync") == "all changes deployed"
    assert "1 (live)" in page.inner_text("#versions-table")

    wait_for_editor(page)
    type_code(claim_code("tier", "v2"))
    page.keyboard.press("Control+s")
    page.wait_for_selector("#hook-save-status.ok")
    assert page.inner_text("#action-sync") == "draft not deployed"
    page.click("#action-deploy")
    page.wait_for_selector("#versions-table")
    assert "Deployed version 2." in page.inner_text(".messagelist")

    page.click("#rollback-1")
    page.wait_for_selector("#versions-table")
    assert "Rolled back to version 1: it is deployed as version 3." in page.inner_text(
        ".messagelist"
    )
    assert page.inner_text("#versions-table tbody tr >> nth=0").startswith("3 (live)")
    live = action.versions.get(deployed=True)
    assert (live.number, live.code) == (3, claim_code("tier", "v1"))

    # A draft that does not compile is saved, failed, and shows why.
    wait_for_editor(page)
    type_code("exports.onExecuteCredentialsExchange = async (event, api) => {\n")
    page.keyboard.press("Control+s")
    page.wait_for_selector("#hook-save-status.error")
    assert page.inner_text("#action-status") == "Failed"
    assert "Build failed" in page.inner_text("#action-build-errors")
    action.refresh_from_db()
    assert action.status == "failed"


@pytest.mark.page_problems(
    r"^HTTP 409: .*/deploy/$", r"^HTTP 409: .*/flow/acme/credentials-exchange/$"
)
def test_a_deploy_and_a_bind_that_break_a_calling_client_go_live_only_confirmed(
    page, live_server, settings
):
    settings.PUBLIC_URL = live_server.url
    Calling("globex")  # its clients called too: never replayed for acme
    acme = Calling("acme")
    admin = make_admin("acme-admin", acme.tenant)
    billing = acme.client_id("billing")
    action_update(action=acme.action, code=BREAKS_BILLING, actor=TEST_ACTOR)
    log_in(page, live_server, admin.username)
    page.goto(f"{live_server.url}/admin/hooks/action/{acme.action.pk}/change/")

    page.click("#action-deploy")
    page.wait_for_selector("#go-live-refusal")
    message = page.inner_text("#confirm-live-error")
    assert f"billing ({billing})" in message and "1 recorded request would fail" in message
    panel = page.locator("#go-live-refusal .tessera-what-changes")
    assert panel.get_attribute("data-refuses") == "true"
    regression = page.locator(f"tr.tessera-wc-regression[data-client='{billing}']")
    assert "no billing (line 2" in regression.inner_text()
    assert "api.globex.test" not in page.inner_text("#go-live-refusal")
    assert list(acme.action.versions.values_list("number", flat=True)) == [1]
    page.click("#confirm-live")
    page.wait_for_selector("#versions-table")
    assert "Deployed version 2." in page.inner_text(".messagelist")
    assert acme.token("billing").status_code != 200
    assert acme.claims("orders")[CLAIM] == 2

    # An Action that breaks orders, bound from the Flow page by keyboard alone.
    strict = acme.deployed("strict", BREAKS_BILLING.replace("'billing'", "'orders'"))
    page.goto(f"{live_server.url}/admin/hooks/action/flow/acme/{TRIGGER}/")
    bind_with_keyboard(page, strict)
    assert focused_id(page) == "confirm-live-error"  # why, read first
    assert f"orders ({acme.client_id('orders')})" in page.inner_text("#confirm-live-error")
    assert page.locator("#flow-steps li.tessera-flow-action").count() == 1
    assert bound_names(acme.tenant) == ["tag"]
    page.keyboard.press("Tab")
    assert focused_id(page) == "confirm-live"
    press_enter_and_wait(page)
    assert "Bound strict to credentials-exchange." in page.inner_text(".messagelist")
    assert bound_names(acme.tenant) == ["tag", "strict"]
    assert acme.token("orders").status_code != 200
