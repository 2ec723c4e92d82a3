"""What a new user tripped over in the dashboard, each measured in headless
Chromium at 1280 px: element boxes, font metrics and counts, so that each
test fails on the page as it was before its fix."""

import re
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from clients.models import Client
from hooks.services import hook_save_script
from tenant.services import tenant_add_member
from tests.dashboard.browser import BROWSER_MARKS, hook_url, log_in, wait_for_editor
from tests.dashboard.conftest import SEED_SCRIPT, make_admin, make_world, record_token_error
from tests.factories import TEST_ACTOR, make_client

pytestmark = BROWSER_MARKS

WIDTH = 1280
THROWS = (
    "module.exports = function(client, scope, audience, context, cb) {\n"
    "  throw new Error('kaput');\n};\n"
)
# Text with nothing to break at: ids, URLs and errors are like this.
LONG_WORD = "x" * 160


@pytest.fixture
def narrow(page):  # type: ignore[no-untyped-def]
    page.set_viewport_size({"width": WIDTH, "height": 900})
    return page


def breadcrumbs(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The breadcrumbs' items, split at their separator (a single right angle quote)."""
    return [" ".join(item.split()) for item in page.inner_text(".breadcrumbs").split("\u203a")]


def fits_the_window(page) -> bool:  # type: ignore[no-untyped-def]
    return bool(
        page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


# What each ace editor on the page draws, measured in the page: its line
# height against where the font puts an underscore's ink, and whether the
# text of every line it shows ends inside its visible area.
EDITOR_GEOMETRY = """() => Array.from(document.querySelectorAll('.ace_editor')).map(el => {
  const editor = el.env.editor;
  const style = getComputedStyle(el.querySelector('.ace_content'));
  const context = document.createElement('canvas').getContext('2d');
  context.font = style.fontSize + ' ' + style.fontFamily;
  const m = context.measureText('_');
  const lineHeight = editor.renderer.lineHeight;
  const halfLeading = (lineHeight - m.fontBoundingBoxAscent - m.fontBoundingBoxDescent) / 2;
  const scroller = el.querySelector('.ace_scroller').getBoundingClientRect();
  // Where each line's last visible character ends (a wrapped line's
  // trailing space may hang past the edge, as in any editor).
  const inkRight = line => {
    const walker = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
    let last = null;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.textContent.trim()) last = node;
    }
    if (!last) return 0;
    const range = document.createRange();
    range.setStart(line, 0);
    range.setEnd(last, last.textContent.trimEnd().length);
    return range.getBoundingClientRect().right;
  };
  const overflowing = Array.from(el.querySelectorAll('.ace_text-layer .ace_line'))
    .filter(line => inkRight(line) > scroller.right + 0.5).map(line => line.textContent);
  return {
    id: el.id,
    lineHeight: lineHeight,
    underscoreBottom: halfLeading + m.fontBoundingBoxAscent + m.actualBoundingBoxDescent,
    overflowing: overflowing,
  };
})"""


def test_underscores_are_drawn_inside_their_line_in_both_editors(narrow, live_server, world):
    log_in(narrow, live_server, world.admin.username)
    narrow.goto(hook_url(live_server, world.hook))
    wait_for_editor(narrow)
    narrow.evaluate("() => window.tesseraHookEditor.setValue('var access_token = 1;\\n', -1)")
    editors = narrow.evaluate(EDITOR_GEOMETRY)
    assert len(editors) == 2  # the script and the Run panel's payload
    for editor in editors:
        # Below the line box the next line covers it: "access_token" read "access token".
        assert editor["underscoreBottom"] <= editor["lineHeight"], editor


def test_no_editor_line_is_cut_off_at_1280_px(narrow, live_server, world):
    log_in(narrow, live_server, world.admin.username)
    narrow.goto(hook_url(live_server, world.hook))
    wait_for_editor(narrow)
    # The seed's first line and the payload's long lines are wider than the editors.
    assert len(SEED_SCRIPT.splitlines()[0]) > 60
    narrow.wait_for_timeout(300)  # ace renders on the next frame
    for editor in narrow.evaluate(EDITOR_GEOMETRY):
        assert editor["overflowing"] == [], editor
    assert fits_the_window(narrow)


def test_landing_page_fits_1280_px_with_relative_times_on_one_line(narrow, live_server, world):
    make_client(world.tenant, name="svc-" + LONG_WORD)
    record_token_error(world, "TypeError: " + LONG_WORD)
    log_in(narrow, live_server, world.admin.username)
    narrow.goto(f"{live_server.url}/admin/t/alpha/")
    assert fits_the_window(narrow)
    for panel in narrow.locator(".tessera-landing .module").all():
        assert panel.evaluate("el => el.scrollWidth <= el.clientWidth"), panel.inner_text()[:80]
        box = panel.bounding_box()
        assert box is not None and box["x"] + box["width"] <= WIDTH
    times = narrow.locator("#recent-changes time")
    assert times.count() >= 5
    for time in times.all():
        assert re.fullmatch(r"just now|\d+ \w+ ago", time.inner_text())
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+", time.get_attribute("title") or ""
        )
        # One line box: the time does not wrap.
        assert time.evaluate("el => el.getClientRects().length") == 1


def test_the_management_apis_scopes_are_folded_on_the_landing_page(narrow, live_server, world):
    log_in(narrow, live_server, world.admin.username)
    narrow.goto(f"{live_server.url}/admin/t/alpha/")
    scopes = narrow.locator("#apis .tessera-scope")
    visible = [s.inner_text() for s in scopes.all() if s.is_visible()]
    assert visible == ["read:data", "write:data"]  # alpha API's; the built-in one's are folded
    system_row = narrow.locator("#apis tr", has_text="Management API")
    summary = system_row.locator("details.tessera-scopes summary")
    assert re.fullmatch(r"\d+ scopes", summary.inner_text())
    assert "built-in" in system_row.inner_text()
    row_box = system_row.bounding_box()
    assert row_box is not None and row_box["height"] < 60
    summary.click()
    assert system_row.locator(".tessera-scope").first.is_visible()


@pytest.mark.page_problems(r"^HTTP 422: .*/save/$")  # the refused save
def test_a_refused_save_says_why_once_and_clears_the_last_run(narrow, live_server, world):
    log_in(narrow, live_server, world.admin.username)
    narrow.goto(hook_url(live_server, world.hook))
    wait_for_editor(narrow)
    narrow.click("#run-button")
    narrow.wait_for_selector("#run-result:not([hidden])")
    assert "ok" in narrow.inner_text("#run-outcome")
    narrow.evaluate("text => window.tesseraHookEditor.setValue(text, 1)", THROWS)
    narrow.keyboard.press("Control+s")
    narrow.wait_for_selector("#save-confirm:not([hidden])")
    message = narrow.inner_text("#save-confirm-text")
    assert message
    shown = narrow.evaluate(
        """message => Array.from(document.querySelectorAll('#content *'))
             .filter(el => el.offsetParent !== null && el.children.length === 0
                           && el.textContent.includes(message)).length""",
        message,
    )
    assert shown == 1
    assert narrow.inner_text("#hook-save-status") == "Not saved."
    # The Run panel no longer shows the earlier, successful run of other text.
    assert narrow.is_hidden("#run-result")


def test_the_version_diff_has_no_column_of_navigation_links(narrow, live_server, world):
    hook_save_script(
        hook=world.hook,
        script=SEED_SCRIPT.replace("gold", "platinum"),
        base_version=1,
        actor=TEST_ACTOR,
    )
    log_in(narrow, live_server, world.admin.username)
    narrow.goto(f"{live_server.url}/admin/hooks/hook/{world.hook.pk}/versions/1/")
    table = narrow.locator(".tessera-diff table.diff")
    assert "platinum" in table.inner_text()
    assert table.locator("a").count() == 0  # difflib's "f", "n" and "t" links
    assert table.locator(".diff_next").count() == 0
    header = table.locator("thead th")
    assert header.all_text_contents() == ["Version 1", "Current (version 2)"]
    assert fits_the_window(narrow)


def test_history_breadcrumb_names_the_tenant_and_the_list_once(narrow, live_server, world):
    log_in(narrow, live_server, world.admin.username)
    narrow.goto(f"{live_server.url}/admin/hooks/hook/{world.hook.pk}/history/")
    assert breadcrumbs(narrow) == ["Home", "Alpha", "Hooks", "alpha-hook", "History"]
    narrow.goto(f"{live_server.url}/admin/clients/client/{world.client.pk}/history/")
    assert breadcrumbs(narrow) == ["Home", "Alpha", "Clients", str(world.client), "History"]


@pytest.mark.page_problems(r"^HTTP 404: .*/change/$")  # the point of the test
def test_another_tenants_object_is_a_404_dashboard_page(narrow, live_server, world):
    other = make_world("bravo")
    log_in(narrow, live_server, other.admin.username)
    response = narrow.goto(hook_url(live_server, world.hook))
    assert response is not None and response.status == 404
    assert "alpha-hook" not in narrow.content()
    # The dashboard's header (its stylesheet applied), breadcrumbs and a way on.
    header = narrow.locator("#header")
    assert "Tessera" in header.inner_text()
    assert header.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(26, 35, 126)"
    assert narrow.locator(".breadcrumbs a", has_text="Home").is_visible()
    assert narrow.locator("#content a", has_text="Bravo").is_visible()
    assert narrow.locator("#logout-form, a[href$='/logout/']").count() >= 1


def test_a_member_of_one_tenant_is_not_offered_a_tenant_on_add_forms(narrow, live_server, world):
    log_in(narrow, live_server, world.admin.username)
    narrow.goto(f"{live_server.url}/admin/clients/client/add/")
    assert narrow.locator("select#id_tenant").count() == 0
    assert not narrow.locator(".field-tenant").is_visible()
    narrow.fill("#id_name", "made-without-choosing")
    narrow.click("input[name=_save]")
    narrow.wait_for_selector(".tessera-secret")
    assert Client.objects.get(name="made-without-choosing").tenant == world.tenant
    # A member of two tenants still chooses.
    other = make_world("bravo")
    both = make_admin("both-admin", world.tenant, other.tenant)
    narrow.context.clear_cookies()
    log_in(narrow, live_server, both.username)
    narrow.goto(f"{live_server.url}/admin/clients/client/add/")
    assert narrow.locator("select#id_tenant").is_visible()


def test_home_page_lists_the_changes_the_demo_just_made(narrow, live_server, world):
    out = StringIO()
    call_command("demo", stdout=out)
    username, _, password = re.search(r"Tenant admin:\s+(\S+) / (\S+)", out.getvalue()).group(  # type: ignore[union-attr]
        1, 0, 2
    )
    narrow.goto(f"{live_server.url}/admin/login/")
    narrow.fill("#id_username", username)
    narrow.fill("#id_password", password)
    narrow.click("input[type=submit]")
    narrow.wait_for_selector("#site-name")
    sidebar = narrow.locator("#recent-actions-module")
    assert "None available" not in sidebar.inner_text()
    assert "create hook add-claim" in sidebar.inner_text()
    assert "alpha" not in sidebar.inner_text().lower()  # another tenant's changes
    assert fits_the_window(narrow)


def test_a_superuser_sees_the_objects_own_tenant_in_the_breadcrumb(narrow, live_server, world):
    other = make_world("bravo")
    boss = User.objects.create_superuser("boss", password="pw-boss")
    tenant_add_member(tenant=other.tenant, user=boss, actor=TEST_ACTOR)
    log_in(narrow, live_server, boss.username)
    narrow.goto(f"{live_server.url}/admin/t/bravo/")  # the switcher's tenant is bravo
    narrow.goto(f"{live_server.url}/admin/hooks/hook/{world.hook.pk}/history/")
    assert breadcrumbs(narrow) == ["Home", "Alpha", "Hooks", "alpha-hook", "History"]
