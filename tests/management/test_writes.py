"""Successful Management API writes over real HTTP: PATCH and DELETE of
clients, resource servers and client grants answer what Auth0 answers,
change the row, and change what the tenant's token endpoint issues next;
the list filters and ``fields`` with ``include_fields`` pick what they say."""

from typing import Any

import jwt
import pytest
import requests

from apis.models import Api
from clients.models import Client, ClientGrant
from hooks.services import hook_create
from tests.factories import TEST_ACTOR, make_api, make_client
from tests.management.conftest import MANAGEMENT_SCOPES, ManagedTenant

pytestmark = pytest.mark.django_db(transaction=True)

AUD = "https://api.acme.test/"
SCRIPT = "module.exports = function(c, s, a, ctx, cb) { cb(null, { scope: s }); };\n"


def call(managed: ManagedTenant, method: str, path: str, body: Any = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {managed.token(list(MANAGEMENT_SCOPES))}"}
    return requests.request(method, managed.api_url + path, headers=headers, json=body, timeout=10)


def token_request(
    managed: ManagedTenant, client_id: str, secret: str, audience: str = AUD, **extra: Any
) -> requests.Response:
    body = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "audience": audience,
        **extra,
    }
    return requests.post(f"{managed.tenant.issuer}oauth/token", json=body, timeout=10)


def claims(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


def assert_token_error(response: requests.Response, status: int, error: str, description: str):
    assert response.status_code == status, response.text
    assert response.json() == {"error": error, "error_description": description}


@pytest.fixture
def service(acme):
    """An API with two scopes and a client granted one of them, in acme."""
    api = make_api(acme.tenant, AUD)
    client, secret = make_client(acme.tenant, {api: ["read:data"]}, name="svc")
    return api, client, secret


# --- clients --------------------------------------------------------------------


def test_client_patch_answers_the_client_and_changes_the_row(acme, service):
    _, client, secret = service
    body = {
        "name": "renamed",
        "client_metadata": {"team": "billing"},
        "token_endpoint_auth_method": "client_secret_basic",
    }
    response = call(acme, "PATCH", f"clients/{client.client_id}", body)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["client_id"] == client.client_id
    assert shown["name"] == "renamed"
    assert shown["client_metadata"] == {"team": "billing"}
    assert shown["token_endpoint_auth_method"] == "client_secret_basic"
    assert "client_secret" not in shown
    row = Client.objects.get(pk=client.pk)
    assert (row.name, row.metadata, row.token_endpoint_auth_method) == (
        "renamed",
        {"team": "billing"},
        "client_secret_basic",
    )
    # The secret is unchanged and the client still gets tokens, now by Basic.
    basic = requests.post(
        f"{acme.tenant.issuer}oauth/token",
        data={"grant_type": "client_credentials", "audience": AUD},
        auth=(client.client_id, secret),
        timeout=10,
    )
    assert claims(basic)["azp"] == client.client_id


def test_client_patch_of_one_field_leaves_the_others(acme, service):
    _, client, secret = service
    call(acme, "PATCH", f"clients/{client.client_id}", {"client_metadata": {"a": "1"}})
    response = call(acme, "PATCH", f"clients/{client.client_id}", {"name": "only-name"})
    assert response.status_code == 200, response.text
    assert response.json()["client_metadata"] == {"a": "1"}
    assert Client.objects.get(pk=client.pk).metadata == {"a": "1"}
    assert claims(token_request(acme, client.client_id, secret))["scope"] == "read:data"


def test_client_delete_answers_204_and_its_tokens_stop(acme, globex, service):
    _, client, secret = service
    other_api = make_api(globex.tenant, "https://api.globex.test/")
    bystander, bystander_secret = make_client(globex.tenant, {other_api: ["read:data"]})
    assert token_request(acme, client.client_id, secret).status_code == 200

    response = call(acme, "DELETE", f"clients/{client.client_id}")
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert not Client.objects.filter(pk=client.pk).exists()
    assert not ClientGrant.objects.filter(client_id=client.pk).exists()
    assert_token_error(
        token_request(acme, client.client_id, secret),
        401,
        "invalid_client",
        "Client authentication failed.",
    )
    assert call(acme, "GET", f"clients/{client.client_id}").status_code == 404
    # The other tenant's client is untouched.
    other = token_request(
        globex, bystander.client_id, bystander_secret, audience="https://api.globex.test/"
    )
    assert claims(other)["azp"] == bystander.client_id


# --- resource servers -----------------------------------------------------------


def test_resource_server_patch_answers_the_api_and_changes_tokens(acme, service):
    api, client, secret = service
    body = {
        "name": "Renamed API",
        "token_lifetime": 120,
        "scopes": [{"value": "read:data", "description": "Read it"}, {"value": "audit:data"}],
    }
    response = call(acme, "PATCH", f"resource-servers/{api.public_id}", body)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["id"] == api.public_id
    assert shown["identifier"] == AUD
    assert shown["name"] == "Renamed API"
    assert shown["token_lifetime"] == 120
    assert shown["scopes"] == [
        {"value": "read:data", "description": "Read it"},
        {"value": "audit:data", "description": ""},
    ]
    row = Api.objects.get(pk=api.pk)
    assert (row.name, row.token_lifetime) == ("Renamed API", 120)
    assert sorted(row.scopes.values_list("value", flat=True)) == ["audit:data", "read:data"]

    issued = claims(token_request(acme, client.client_id, secret))
    assert issued["exp"] - issued["iat"] == 120
    assert issued["scope"] == "read:data"


def test_resource_server_patch_by_identifier_drops_a_removed_scope_from_tokens(acme, service):
    _, client, secret = service
    response = call(acme, "PATCH", f"resource-servers/{AUD}", {"scopes": [{"value": "other"}]})
    assert response.status_code == 200, response.text
    assert [s["value"] for s in response.json()["scopes"]] == ["other"]
    # The scope left the API, so it left the grant and the token.
    assert "scope" not in claims(token_request(acme, client.client_id, secret))
    refused = token_request(acme, client.client_id, secret, scope="read:data")
    assert refused.status_code == 403, refused.text


def test_resource_server_delete_answers_204_and_its_tokens_stop(acme, service):
    api, client, secret = service
    response = call(acme, "DELETE", f"resource-servers/{api.public_id}")
    assert response.status_code == 204, response.text
    assert not Api.objects.filter(pk=api.pk).exists()
    assert not ClientGrant.objects.filter(api_id=api.pk).exists()
    assert Client.objects.filter(pk=client.pk).exists()
    assert_token_error(
        token_request(acme, client.client_id, secret),
        403,
        "access_denied",
        f"Service not enabled within domain: {AUD}",
    )
    assert call(acme, "GET", f"resource-servers/{api.public_id}").status_code == 404


# --- client grants --------------------------------------------------------------


def test_client_grant_patch_answers_the_grant_and_changes_tokens(acme, service):
    _, client, secret = service
    grant = client.grants.get()
    response = call(acme, "PATCH", f"client-grants/{grant.public_id}", {"scope": ["write:data"]})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": grant.public_id,
        "client_id": client.client_id,
        "audience": AUD,
        "scope": ["write:data"],
    }
    assert list(ClientGrant.objects.get(pk=grant.pk).scopes.values_list("value", flat=True)) == [
        "write:data"
    ]
    assert claims(token_request(acme, client.client_id, secret))["scope"] == "write:data"
    assert_token_error(
        token_request(acme, client.client_id, secret, scope="read:data"),
        403,
        "access_denied",
        "Client has not been granted scopes: read:data",
    )


def test_client_grant_delete_answers_204_and_its_tokens_stop(acme, service):
    api, client, secret = service
    grant = client.grants.get()
    response = call(acme, "DELETE", f"client-grants/{grant.public_id}")
    assert response.status_code == 204, response.text
    assert not ClientGrant.objects.filter(pk=grant.pk).exists()
    assert Client.objects.filter(pk=client.pk).exists() and Api.objects.filter(pk=api.pk).exists()
    assert_token_error(
        token_request(acme, client.client_id, secret),
        403,
        "access_denied",
        f'Client "{client.client_id}" is not authorized to access resource server "{AUD}".',
    )
    assert grant.public_id not in {g["id"] for g in call(acme, "GET", "client-grants").json()}


# --- list filters and fields ----------------------------------------------------


def test_client_grants_filter_by_audience_and_client_id(acme, globex):
    one = make_api(acme.tenant, "https://one.test/")
    two = make_api(acme.tenant, "https://two.test/")
    a, _ = make_client(acme.tenant, {one: ["read:data"], two: []}, name="a")
    b, _ = make_client(acme.tenant, {one: []}, name="b")
    # The same audience and a same-named client in the other tenant never show.
    make_client(globex.tenant, {make_api(globex.tenant, "https://one.test/"): []}, name="a")

    def listed(query: str) -> set[tuple[str, str]]:
        response = call(acme, "GET", f"client-grants?{query}")
        assert response.status_code == 200, response.text
        return {(g["client_id"], g["audience"]) for g in response.json()}

    assert listed("audience=https://one.test/") == {
        (a.client_id, "https://one.test/"),
        (b.client_id, "https://one.test/"),
    }
    assert listed(f"client_id={a.client_id}") == {
        (a.client_id, "https://one.test/"),
        (a.client_id, "https://two.test/"),
    }
    assert listed(f"client_id={b.client_id}&audience=https://two.test/") == set()
    assert listed("audience=https://nowhere.test/") == set()


def test_hooks_filter_by_enabled_and_trigger(acme):
    on = hook_create(tenant=acme.tenant, name="on", script=SCRIPT, enabled=True, actor=TEST_ACTOR)
    off = hook_create(
        tenant=acme.tenant, name="off", script=SCRIPT, enabled=False, actor=TEST_ACTOR
    )

    def names(query: str) -> list[str]:
        response = call(acme, "GET", f"hooks?{query}")
        assert response.status_code == 200, response.text
        return sorted(h["name"] for h in response.json())

    assert names("enabled=true") == [on.name]
    assert names("enabled=false") == [off.name]
    assert names("triggerId=credentials-exchange") == ["off", "on"]
    assert names("triggerId=pre-user-registration") == []
    assert names("enabled=false&triggerId=credentials-exchange") == ["off"]


def test_fields_with_include_fields_false_drops_those_fields(acme, service):
    api, client, _ = service
    response = call(acme, "GET", f"clients/{client.client_id}?fields=name,client_metadata")
    assert set(response.json()) == {"name", "client_metadata"}

    response = call(
        acme, "GET", f"clients/{client.client_id}?fields=name,client_metadata&include_fields=false"
    )
    assert response.status_code == 200, response.text
    shown = response.json()
    assert "name" not in shown and "client_metadata" not in shown
    assert shown["client_id"] == client.client_id
    assert shown["token_endpoint_auth_method"] == "client_secret_post"

    listed = call(acme, "GET", "resource-servers?fields=scopes,signing_alg&include_fields=false")
    assert listed.status_code == 200, listed.text
    mine = next(r for r in listed.json() if r["identifier"] == AUD)
    assert mine == {
        "id": api.public_id,
        "name": api.name,
        "identifier": AUD,
        "is_system": False,
        "token_lifetime": api.token_lifetime,
    }

    hook = hook_create(tenant=acme.tenant, name="h", script=SCRIPT, actor=TEST_ACTOR)
    one = call(acme, "GET", f"hooks/{hook.public_id}?fields=script&include_fields=false").json()
    assert "script" not in one and one["name"] == "h"
    hooks = call(acme, "GET", "hooks?fields=script,dependencies&include_fields=false").json()
    assert hooks and all("script" not in h and "dependencies" not in h for h in hooks)
    assert {"id", "name", "enabled", "triggerId"} <= set(hooks[0])
