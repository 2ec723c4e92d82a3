"""Uniqueness rules answer Auth0's 409 body, from the services: a name taken
in one tenant is free in another."""

from typing import Any

import pytest
import requests

from tests.management.conftest import ManagedTenant

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = "module.exports = function(c, s, a, ctx, cb) { cb(null, {}); };\n"


def call(managed: ManagedTenant, method: str, path: str, body: Any) -> requests.Response:
    return requests.request(
        method,
        f"{managed.api_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {managed.token()}"},
        timeout=10,
    )


def conflict_body(message: str, code: str) -> dict[str, Any]:
    return {"statusCode": 409, "error": "Conflict", "message": message, "errorCode": code}


def hook_body(name: str) -> dict[str, str]:
    return {"name": name, "script": SCRIPT, "triggerId": "credentials-exchange"}


def test_hook_names_conflict_within_a_tenant_only(acme, globex):
    assert call(acme, "POST", "hooks", hook_body("dup")).status_code == 201
    assert call(globex, "POST", "hooks", hook_body("dup")).status_code == 201
    again = call(acme, "POST", "hooks", hook_body("dup"))
    assert (again.status_code, again.json()) == (
        409,
        conflict_body("Hook with name dup already exists.", "hook_conflict"),
    )
    other = call(acme, "POST", "hooks", hook_body("other")).json()
    renamed = call(acme, "PATCH", f"hooks/{other['id']}", {"name": "dup"})
    assert (renamed.status_code, renamed.json()) == (
        409,
        conflict_body("Hook with name dup already exists.", "hook_conflict"),
    )
    assert call(acme, "GET", f"hooks/{other['id']}", None).json()["name"] == "other"


def test_resource_server_identifiers_conflict_within_a_tenant_only(acme, globex):
    body = {"name": "Orders", "identifier": "https://orders.example.test/"}
    assert call(acme, "POST", "resource-servers", body).status_code == 201
    assert call(globex, "POST", "resource-servers", body).status_code == 201
    again = call(acme, "POST", "resource-servers", body)
    assert (again.status_code, again.json()) == (
        409,
        conflict_body(
            "A resource server with the same identifier already exists.",
            "resource_server_conflict",
        ),
    )


def test_a_second_grant_for_one_client_and_audience_conflicts(acme, globex):
    audience = "https://orders.example.test/"
    for managed in (acme, globex):
        call(managed, "POST", "resource-servers", {"identifier": audience, "scopes": []})
    body = {"client_id": acme.client_id, "audience": audience, "scope": []}
    assert call(acme, "POST", "client-grants", body).status_code == 201
    # The same client id and audience sent to the other tenant name nothing there.
    assert call(globex, "POST", "client-grants", body).status_code == 404
    again = call(acme, "POST", "client-grants", body)
    assert (again.status_code, again.json()) == (
        409,
        conflict_body("A client grant for this client and audience already exists.", "conflict"),
    )


def test_adding_a_hook_secret_that_exists_conflicts(acme, globex):
    mine = call(acme, "POST", "hooks", hook_body("h")).json()
    theirs = call(globex, "POST", "hooks", hook_body("h")).json()
    assert call(acme, "POST", f"hooks/{mine['id']}/secrets", {"KEY": "1"}).status_code == 201
    assert call(globex, "POST", f"hooks/{theirs['id']}/secrets", {"KEY": "1"}).status_code == 201
    again = call(acme, "POST", f"hooks/{mine['id']}/secrets", {"KEY": "2"})
    assert (again.status_code, again.json()) == (
        409,
        conflict_body("Secret already exists: KEY.", "hook_secret_conflict"),
    )
