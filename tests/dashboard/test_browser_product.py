"""The dashboard as one product, in headless Chromium: no broken hook goes
live by accident, no work is lost, no page logs an error, test runs stay
apart from production, and every page looks and behaves alike."""

import re

import pytest

from clients.models import Client, ClientGrant
from hooks.models import Hook, HookSecret
from hooks.services import hook_create, hook_save_script, hook_secrets_set
from tenant.services import tenant_add_member
from tests.dashboard.browser import BROWSER_MARKS, REVIEW_SHOTS, hook_url, log_in, wait_for_editor
from tests.dashboard.conftest import SEED_SCRIPT, make_world, record_token_error
from tests.factories import TEST_ACTOR, make_api

pytestmark = BROWSER_MARKS

THROWS = (
    "module.exports = function(client, scope, audience, context, cb) {\n"
    "  throw new Error('kaput');\n};\n"
)
SPINS = "module.exports = function(client, scope, audience, context, cb) { while (true) {} };"


def set_script(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("text => window.tesseraHookEditor.setValue(text, 1)", text)


def editor_text(page) -> str:  # type: ignore[no-untyped-def]
    return str(page.evaluate("() => window.tesseraHookEditor.getValue()"))


# --- 1. no broken hook goes live by accident -----------------------------------


@pytest.mark.page_problems(r"^HTTP 400: .*/save/$")  # the refused save
def test_ctrl_s_of_an_empty_script_on_the_enabled_hook_is_refused(page, live_server, world):
    assert world.hook.enabled
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    set_script(page, "")
    page.keyboard.press("Control+s")
    page.wait_for_selector("#hook-save-status.error")
    world.hook.refresh_from_db()
    assert (world.hook.version, world.hook.script) == (1, SEED_SCRIPT)
    assert editor_text(page) == ""  # the admin's text stays in the editor
    assert page.is_visible("#hook-dirty") is not False  # still unsaved


@pytest.mark.page_problems(r"^HTTP 422: .*/save/$")  # the save that asks first
def test_failing_save_on_the_enabled_hook_goes_live_only_when_confirmed(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    set_script(page, THROWS)
    page.keyboard.press("Control+s")
    page.wait_for_selector("#save-confirm:not([hidden])")
    assert "kaput" in page.inner_text("#save-confirm")
    world.hook.refresh_from_db()
    assert world.hook.version == 1
    page.click("#save-confirm-button")
    page.wait_for_selector("#hook-save-status.ok")
    assert "Saved version 2" in page.inner_text("#hook-save-status")
    world.hook.refresh_from_db()
    assert (world.hook.version, world.hook.script, world.hook.enabled) == (2, THROWS, True)


@pytest.mark.page_problems(r"^HTTP 409: .*/restore/$")  # the restore that asks first
def test_restoring_a_failing_version_of_the_enabled_hook_asks_first(page, live_server, world):
    hook_save_script(
        hook=world.hook, script=THROWS, base_version=1, confirm_failing=True, actor=TEST_ACTOR
    )
    hook_save_script(hook=world.hook, script=SEED_SCRIPT, base_version=2, actor=TEST_ACTOR)
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    page.click("#versions tr:has(td:text-is('2')) button:text('Restore')")
    page.wait_for_selector("#confirm-live-error")
    assert "kaput" in page.inner_text("#content")
    world.hook.refresh_from_db()
    assert world.hook.version == 3  # nothing restored yet
    page.click("#confirm-live")
    page.wait_for_selector(".messagelist")
    assert "Restored version 2 as version 4." in page.inner_text(".messagelist")
    world.hook.refresh_from_db()
    assert (world.hook.version, world.hook.script) == (4, THROWS)


@pytest.mark.page_problems(r"^HTTP 409: .*/enable/$")  # the enable that asks first
def test_enabling_a_failing_hook_shows_its_error_and_can_be_cancelled(page, live_server, world):
    broken = hook_create(tenant=world.tenant, name="broken", script=THROWS, actor=TEST_ACTOR)
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, broken))
    page.click("#hook-enable")
    page.wait_for_selector("#confirm-live-error")
    assert "kaput" in page.inner_text("#content")
    assert default_looking_buttons(page) == []
    page.screenshot(path=str(REVIEW_SHOTS / "confirm-live.png"), full_page=True)
    page.click("text=Cancel")
    page.wait_for_selector("#hook-enable")
    broken.refresh_from_db()
    assert not broken.enabled
    page.click("#hook-enable")
    page.click("#confirm-live")
    page.wait_for_selector("#hook-disable")
    broken.refresh_from_db()
    assert broken.enabled


# --- 2. no lost work -----------------------------------------------------------------


def test_unsaved_marker_and_leave_page_warning(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    assert page.is_hidden("#hook-dirty")
    page.click(".field-script .ace_content")
    page.keyboard.press("Control+End")
    page.keyboard.type("\n// not saved yet")
    assert page.is_visible("#hook-dirty")
    assert page.title().startswith("● ")
    dialogs: list[str] = []

    def stay(dialog):  # type: ignore[no-untyped-def]
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay)
    page.click(".breadcrumbs a >> nth=0")
    page.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]
    assert page.url.endswith(f"/hooks/hook/{world.hook.pk}/change/")
    assert "// not saved yet" in editor_text(page)
    page.keyboard.press("Control+s")
    page.wait_for_selector("#hook-save-status.ok")
    assert page.is_hidden("#hook-dirty")
    page.remove_listener("dialog", stay)
    page.click(".breadcrumbs a >> nth=0")  # saved: leaves without asking
    page.wait_for_url(f"{live_server.url}/admin/")
    assert dialogs == ["beforeunload"]


@pytest.mark.page_problems(r"^HTTP 400: .*/secrets/$")  # the bad secret name
def test_a_secret_added_and_deleted_keeps_the_unsaved_text(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    set_script(page, SEED_SCRIPT + "// typed, not saved\n")
    page.evaluate("() => { window.samePage = true; }")
    page.fill("#id_name", "API_KEY")
    page.fill("#id_value", "s3cr3t")
    page.click("#secret-form button[type=submit]")
    page.wait_for_selector("#secrets-body tr[data-secret=API_KEY]")
    assert "Added secret API_KEY." in page.inner_text("#secret-status")
    assert page.input_value("#id_value") == ""
    assert HookSecret.objects.filter(hook=world.hook, name="API_KEY").exists()
    assert "s3cr3t" not in page.content()
    page.click("#secrets-body tr[data-secret=API_KEY] button")
    page.wait_for_selector("#secrets-body tr[data-secret=API_KEY]", state="detached")
    assert not HookSecret.objects.filter(hook=world.hook).exists()
    assert page.evaluate("() => window.samePage") is True  # never reloaded
    assert editor_text(page).endswith("// typed, not saved\n")
    page.fill("#id_name", "bad name!")
    page.fill("#id_value", "x")
    page.click("#secret-form button[type=submit]")
    page.wait_for_selector("#secret-status.error")
    assert editor_text(page).endswith("// typed, not saved\n")


def test_two_quick_saves_are_serialised(page, live_server, world, problems):
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    page.evaluate(
        """([a, b]) => {
        window.tesseraHookEditor.setValue(a, 1); window.tesseraHookSave(false);
        window.tesseraHookEditor.setValue(b, 1); window.tesseraHookSave(false);
        window.tesseraHookSave(false);
    }""",
        [SEED_SCRIPT + "// a\n", SEED_SCRIPT + "// b\n"],
    )
    page.wait_for_function(
        "() => document.getElementById('hook-save-status').textContent === 'Saved version 3.'"
    )
    page.wait_for_timeout(300)
    world.hook.refresh_from_db()
    assert (world.hook.version, world.hook.script) == (3, SEED_SCRIPT + "// b\n")
    assert list(world.hook.versions.values_list("number", flat=True)) == [3, 2, 1]
    assert problems.items == []  # no 409, no 500
    # Ctrl+S twice saves once, however quickly the first save answers.
    set_script(page, SEED_SCRIPT + "// c\n")
    page.keyboard.press("Control+s")
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => document.getElementById('hook-save-status').textContent === 'Saved version 4.'"
    )
    page.wait_for_timeout(300)
    # Ctrl+S on saved text makes no new version.
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => document.getElementById('hook-save-status').textContent === 'No changes to save.'"
    )
    world.hook.refresh_from_db()
    assert (world.hook.version, world.hook.script) == (4, SEED_SCRIPT + "// c\n")
    assert world.hook.versions.count() == 4


def test_reloading_the_new_client_page_creates_no_second_client(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/clients/client/add/")
    assert page.input_value("#id_tenant") == str(world.tenant.pk)  # the user's only tenant
    page.fill("#id_name", "reloaded")
    page.click("input[name=_save]")
    page.wait_for_selector("#client-secret")
    page.screenshot(path=str(REVIEW_SHOTS / "client-secret.png"), full_page=True)
    secret = page.inner_text("#client-secret")
    assert len(secret) >= 43
    page.reload()
    page.wait_for_selector("#secret-gone")
    assert secret not in page.content()
    assert Client.objects.filter(tenant=world.tenant, name="reloaded").count() == 1


# --- 3. no errors on any page --------------------------------------------------------


def test_every_browser_test_records_what_a_page_logs(page, live_server, world, problems):
    """What the ``page`` fixture fails a test for, at teardown: a console
    error, an uncaught exception, an HTTP error and a refused request."""
    log_in(page, live_server, world.admin.username)
    assert problems.items == []
    page.evaluate(
        """async () => {
        console.error('logged by the page');
        setTimeout(() => { throw new Error('thrown by the page'); }, 0);
        await fetch('/admin/no-such-page/');
        await fetch('http://127.0.0.1:9/').catch(() => null);
        await new Promise(resolve => setTimeout(resolve, 100));
    }"""
    )
    found = "\n".join(problems.items)
    assert "console error: logged by the page" in found
    assert "uncaught: " in found and "thrown by the page" in found
    assert re.search(r"^HTTP 404: .*/admin/no-such-page/$", found, re.MULTILINE)
    assert "request failed: http://127.0.0.1:9/" in found
    assert "status of 404" not in found  # the HTTP line says it once
    problems.clear()  # expected here; any other test would fail at teardown


def test_no_console_error_or_failed_request_on_any_dashboard_page(
    page, live_server, world, problems
):
    hook_save_script(
        hook=world.hook, script=SEED_SCRIPT + "// 2\n", base_version=1, actor=TEST_ACTOR
    )
    log_in(page, live_server, world.admin.username)
    base = f"{live_server.url}/admin"
    pages = [
        "/",
        "/t/alpha/",
        "/apis/api/",
        "/apis/api/add/",
        f"/apis/api/{world.api.pk}/change/",
        "/clients/client/",
        "/clients/client/add/",
        f"/clients/client/{world.client.pk}/change/",
        f"/clients/client/{world.client.pk}/rotate-secret/",
        "/clients/clientgrant/",
        "/clients/clientgrant/add/",
        f"/clients/clientgrant/{world.grant.pk}/change/",
        "/hooks/hook/",
        "/hooks/hook/add/",
        f"/hooks/hook/{world.hook.pk}/versions/1/",
        f"/hooks/hook/{world.hook.pk}/delete/",
        "/tenant/tenant/",
        f"/tenant/tenant/{world.tenant.pk}/change/",
        "/password_change/",
    ]
    for path in pages:
        response = page.goto(base + path, wait_until="load")
        page.wait_for_timeout(300)  # scripts that run after load
        assert response is not None and response.status == 200, path
        assert problems.items == [], path
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    assert (
        page.evaluate(
            "() => document.querySelector('#id_payload').parentNode"
            ".querySelector('.django-ace-widget').editor.session.getMode().$id"
        )
        == "ace/mode/json"
    )
    page.click("#run-button")
    page.wait_for_selector("#run-result:not([hidden])")
    page.wait_for_selector("#runs-body td.tessera-outcome-ok")  # the live log polled
    page.click("#fullscreen-button")
    page.wait_for_timeout(500)
    assert problems.items == []
    assert "View site" not in page.inner_text("#header")


def test_client_page_has_no_view_on_site_link(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/clients/client/{world.client.pk}/change/")
    assert page.locator("a.viewsitelink").count() == 0
    assert "View on site" not in page.content()


# --- 4. test runs apart from production ----------------------------------------------


def test_landing_errors_exclude_test_runs_and_the_run_log_filters_them(page, live_server, world):
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    set_script(page, THROWS)
    page.click("#run-button")
    page.wait_for_selector("#run-error-box:not([hidden])")
    record_token_error(world, "Error: from a real token request")
    page.select_option("#runs-source", "token")
    page.wait_for_selector("#runs-body tr[data-source=token]")
    assert page.locator("#runs-body tr[data-source=test]").count() == 0
    page.select_option("#runs-source", "test")
    page.wait_for_selector("#runs-body tr[data-source=test]")
    assert page.locator("#runs-body tr[data-source=token]").count() == 0
    assert "Test run" in page.inner_text("#runs-body")

    page.goto(f"{live_server.url}/admin/t/alpha/")
    errors = page.inner_text("#recent-errors")
    assert "from a real token request" in errors
    assert "kaput" not in errors
    assert "kaput" not in page.inner_text("#recent-runs")


@pytest.mark.page_problems(r"^HTTP 429: .*/run/$")  # the busy answer
def test_run_beyond_the_users_limit_answers_busy(page, live_server, world):
    world.tenant.hook_timeout_ms = 1500
    world.tenant.save()
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    answers = page.evaluate(
        """([url, script]) => {
        const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
        const send = () => {
            const body = new FormData();
            body.append("script", script);
            body.append("payload", "{}");
            return fetch(url, {method: "POST", body: body, headers: {"X-CSRFToken": token}})
                .then(r => r.json().then(data => [r.status, data]));
        };
        return Promise.all([send(), send(), send()]);
    }""",
        [f"{live_server.url}/admin/hooks/hook/{world.hook.pk}/run/", SPINS],
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 200, 429]
    busy = next(data for status, data in answers if status == 429)
    assert busy["busy"] is True
    assert "try again" in busy["error"]
    # Of the two the user may run, one spins until its timeout; the other
    # finds the tenant's one hook run going and is refused without running.
    finished = [data for status, data in answers if status == 200]
    assert sorted(data["outcome"] for data in finished) == ["refused", "timeout"]
    # Slots are given back: the next run works.
    set_script(page, SEED_SCRIPT)
    page.click("#run-button")
    page.wait_for_selector("#run-outcome.tessera-outcome-ok")


# --- 5. one product ---------------------------------------------------------------


def default_looking_buttons(page) -> list[str]:  # type: ignore[no-untyped-def]
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll(
                '#content button, #content input[type=submit], #content input[type=button]'))
            .filter(b => b.offsetParent !== null)
            .filter(b => {
                const s = getComputedStyle(b);
                return s.borderTopStyle === 'outset' || s.backgroundColor === 'rgb(239, 239, 239)';
            })
            .map(b => b.outerHTML.slice(0, 120))"""
        )
    )


def test_hook_page_looks_and_behaves_like_one_product(page, live_server, world):
    hook_save_script(
        hook=world.hook, script=SEED_SCRIPT + "// 2\n", base_version=1, actor=TEST_ACTOR
    )
    hook_secrets_set(hook=world.hook, secrets={"K": "v"}, actor=TEST_ACTOR)
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    wait_for_editor(page)
    assert default_looking_buttons(page) == []
    assert "Hooks \u203a Hooks" not in page.inner_text(".breadcrumbs")
    assert page.locator("input[name=_addanother], input[name=_continue]").count() == 0
    times = page.locator("#versions time.tessera-when")
    assert times.count() == 2
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", times.first.get_attribute("title") or "")

    # A new version shows Diff and Restore on the previous one without a reload.
    set_script(page, SEED_SCRIPT + "// 3\n")
    page.keyboard.press("Control+s")
    page.wait_for_selector("#hook-save-status.ok")
    row = page.locator("#versions tbody tr").nth(1)
    assert row.locator("button:text('Restore')").count() == 1
    assert row.locator("a:text('Diff with current')").count() == 1
    assert page.locator("#versions tbody tr").first.locator("time").count() == 1

    # Full screen, the Run panel beside the editor.
    small = page.locator(".field-script .django-ace-widget").bounding_box()
    page.click("#fullscreen-button")
    editor = page.locator(".field-script .django-ace-widget").bounding_box()
    run = page.locator("#run").bounding_box()
    assert editor["height"] > small["height"] + 200
    assert run["x"] >= editor["x"] + editor["width"]
    assert abs(run["y"] - page.locator("#hook-page").bounding_box()["y"]) < 200
    page.screenshot(path=str(REVIEW_SHOTS / "hook-fullscreen.png"))
    page.keyboard.press("Escape")
    assert "tessera-fullscreen" not in (page.get_attribute("#hook-layout", "class") or "")

    # Dragging the editor's corner resizes it, and the editor follows.
    widget = page.locator(".field-script .django-ace-widget")
    box = widget.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] - 3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] + 197, steps=5)
    page.mouse.up()
    assert widget.bounding_box()["height"] > box["height"] + 150
    page.wait_for_function(
        """() => { const w = document.querySelector('.field-script .django-ace-widget');
        return w.querySelector('.ace_scroller').offsetHeight > w.offsetHeight - 30; }"""
    )
    page.screenshot(path=str(REVIEW_SHOTS / "hook.png"), full_page=True)


def test_hook_list_is_grouped_by_point_once(page, live_server, world):
    hook_create(tenant=world.tenant, name="second", script=SEED_SCRIPT, actor=TEST_ACTOR)
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/hooks/hook/")
    assert page.locator(".tessera-point").count() == 1
    assert page.locator("#hook-groups th a").all_inner_texts() == ["alpha-hook", "second"]
    assert page.locator("text=second").count() == 1  # listed once
    assert "Hooks \u203a Hooks" not in page.inner_text(".breadcrumbs")
    # The list's actions still work on the grouped rows.
    second = Hook.objects.get(name="second")
    page.check(f"input.action-select[value='{second.pk}']")
    page.select_option("select[name=action]", "disable_hooks")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "Disabled second." in page.inner_text(".messagelist")
    assert default_looking_buttons(page) == []


def test_client_page_copies_its_id_and_adds_grants_inline(page, live_server, world):
    other = make_api(
        world.tenant, "https://second.alpha.test/", name="second API", scopes=["read:second"]
    )
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/clients/client/{world.client.pk}/change/")
    page.click(".field-client_id_copy button.tessera-copy")
    page.wait_for_selector("button.tessera-copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == world.client.client_id
    assert default_looking_buttons(page) == []

    page.click(".add-row a")
    page.select_option("select[name=grants-1-api]", str(other.pk))
    page.screenshot(path=str(REVIEW_SHOTS / "client.png"), full_page=True)
    row = page.locator("tr.dynamic-grants").last
    assert [t.strip() for t in row.locator("label:visible").all_inner_texts()] == ["read:second"]
    row.locator("label:text('read:second')").click()
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    grant = ClientGrant.objects.get(client=world.client, api=other)
    assert list(grant.scopes.values_list("value", flat=True)) == ["read:second"]


def test_add_forms_preselect_the_tenant_whose_page_the_admin_came_from(page, live_server, world):
    bravo = make_world("bravo")
    tenant_add_member(tenant=bravo.tenant, user=world.admin, actor=TEST_ACTOR)
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/t/bravo/")
    page.click("h2:has-text('APIs') a.tessera-add")
    page.wait_for_selector("#id_tenant")
    assert page.input_value("#id_tenant") == str(bravo.tenant.pk)
    page.goto(f"{live_server.url}/admin/clients/clientgrant/add/")
    assert page.inner_text("label[for=id_api]").startswith("API")
    page.goto(f"{live_server.url}/admin/clients/clientgrant/{world.grant.pk}/change/")
    assert page.inner_text(".field-api_name label").startswith("API")
    page.goto(f"{live_server.url}/admin/t/alpha/")
    page.goto(f"{live_server.url}/admin/hooks/hook/add/")
    assert page.input_value("#id_tenant") == str(world.tenant.pk)
    assert page.locator("input[name=_addanother], input[name=_continue]").count() == 0
    page.screenshot(path=str(REVIEW_SHOTS / "hook-add.png"), full_page=True)


@pytest.mark.parametrize("path", ["/admin/t/alpha/", "/admin/clients/client/", "/admin/apis/api/"])
def test_screenshot_pages_for_review(page, live_server, world, path):
    record_token_error(world, "Error: shown on the landing page")
    log_in(page, live_server, world.admin.username)
    page.goto(live_server.url + path)
    name = path.strip("/").replace("/", "-")
    page.screenshot(path=str(REVIEW_SHOTS / f"{name}.png"), full_page=True)
    assert default_looking_buttons(page) == []
