"""Disabling and deleting from the dashboard, in headless Chromium, as an
administrator does it, and what the tenant's token endpoint answers next:
a disabled or deleted hook adds no claim, a deleted client is refused, a
deleted grant or API denies access. The other tenant keeps its tokens."""

from typing import Any

import jwt
import pytest
import requests

from apis.models import Api
from clients.models import Client, ClientGrant
from hooks.models import Hook
from tests.dashboard.browser import BROWSER_MARKS, hook_url, log_in
from tests.dashboard.conftest import TenantWorld, make_world
from tests.factories import make_client

pytestmark = BROWSER_MARKS

CLAIM = "https://example.com/tier"


def token_request(world: TenantWorld, client: Client, secret: str) -> requests.Response:
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": world.api.identifier,
    }
    return requests.post(f"{world.tenant.issuer}oauth/token", json=body, timeout=10)


def claims(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


def assert_refused(response: requests.Response, status: int, error: str, description: str):
    assert response.status_code == status, response.text
    assert response.json() == {"error": error, "error_description": description}


@pytest.fixture
def credentials(world) -> tuple[Client, str]:
    """A client of the world's tenant granted its API, whose secret the test knows."""
    client, secret = make_client(world.tenant, {world.api: ["read:data"]}, name="caller")
    return client, secret


@pytest.fixture
def bystander(world) -> tuple[TenantWorld, Client, str]:
    """A second tenant with an enabled hook, which every test leaves working."""
    other = make_world("bravo")
    client, secret = make_client(other.tenant, {other.api: ["read:data"]}, name="caller")
    assert claims(token_request(other, client, secret))[CLAIM] == "gold"
    return other, client, secret


def assert_untouched(bystander: tuple[TenantWorld, Client, str]) -> None:
    other, client, secret = bystander
    assert claims(token_request(other, client, secret))[CLAIM] == "gold"
    assert Hook.objects.get(pk=other.hook.pk).enabled


def confirm_delete(page, live_server, path: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/admin/{path}/delete/")
    page.click("#content form input[type=submit]")
    page.wait_for_selector(".messagelist")


# --- disable an enabled hook ---------------------------------------------------


def test_disable_button_on_the_enabled_hook_stops_its_claim(
    page, live_server, world, credentials, bystander, problems
):
    client, secret = credentials
    assert world.hook.enabled
    assert claims(token_request(world, client, secret))[CLAIM] == "gold"
    log_in(page, live_server, world.admin.username)
    page.goto(hook_url(live_server, world.hook))
    page.click("#hook-disable")
    page.wait_for_selector("#hook-enable")
    assert not Hook.objects.get(pk=world.hook.pk).enabled
    assert CLAIM not in claims(token_request(world, client, secret))
    assert_untouched(bystander)
    assert problems.items == []


def test_disable_action_on_the_enabled_hook_stops_its_claim(
    page, live_server, world, credentials, bystander, problems
):
    client, secret = credentials
    assert claims(token_request(world, client, secret))[CLAIM] == "gold"
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/hooks/hook/")
    page.check(f"input.action-select[value='{world.hook.pk}']")
    page.select_option("select[name=action]", "disable_hooks")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert f"Disabled {world.hook.name}." in page.inner_text(".messagelist")
    assert not Hook.objects.get(pk=world.hook.pk).enabled
    assert CLAIM not in claims(token_request(world, client, secret))
    assert_untouched(bystander)
    assert problems.items == []


# --- deletes -------------------------------------------------------------------


def test_deleting_the_hook_stops_its_claim(
    page, live_server, world, credentials, bystander, problems
):
    client, secret = credentials
    assert claims(token_request(world, client, secret))[CLAIM] == "gold"
    log_in(page, live_server, world.admin.username)
    confirm_delete(page, live_server, f"hooks/hook/{world.hook.pk}")
    assert not Hook.objects.filter(pk=world.hook.pk).exists()
    issued = claims(token_request(world, client, secret))
    assert CLAIM not in issued and issued["scope"] == "read:data"
    assert_untouched(bystander)
    assert problems.items == []


def test_deleting_the_client_makes_its_credentials_invalid(
    page, live_server, world, credentials, bystander, problems
):
    client, secret = credentials
    assert token_request(world, client, secret).status_code == 200
    log_in(page, live_server, world.admin.username)
    confirm_delete(page, live_server, f"clients/client/{client.pk}")
    assert not Client.objects.filter(pk=client.pk).exists()
    assert_refused(
        token_request(world, client, secret),
        401,
        "invalid_client",
        "Client authentication failed.",
    )
    assert_untouched(bystander)
    assert problems.items == []


def test_deleting_the_grant_denies_access(
    page, live_server, world, credentials, bystander, problems
):
    client, secret = credentials
    grant = client.grants.get()
    assert token_request(world, client, secret).status_code == 200
    log_in(page, live_server, world.admin.username)
    confirm_delete(page, live_server, f"clients/clientgrant/{grant.pk}")
    assert not ClientGrant.objects.filter(pk=grant.pk).exists()
    assert_refused(
        token_request(world, client, secret),
        403,
        "access_denied",
        f'Client "{client.client_id}" is not authorized to access resource server '
        f'"{world.api.identifier}".',
    )
    assert_untouched(bystander)
    assert problems.items == []


def test_deleting_the_grant_inline_on_the_client_page_denies_access(
    page, live_server, world, credentials, bystander, problems
):
    client, secret = credentials
    log_in(page, live_server, world.admin.username)
    page.goto(f"{live_server.url}/admin/clients/client/{client.pk}/change/")
    page.check("input[name$='-0-DELETE']")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    assert not client.grants.exists()
    assert token_request(world, client, secret).json()["error"] == "access_denied"
    assert_untouched(bystander)
    assert problems.items == []


def test_deleting_the_api_denies_access(page, live_server, world, credentials, bystander, problems):
    client, secret = credentials
    assert token_request(world, client, secret).status_code == 200
    log_in(page, live_server, world.admin.username)
    confirm_delete(page, live_server, f"apis/api/{world.api.pk}")
    assert not Api.objects.filter(pk=world.api.pk).exists()
    assert_refused(
        token_request(world, client, secret),
        403,
        "access_denied",
        f"Service not enabled within domain: {world.api.identifier}",
    )
    assert_untouched(bystander)
    assert problems.items == []
