"""What Auth0's own tools (auth0-deploy-cli, node-auth0) read from the
Management API, as they read it: found running them against Tessera
(tests/compat/test_deploy_cli.py, test_node_management.py)."""

import pytest
import requests

from tests.factories import make_api, make_client
from tests.management.conftest import ManagedTenant

pytestmark = pytest.mark.django_db(transaction=True)


def get(managed: ManagedTenant, path: str, **params) -> requests.Response:
    return requests.get(
        f"{managed.api_url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {managed.token()}"},
        timeout=10,
    )


def test_builtin_api_is_listed_under_auth0s_name_as_system(acme, globex):
    # The Deploy CLI leaves out of its plan only the resource server named
    # "Auth0 Management API": under another name it proposes deleting it.
    make_api(acme.tenant, "https://orders.test/", name="Orders")
    listed = get(acme, "resource-servers").json()
    assert [(rs["name"], rs["is_system"]) for rs in listed] == [
        ("Auth0 Management API", True),
        ("Orders", False),
    ]
    assert listed[0]["identifier"] == acme.api_url
    by_identifier = get(acme, f"resource-servers/{acme.api_url}").json()
    assert (by_identifier["name"], by_identifier["is_system"]) == ("Auth0 Management API", True)
    assert get(globex, "resource-servers").json()[0]["identifier"] == globex.api_url


def grants_of(managed: ManagedTenant, count: int) -> list[str]:
    """``count`` grants besides the management client's, oldest first."""
    apis = [make_api(managed.tenant, f"https://api{n}.test/") for n in range(count)]
    client, _ = make_client(managed.tenant, {api: ["read:data"] for api in apis})
    return [
        grant["id"] for grant in get(managed, "client-grants", client_id=client.client_id).json()
    ]


def test_client_grants_checkpoint_pagination(acme, globex):
    # node-auth0 (and so the Deploy CLI) lists grants with ``take`` and
    # follows ``next`` as ``from``; page parameters alone would stop at 50.
    ids = [get(acme, "client-grants").json()[0]["id"], *grants_of(acme, 5)]
    globex_ids = grants_of(globex, 1)

    first = get(acme, "client-grants", take=4, include_totals="true")
    assert first.status_code == 200, first.text
    assert set(first.json()) == {"client_grants", "next"}
    assert [g["id"] for g in first.json()["client_grants"]] == ids[:4]
    last = get(acme, "client-grants", take=4, **{"from": first.json()["next"]}).json()
    assert [g["id"] for g in last["client_grants"]] == ids[4:]
    assert "next" not in last
    assert [g["id"] for g in get(acme, "client-grants", take=100).json()["client_grants"]] == ids

    # Page pagination is unchanged.
    assert [g["id"] for g in get(acme, "client-grants", per_page=2, page=1).json()] == ids[2:4]

    for bad in (
        {"from": globex_ids[0]},  # another tenant's grant is no checkpoint here
        {"from": "cgr_nope"},
        {"take": "101"},
        {"take": "-1"},
    ):
        response = get(acme, "client-grants", **bad)
        assert response.status_code == 400, bad
        assert response.json()["errorCode"] == "invalid_query_string", bad


def test_client_grant_read_by_id(acme, globex):
    # node-auth0's clientGrants.get(id).
    grant_id = grants_of(acme, 1)[0]
    response = get(acme, f"client-grants/{grant_id}")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == grant_id
    assert response.json()["scope"] == ["read:data"]
    assert get(acme, f"client-grants/{grant_id}", fields="id").json() == {"id": grant_id}
    other = get(globex, f"client-grants/{grant_id}")
    assert (other.status_code, other.json()["errorCode"]) == (404, "inexistent_client_grant")


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "PUT", "DELETE"])
def test_missing_endpoint_is_auth0s_404_for_every_method(acme, method):
    # Tools tell "not available here" from "not allowed" by the status: a
    # POST to an endpoint Tessera lacks was a CSRF 403 access_denied.
    response = requests.request(
        method,
        f"{acme.api_url}log-streams",
        json={"name": "x"},
        headers={"Authorization": f"Bearer {acme.token()}"},
        timeout=10,
    )
    assert response.status_code == 404, response.text
    assert response.json() == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "Not Found",
        "errorCode": "inexistent_resource",
    }
