"""The token endpoint (SPEC §3): a success, then each way to fail."""

import base64
import json
from urllib.parse import quote, quote_plus, urlencode

import jwt
import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from apis.choices import SigningAlgorithm
from apis.services import api_create
from clients.choices import TokenEndpointAuthMethod
from clients.models import Client
from tenant.crypto import encrypt
from tenant.models import SigningKey
from tenant.services import tenant_rotate_key
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

AUD = "https://api.example.test/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    return make_tenant("acme")


@pytest.fixture
def api(tenant):
    return make_api(tenant, AUD)


@pytest.fixture
def client_and_secret(tenant, api):
    return make_client(tenant, {api: ["read:data", "write:data"]})


def post_token(tenant, body=None, *, form=False, slug=None, **extra):
    http = HttpClient()
    url = f"/{slug or tenant.slug}/oauth/token"
    if form:
        return http.post(
            url, urlencode(body or {}), content_type="application/x-www-form-urlencoded", **extra
        )
    return http.post(url, json.dumps(body or {}), content_type="application/json", **extra)


def credentials(client_and_secret, **overrides):
    client, secret = client_and_secret
    return {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": AUD,
        **overrides,
    }


def basic(client_id, secret):
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(raw).decode()}


def decode(tenant, token, audience=AUD):
    jwks = jwt.PyJWKSet.from_dict(HttpClient().get(f"/{tenant.slug}/.well-known/jwks.json").json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    return jwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=tenant.issuer)


def assert_error(response, status, error, description=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    if description is not None:
        assert body["error_description"] == description


# --- success -----------------------------------------------------------------


def test_json_body_returns_signed_token_with_standard_claims(tenant, client_and_secret):
    client, _ = client_and_secret
    response = post_token(tenant, credentials(client_and_secret))

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert body["scope"] == "read:data write:data"
    assert "refresh_token" not in body
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["kid"]
    claims = decode(tenant, body["access_token"])
    assert claims["iss"] == "http://127.0.0.1:8000/acme/"
    assert claims["sub"] == f"{client.client_id}@clients"
    assert claims["aud"] == AUD
    assert claims["azp"] == client.client_id
    assert claims["gty"] == "client-credentials"
    assert claims["scope"] == "read:data write:data"
    assert claims["exp"] - claims["iat"] == 86400
    assert claims["jti"]


def test_form_body_returns_token(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret), form=True)
    assert response.status_code == 200
    assert decode(tenant, response.json()["access_token"])["aud"] == AUD


def test_basic_auth_client_gets_token(tenant, api):
    client, secret = make_client(
        tenant,
        {api: ["read:data"]},
        token_endpoint_auth_method=TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
    )
    body = {"grant_type": "client_credentials", "audience": AUD}
    response = post_token(tenant, body, form=True, **basic(client.client_id, secret))
    assert response.status_code == 200
    assert decode(tenant, response.json()["access_token"])["azp"] == client.client_id


def test_client_registered_for_post_may_use_basic(tenant, client_and_secret):
    client, secret = client_and_secret  # registered for client_secret_post
    body = {"grant_type": "client_credentials", "audience": AUD}
    response = post_token(tenant, body, **basic(client.client_id, secret))
    assert response.status_code == 200, response.content
    assert decode(tenant, response.json()["access_token"])["azp"] == client.client_id


def test_client_registered_for_basic_may_use_body(tenant, api):
    client, secret = make_client(
        tenant,
        {api: ["read:data"]},
        token_endpoint_auth_method=TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
    )
    response = post_token(tenant, credentials((client, secret)))
    assert response.status_code == 200, response.content
    assert Client.objects.get(pk=client.pk).token_endpoint_auth_method == "client_secret_basic"


@pytest.mark.parametrize("scheme", ["basic", "BASIC", "bAsIc"])
def test_basic_scheme_name_in_any_case(tenant, client_and_secret, scheme):
    client, secret = client_and_secret
    raw = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    body = {"grant_type": "client_credentials", "audience": AUD}
    response = post_token(tenant, body, HTTP_AUTHORIZATION=f"{scheme} {raw}")
    assert response.status_code == 200, response.content


def test_basic_credentials_are_form_urlencoded_before_base64(tenant, client_and_secret):
    client, _ = client_and_secret
    client.client_secret = "p@ss word+:é/%"  # DOT hashes it on save
    client.save()
    encoded = f"{client.client_id}:{quote_plus('p@ss word+:é/%')}"
    header = "Basic " + base64.b64encode(encoded.encode()).decode()
    body = {"grant_type": "client_credentials", "audience": AUD}

    assert "+" in encoded and "%" in encoded
    response = post_token(tenant, body, HTTP_AUTHORIZATION=header)
    assert response.status_code == 200, response.content
    unencoded = "Basic " + base64.b64encode(f"{client.client_id}:p@ss word+:é/%".encode()).decode()
    assert_error(post_token(tenant, body, HTTP_AUTHORIZATION=unencoded), 401, "invalid_client")


def test_basic_with_matching_client_id_in_body_gets_token(tenant, client_and_secret):
    client, secret = client_and_secret
    body = {"grant_type": "client_credentials", "client_id": client.client_id, "audience": AUD}
    response = post_token(tenant, body, form=True, **basic(client.client_id, secret))
    assert response.status_code == 200, response.content


def test_basic_with_null_client_secret_in_body_gets_token(tenant, client_and_secret):
    client, secret = client_and_secret
    body = {"grant_type": "client_credentials", "client_secret": None, "audience": AUD}
    response = post_token(tenant, body, **basic(client.client_id, secret))
    assert response.status_code == 200, response.content


def test_other_authorization_scheme_is_ignored_for_body_credentials(tenant, client_and_secret):
    response = post_token(
        tenant, credentials(client_and_secret), HTTP_AUTHORIZATION="Bearer something"
    )
    assert response.status_code == 200, response.content


def test_json_null_optional_parameters_are_absent(tenant, client_and_secret):
    # auth0-python's GetToken.client_credentials always sends "organization": null.
    body = credentials(client_and_secret, organization=None, scope=None)
    response = post_token(tenant, body)
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "read:data write:data"


def test_scope_parameter_narrows_granted_scopes(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, scope="write:data"))
    assert response.json()["scope"] == "write:data"
    assert decode(tenant, response.json()["access_token"])["scope"] == "write:data"


def test_grant_without_scopes_issues_token_without_scope_claim(tenant, api):
    client, secret = make_client(tenant, {api: []})
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": AUD,
    }
    response = post_token(tenant, body)
    assert response.status_code == 200
    assert "scope" not in response.json()
    assert "scope" not in decode(tenant, response.json()["access_token"])


def test_api_token_lifetime_sets_expiry(tenant):
    api = make_api(tenant, "short-lived", token_lifetime=60)
    client, secret = make_client(tenant, {api: []})
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": "short-lived",
    }
    response = post_token(tenant, body)
    claims = decode(tenant, response.json()["access_token"], audience="short-lived")
    assert response.json()["expires_in"] == 60
    assert claims["exp"] - claims["iat"] == 60


def test_hs256_api_token_verifies_with_api_secret(tenant):
    api, secret = api_create(
        tenant=tenant,
        name="Legacy",
        identifier="legacy-api",
        scopes=["read"],
        signing_alg=SigningAlgorithm.HS256,
        actor=TEST_ACTOR,
    )
    assert secret is not None
    client, client_secret = make_client(tenant, {api: ["read"]})
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": client_secret,
        "audience": "legacy-api",
    }
    token = post_token(tenant, body).json()["access_token"]

    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience="legacy-api")
    assert claims["scope"] == "read"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token,
            "another-secret-of-enough-length-1234567890",
            algorithms=["HS256"],
            audience="legacy-api",
        )


def test_token_signed_before_rotation_still_verifies(tenant, client_and_secret):
    before = post_token(tenant, credentials(client_and_secret)).json()["access_token"]
    old_kid = jwt.get_unverified_header(before)["kid"]

    tenant_rotate_key(tenant=tenant, actor=TEST_ACTOR)
    after = post_token(tenant, credentials(client_and_secret)).json()["access_token"]

    assert jwt.get_unverified_header(after)["kid"] != old_kid
    assert decode(tenant, before)["aud"] == AUD
    assert decode(tenant, after)["aud"] == AUD
    kids = {k["kid"] for k in HttpClient().get("/acme/.well-known/jwks.json").json()["keys"]}
    assert len(kids) == 2


def test_discovery_issuer_equals_token_iss(tenant, client_and_secret):
    discovery = HttpClient().get("/acme/.well-known/openid-configuration").json()
    token = post_token(tenant, credentials(client_and_secret)).json()["access_token"]

    assert discovery["issuer"] == decode(tenant, token)["iss"] == tenant.issuer
    assert discovery["token_endpoint"] == "http://127.0.0.1:8000/acme/oauth/token"
    assert discovery["jwks_uri"] == "http://127.0.0.1:8000/acme/.well-known/jwks.json"
    assert discovery["grant_types_supported"] == ["client_credentials"]
    assert set(discovery["token_endpoint_auth_methods_supported"]) == {
        "client_secret_post",
        "client_secret_basic",
    }


def test_tenant_on_own_domain_is_resolved_from_host(settings):
    settings.ALLOWED_HOSTS = ["auth.acme.test"]
    tenant = make_tenant("domained", domain="auth.acme.test")
    api = make_api(tenant, AUD)
    client_and_secret = make_client(tenant, {api: ["read:data"]})
    http = HttpClient(HTTP_HOST="auth.acme.test")

    discovery = http.get("/.well-known/openid-configuration").json()
    response = http.post(
        "/oauth/token", json.dumps(credentials(client_and_secret)), content_type="application/json"
    )
    jwks = jwt.PyJWKSet.from_dict(http.get("/.well-known/jwks.json").json())
    claims = jwt.decode(
        response.json()["access_token"], jwks.keys[0], algorithms=["RS256"], audience=AUD
    )
    assert discovery["issuer"] == "https://auth.acme.test/" == claims["iss"]


# --- errors: request shape (400 invalid_request) -------------------------------


def test_malformed_json_is_invalid_request(tenant):
    response = HttpClient().post("/acme/oauth/token", "{not json", content_type="application/json")
    assert_error(response, 400, "invalid_request", "Malformed request body.")


def test_unsupported_content_type_is_invalid_request(tenant):
    response = HttpClient().post("/acme/oauth/token", "hello", content_type="text/plain")
    assert_error(response, 400, "invalid_request")


def test_json_array_body_is_invalid_request(tenant):
    response = HttpClient().post("/acme/oauth/token", "[]", content_type="application/json")
    assert_error(response, 400, "invalid_request", "The request body must be an object.")


def test_non_string_parameter_is_invalid_request(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, audience=["a"]))
    assert_error(response, 400, "invalid_request", "Every parameter must be a string.")


@pytest.mark.parametrize("missing", ["grant_type", "client_id", "client_secret", "audience"])
def test_missing_parameter_is_invalid_request(tenant, client_and_secret, missing):
    body = credentials(client_and_secret)
    del body[missing]
    response = post_token(tenant, body)
    assert_error(response, 400, "invalid_request", f"Missing required parameter: {missing}")


@pytest.mark.parametrize("missing", ["grant_type", "client_id", "client_secret", "audience"])
def test_null_required_parameter_is_missing(tenant, client_and_secret, missing):
    response = post_token(tenant, credentials(client_and_secret, **{missing: None}))
    assert_error(response, 400, "invalid_request", f"Missing required parameter: {missing}")


def test_basic_and_body_secret_at_once_is_invalid_request(tenant, client_and_secret):
    client, secret = client_and_secret
    response = post_token(
        tenant, credentials(client_and_secret), form=True, **basic(client.client_id, secret)
    )
    assert_error(
        response,
        400,
        "invalid_request",
        "Use one client authentication method: HTTP Basic or client_secret in the body, not both.",
    )


def test_basic_with_other_client_id_in_body_is_invalid_request(tenant, api, client_and_secret):
    client, secret = client_and_secret
    other, _ = make_client(tenant, {api: []})
    body = {"grant_type": "client_credentials", "client_id": other.client_id, "audience": AUD}
    response = post_token(tenant, body, **basic(client.client_id, secret))
    assert_error(response, 400, "invalid_request")


def test_oversized_body_is_rejected(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, padding="x" * 20_000))
    assert_error(response, 413, "invalid_request", "Request body too large.")


def test_other_grant_type_is_unsupported(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, grant_type="password"))
    assert_error(response, 400, "unsupported_grant_type", "Unsupported grant type: password")


# --- errors: client authentication (401 invalid_client) ------------------------


def test_wrong_secret_is_invalid_client(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, client_secret="wrong"))
    assert_error(response, 401, "invalid_client", "Client authentication failed.")
    assert "WWW-Authenticate" not in response


def test_unknown_client_is_invalid_client(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, client_id="nobody"))
    assert_error(response, 401, "invalid_client")


def test_wrong_basic_credentials_answer_www_authenticate_basic(tenant, api):
    client, _ = make_client(
        tenant, {api: []}, token_endpoint_auth_method=TokenEndpointAuthMethod.CLIENT_SECRET_BASIC
    )
    body = {"grant_type": "client_credentials", "audience": AUD}
    response = post_token(tenant, body, form=True, **basic(client.client_id, "wrong"))
    assert_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic")


def test_wrong_basic_secret_does_not_fall_back_to_body_client_id(tenant, client_and_secret):
    client, _ = client_and_secret
    body = {"grant_type": "client_credentials", "client_id": client.client_id, "audience": AUD}
    response = post_token(tenant, body, **basic(client.client_id, "wrong"))
    assert_error(response, 401, "invalid_client", "Client authentication failed.")
    assert response["WWW-Authenticate"].startswith("Basic")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


MALFORMED_BASIC = {
    "empty": "Basic",
    "blank": "Basic   ",
    "not base64": "Basic !!!not-base64!!!",
    "base64 with junk": "Basic " + _b64(b"id:secret") + "$$",
    "missing padding": "Basic " + _b64(b"id:secre").rstrip("="),
    "non-ascii header": "Basic \u00ff\u00fe",
    "non-utf8 bytes": "Basic " + _b64(b"\xff\xfe:\xc3\x28"),
    "non-utf8 percent-encoded": "Basic " + _b64(b"id%FF:secret"),
    "no colon": "Basic " + _b64(b"just-an-id"),
    "empty client_id": "Basic " + _b64(b":secret"),
    "raw NUL": "Basic " + _b64(b"id\x00:secret"),
    "percent-encoded NUL": "Basic " + _b64(b"id%00:secret"),
    "NUL in secret": "Basic " + _b64(b"id:sec%00ret"),
    "control character": "Basic " + _b64(b"id%1B[31m:secret"),
    "DEL": "Basic " + _b64(b"id:\x7f"),
}


@pytest.mark.parametrize("header", MALFORMED_BASIC.values(), ids=MALFORMED_BASIC.keys())
def test_malformed_basic_is_invalid_client_not_500(tenant, client_and_secret, header):
    body = {"grant_type": "client_credentials", "audience": AUD}
    response = post_token(tenant, body, HTTP_AUTHORIZATION=header)
    assert_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic")


def test_basic_client_id_too_long_to_exist_is_refused_without_lookup(tenant, client_and_secret):
    body = {"grant_type": "client_credentials", "audience": AUD}
    with CaptureQueriesContext(connection) as queries:
        response = post_token(tenant, body, **basic("x" * 256, "secret"))
    assert_error(response, 401, "invalid_client", "Client authentication failed.")
    assert response["WWW-Authenticate"].startswith("Basic")
    assert not [query for query in queries if Client._meta.db_table in query["sql"]]


def test_malformed_basic_is_refused_even_with_valid_client_id_in_body(tenant, client_and_secret):
    client, _ = client_and_secret
    body = {"grant_type": "client_credentials", "client_id": client.client_id, "audience": AUD}
    response = post_token(tenant, body, HTTP_AUTHORIZATION="Basic %%%")
    assert_error(response, 401, "invalid_client", "Malformed HTTP Basic credentials.")


def test_stored_secret_is_hashed_not_plain(client_and_secret):
    client, secret = client_and_secret
    stored = Client.objects.get(pk=client.pk).client_secret
    assert secret not in stored
    assert stored.startswith("tessera_client_secret_sha256$")
    assert len(secret) * 6 >= 256 - 6  # alphanumeric: ~5.95 bits per character


# --- errors: authorization (403) -----------------------------------------------


def test_client_without_client_credentials_grant_type_is_unauthorized(tenant, client_and_secret):
    client, _ = client_and_secret
    Client.objects.filter(pk=client.pk).update(
        authorization_grant_type=Client.GRANT_AUTHORIZATION_CODE
    )
    response = post_token(tenant, credentials(client_and_secret))
    assert_error(
        response,
        403,
        "unauthorized_client",
        "Grant type 'client_credentials' not allowed for the client.",
    )


def test_unknown_audience_is_access_denied(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, audience="https://nope/"))
    assert_error(response, 403, "access_denied", "Service not enabled within domain: https://nope/")


def test_api_without_grant_is_access_denied(tenant, client_and_secret):
    make_api(tenant, "https://other.example.test/")
    client, _ = client_and_secret
    response = post_token(
        tenant, credentials(client_and_secret, audience="https://other.example.test/")
    )
    assert_error(
        response,
        403,
        "access_denied",
        f'Client "{client.client_id}" is not authorized to access resource server '
        f'"https://other.example.test/".',
    )


def test_scope_not_granted_is_access_denied(tenant, api):
    client, secret = make_client(tenant, {api: ["read:data"]})
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": AUD,
        "scope": "read:data write:data admin",
    }
    response = post_token(tenant, body)
    assert_error(
        response, 403, "access_denied", "Client has not been granted scopes: write:data admin"
    )


# --- errors: transport ---------------------------------------------------------


def test_too_many_requests_is_429_with_retry_after(settings, tenant, client_and_secret):
    settings.TESSERA_TOKEN_RATE_LIMIT = "2/m"
    for _ in range(2):
        assert post_token(tenant, credentials(client_and_secret)).status_code == 200
    response = post_token(tenant, credentials(client_and_secret))
    assert_error(response, 429, "too_many_requests")
    assert int(response["Retry-After"]) >= 1


def test_get_is_json_405(tenant):
    response = HttpClient().get("/acme/oauth/token")
    assert_error(response, 405, "invalid_request")


def test_unknown_tenant_is_json_404():
    response = HttpClient().post("/nobody/oauth/token", {})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_unknown_path_under_issuer_is_json_404(tenant):
    response = HttpClient().get("/acme/userinfo")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "error_description": "Not found."}


def test_unexpected_failure_is_json_500_without_details(tenant, client_and_secret):
    # It decrypts (a key the server cannot decrypt is an expected failure,
    # tests/tenant/test_unreadable_keys.py), but into no private key.
    not_a_key = encrypt("-----BEGIN PRIVATE KEY-----\ncorrupted\n-----END PRIVATE KEY-----\n")
    SigningKey.objects.filter(tenant=tenant).update(private_key_encrypted=not_a_key)
    response = post_token(tenant, credentials(client_and_secret))
    assert_error(response, 500, "server_error", "Internal server error.")
    assert b"Traceback" not in response.content


# --- tenant isolation ------------------------------------------------------------


def test_client_of_one_tenant_gets_no_token_from_another_with_same_audience(
    tenant, client_and_secret
):
    other = make_tenant("globex")
    make_api(other, AUD)  # same identifier in another tenant
    response = post_token(other, credentials(client_and_secret))
    assert_error(response, 401, "invalid_client")


def test_basic_client_of_one_tenant_is_refused_by_another_tenants_issuer(tenant, client_and_secret):
    other = make_tenant("globex")
    own, own_secret = make_client(other, {make_api(other, AUD): ["read:data"]})
    client, secret = client_and_secret
    body = {"grant_type": "client_credentials", "audience": AUD}

    response = post_token(other, body, **basic(client.client_id, secret))
    assert_error(response, 401, "invalid_client", "Client authentication failed.")
    assert response["WWW-Authenticate"].startswith("Basic")
    assert post_token(other, body, **basic(own.client_id, own_secret)).status_code == 200
    assert post_token(tenant, body, **basic(client.client_id, secret)).status_code == 200


def test_jwks_holds_only_the_tenants_own_keys(tenant):
    other = make_tenant("globex")
    tenant_rotate_key(tenant=tenant, actor=TEST_ACTOR)
    own = set(SigningKey.objects.filter(tenant=tenant).values_list("kid", flat=True))
    published = {k["kid"] for k in HttpClient().get("/globex/.well-known/jwks.json").json()["keys"]}
    assert published == set(SigningKey.objects.filter(tenant=other).values_list("kid", flat=True))
    assert not published & own


def test_repeated_form_parameter_is_invalid_request(tenant, client_and_secret):
    body = urlencode(credentials(client_and_secret)) + "&audience=https://evil/"
    response = HttpClient().post(
        "/acme/oauth/token", body, content_type="application/x-www-form-urlencoded"
    )
    assert_error(response, 400, "invalid_request", "Parameter repeated: audience")
