"""Two tenants with one of everything, and an administrator for each."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User

from apis.models import Api
from clients.models import Client, ClientGrant
from hooks.models import Hook
from hooks.services import hook_create
from tenant.models import Tenant
from tenant.services import tenant_add_member
from tests.dashboard.browser import PageProblems
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

SEED_SCRIPT = """module.exports = function(client, scope, audience, context, cb) {
  console.log('exchanging for', client.name);
  cb(null, { scope: scope, 'https://example.com/tier': 'gold' });
};
"""
# What enabling "second" says when it disables world_a's hook.
ENABLED_SECOND = (
    "Enabled hook second for credentials-exchange; disabled alpha-hook"
    " (one hook per point can be enabled)"
)


@dataclass
class TenantWorld:
    tenant: Tenant
    admin: User
    api: Api
    client: Client
    grant: ClientGrant
    hook: Hook


def make_admin(username: str, *tenants: Tenant, can_run: bool = True) -> User:
    user = User.objects.create_user(username, password="pw-" + username, is_staff=True)
    for tenant in tenants:
        tenant_add_member(tenant=tenant, user=user, actor=TEST_ACTOR)
    if can_run:
        user.user_permissions.add(Permission.objects.get(codename="run_hook"))
    return user


def make_world(slug: str) -> TenantWorld:
    tenant = make_tenant(slug, name=slug.capitalize())
    api = make_api(tenant, f"https://api.{slug}.test/", name=f"{slug} API")
    client, _ = make_client(tenant, {api: ["read:data"]}, name=f"{slug} service")
    hook = hook_create(
        tenant=tenant, name=f"{slug}-hook", script=SEED_SCRIPT, enabled=None, actor=TEST_ACTOR
    )
    return TenantWorld(
        tenant=tenant,
        admin=make_admin(f"{slug}-admin", tenant),
        api=api,
        client=client,
        grant=client.grants.get(),
        hook=hook,
    )


def record_token_error(world: TenantWorld, message: str) -> None:
    """A failed production run of the world's hook, as a token request logs it."""
    from django.utils import timezone

    from hooks.run_log import RunRecord, record_run

    record_run(
        RunRecord(
            tenant_id=world.tenant.pk,
            hook_id=world.hook.pk,
            hook_version=world.hook.version,
            source="token",
            started_at=timezone.now(),
            duration_ms=2.0,
            outcome="error",
            console="",
            error=message,
        )
    )


@pytest.fixture
def world_a(db) -> TenantWorld:
    return make_world("alpha")


@pytest.fixture
def world_b(db) -> TenantWorld:
    return make_world("bravo")


# --- browser tests ---------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    import playwright.sync_api as playwright_sync

    from tests.dashboard.browser import CHROMIUM, CHROMIUM_ARGS

    with playwright_sync.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def world(live_server, settings) -> TenantWorld:  # type: ignore[no-untyped-def]
    settings.PUBLIC_URL = live_server.url
    return make_world("alpha")


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser, problems, request):  # type: ignore[no-untyped-def]
    """A fresh browser page that fails its test, at teardown, if it logged a
    console error, an uncaught exception, a failed request or an HTTP error.
    A test that provokes one on purpose names it:
    ``@pytest.mark.page_problems(r"HTTP 404: .*/change/$", ...)`` allows the
    problems that match one of those regular expressions, and only those."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems.watch(page)
    yield page
    context.close()
    marker = request.node.get_closest_marker("page_problems")
    allowed = marker.args if marker else ()
    unexpected = [item for item in problems.items if not any(re.search(a, item) for a in allowed)]
    if unexpected:
        pytest.fail("the page logged:\n  " + "\n  ".join(unexpected), pytrace=False)
