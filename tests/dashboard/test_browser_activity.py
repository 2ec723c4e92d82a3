"""The landing page's activity charts and the audit log, in headless
Chromium at 1280 px, from real token requests over HTTP."""

import json
import urllib.error
import urllib.request

from clients.services import client_rotate_secret
from hooks.services import hook_disable
from tenant import activity
from tenant.models import AuditEntry
from tests.dashboard.browser import BROWSER_MARKS, REVIEW_SHOTS, SCREENSHOTS, log_in
from tests.dashboard.conftest import make_world
from tests.factories import TEST_ACTOR

pytestmark = BROWSER_MARKS

WIDTH = 1280


def request_tokens(world, secret: str, times: int) -> list[int]:  # type: ignore[no-untyped-def]
    """``times`` token requests of the world's client over real HTTP; their statuses."""
    statuses = []
    body = json.dumps(
        {
            "grant_type": "client_credentials",
            "client_id": world.client.client_id,
            "client_secret": secret,
            "audience": world.api.identifier,
        }
    ).encode()
    for _ in range(times):
        request = urllib.request.Request(
            f"{world.tenant.issuer}oauth/token", body, {"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
    return statuses


def fits_the_window(page) -> bool:  # type: ignore[no-untyped-def]
    return bool(
        page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


def test_landing_charts_render_from_real_token_traffic(page, live_server, world):
    other = make_world("bravo")
    secret = client_rotate_secret(client=world.client, actor=TEST_ACTOR)
    assert request_tokens(world, secret, 5) == [200] * 5
    assert request_tokens(world, "wrong", 2) == [401] * 2
    other_secret = client_rotate_secret(client=other.client, actor=TEST_ACTOR)
    hook_disable(hook=other.hook, actor=TEST_ACTOR)
    assert request_tokens(other, other_secret, 3) == [200] * 3
    activity.flush()  # what the server's flush thread does every few seconds

    page.set_viewport_size({"width": WIDTH, "height": 900})
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/t/alpha/")
    page.wait_for_selector("#activity[data-rendered=hour]")
    totals = page.inner_text("#activity-totals")
    # alpha's own traffic only: bravo's three requests are not here.
    assert totals.startswith("7 token requests and 5 hook runs in the last hour")
    assert page.locator("#activity canvas").count() == 4
    legends = {
        chart: page.locator(f"#{chart} .u-legend .u-series .u-label").all_inner_texts()
        for chart in ("chart-outcomes", "chart-clients", "chart-duration", "chart-errors")
    }
    assert legends["chart-outcomes"] == ["ok", "invalid_client"]
    assert legends["chart-clients"] == ["alpha service", "unknown client"]
    assert legends["chart-duration"] == ["p50", "p99"]
    # Each chart is as wide as its panel, and the page as wide as the window.
    for box in page.locator("#activity .tessera-chart canvas").all():
        bounds = box.bounding_box()
        assert bounds is not None and bounds["width"] > 300
        assert bounds["x"] + bounds["width"] <= WIDTH
    assert fits_the_window(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "landing.png"), full_page=True)

    page.click(".tessera-window button[data-window=day]")
    page.wait_for_selector("#activity[data-rendered=day]")
    assert "in the last day" in page.inner_text("#activity-totals")
    assert page.get_attribute(".tessera-window button[data-window=day]", "aria-pressed") == "true"

    page.context.clear_cookies()
    log_in(page, live_server, other.admin.username)
    page.goto(f"{live_server.url}/admin/t/bravo/")
    page.wait_for_selector("#activity[data-rendered=hour]")
    assert page.inner_text("#activity-totals").startswith(
        "3 token requests and 0 hook runs in the last hour"
    )


def test_audit_log_filters_and_pages_in_the_browser(page, live_server, world):
    other = make_world("bravo")
    hook_disable(hook=world.hook, actor=TEST_ACTOR)
    hook_disable(hook=other.hook, actor=TEST_ACTOR)
    for _ in range(60):
        client_rotate_secret(client=world.client, actor=TEST_ACTOR)
    page.set_viewport_size({"width": WIDTH, "height": 900})
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/t/alpha/")
    page.click("#recent-changes a:text('Audit log')")
    page.wait_for_selector("#audit-entries")
    assert "Page 1 of 2" in page.inner_text("#audit-pages")
    assert fits_the_window(page)
    REVIEW_SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(REVIEW_SHOTS / "audit.png"), full_page=True)
    page.select_option("#id_action", "disable")
    page.click("#audit-filters button[type=submit]")
    page.wait_for_url("**/audit/?*action=disable*")
    rows = page.locator("#audit-entries tbody tr")
    assert rows.count() == 1
    assert "enabled: true → false" in rows.inner_text()
    assert "bravo" not in page.inner_text("#audit-entries").lower()
    page.select_option("#id_action", "")
    page.select_option("#id_object_type", "client")
    page.click("#audit-filters button[type=submit]")
    page.click("#audit-pages a[rel=next]")
    page.wait_for_url("**object_type=client*page=2*")
    clients = AuditEntry.objects.filter(tenant=world.tenant, object_type="client").count()
    assert clients == 61  # created, then 60 rotations
    assert page.locator("#audit-entries tbody tr").count() == clients - 50
