"""node rows: openid-client fetching tokens; jose and Auth0's
express-oauth2-jwt-bearer verifying them in an API."""

import pytest
import requests

from tests.compat.conftest import (
    AUDIENCE,
    OTHER_AUDIENCE,
    node_library,
    require_node_library,
    run_node,
)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("library", [node_library("openid-client")])
def test_openid_client_discovers_issuer_and_grants(issuer, library, method):
    require_node_library("openid-client")
    result = run_node(
        "openid_client_grant.mjs",
        {
            "issuer": issuer.url,
            "clientId": issuer.client_id,
            "clientSecret": issuer.client_secret,
            "audience": AUDIENCE,
            "method": method,
        },
    )

    assert "failed" not in result, f"{library}: {result}"
    assert result["issuer"] == issuer.url, library
    assert result["token_endpoint"] == issuer.token_url, library
    assert result["token_type"] == "bearer", library  # openid-client lower-cases it
    assert result["scope"] == "read:data", library
    assert issuer.verify(result["access_token"])["azp"] == issuer.client_id, library


@pytest.mark.parametrize("library", [node_library("openid-client")])
def test_openid_client_wrong_secret_is_invalid_client(issuer, library):
    require_node_library("openid-client")
    result = run_node(
        "openid_client_grant.mjs",
        {
            "issuer": issuer.url,
            "clientId": issuer.client_id,
            "clientSecret": "wrong",
            "audience": AUDIENCE,
            "method": "client_secret_basic",
        },
    )
    assert (result.get("error"), result.get("status")) == ("invalid_client", 401), (
        f"{library}: {result}"
    )
    assert [challenge["scheme"] for challenge in result["challenges"]] == ["basic"], library


@pytest.mark.parametrize("library", [node_library("jose")])
def test_jose_remote_jwks_verifies_and_refuses(issuer, other_issuer, library):
    require_node_library("jose")

    def verify(token, audience=AUDIENCE):
        payload = {"jwksUri": issuer.jwks_url, "issuer": issuer.url, "audience": audience}
        return run_node("jose_verify.mjs", {**payload, "token": token})

    good = verify(issuer.token())
    assert good["verified"], f"{library}: {good}"
    assert good["payload"]["sub"] == f"{issuer.client_id}@clients", library
    assert good["protectedHeader"]["alg"] == "RS256", library

    wrong_audience = verify(issuer.token(OTHER_AUDIENCE))
    assert (wrong_audience["code"], wrong_audience["claim"]) == (
        "ERR_JWT_CLAIM_VALIDATION_FAILED",
        "aud",
    ), library
    expired = verify(issuer.expired_token())
    assert (expired["code"], expired["claim"]) == ("ERR_JWT_EXPIRED", "exp"), library
    other_tenant = verify(other_issuer.token())
    assert other_tenant["code"] == "ERR_JWKS_NO_MATCHING_KEY", f"{library}: {other_tenant}"


def call(api_url, token):
    return requests.get(
        f"{api_url}/api/private", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def assert_rejected(response, library):
    assert response.status_code == 401, f"{library}: {response.status_code} {response.text}"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], library


LIBRARY = node_library("express-oauth2-jwt-bearer")


@pytest.mark.parametrize("library", [LIBRARY])
def test_express_api_accepts_tessera_token(issuer, express_api, library):
    response = call(express_api, issuer.token())
    assert response.status_code == 200, f"{library}: {response.status_code} {response.text}"
    assert response.json() == {
        "sub": f"{issuer.client_id}@clients",
        "iss": issuer.url,
        "scope": "read:data",
    }, library


@pytest.mark.parametrize("library", [LIBRARY])
def test_express_api_rejects_wrong_audience(issuer, express_api, library):
    assert_rejected(call(express_api, issuer.token(OTHER_AUDIENCE)), library)


@pytest.mark.parametrize("library", [LIBRARY])
def test_express_api_rejects_expired_token(issuer, express_api, library):
    assert_rejected(call(express_api, issuer.expired_token()), library)


@pytest.mark.parametrize("library", [LIBRARY])
def test_express_api_rejects_another_tenants_token(other_issuer, express_api, library):
    assert_rejected(call(express_api, other_issuer.token()), library)


@pytest.mark.parametrize("library", [LIBRARY])
def test_express_api_rejects_missing_token(express_api, library):
    response = requests.get(f"{express_api}/api/private", timeout=10)
    assert response.status_code == 401, library
    assert response.headers["WWW-Authenticate"].startswith("Bearer"), library
