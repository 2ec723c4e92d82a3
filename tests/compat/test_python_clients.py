"""Python rows: OAuth clients fetching tokens, and an API verifying them."""

import pytest

from tests.compat.conftest import AUDIENCE, OTHER_AUDIENCE, python_library


@pytest.mark.parametrize("library", [python_library("auth0-python")])
def test_auth0_python_get_token_client_credentials(issuer, tessera, library):
    from auth0.authentication import GetToken

    # Auth0's SDK as its README shows, with the domain moved to Tessera.
    domain = f"{tessera.removeprefix('http://')}/{issuer.tenant.slug}"
    get_token = GetToken(
        domain, issuer.client_id, client_secret=issuer.client_secret, protocol="http"
    )
    token = get_token.client_credentials(AUDIENCE)

    assert token["token_type"] == "Bearer", library
    assert token["scope"] == "read:data", library
    claims = issuer.verify(token["access_token"])
    assert claims["sub"] == f"{issuer.client_id}@clients", library


@pytest.mark.parametrize("library", [python_library("auth0-python")])
def test_auth0_python_wrong_secret_raises_invalid_client(issuer, tessera, library):
    from auth0.authentication import GetToken
    from auth0.exceptions import Auth0Error

    domain = f"{tessera.removeprefix('http://')}/{issuer.tenant.slug}"
    get_token = GetToken(domain, issuer.client_id, client_secret="wrong", protocol="http")
    with pytest.raises(Auth0Error) as raised:
        get_token.client_credentials(AUDIENCE)
    assert (raised.value.status_code, raised.value.error_code) == (401, "invalid_client"), library


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("library", [python_library("authlib")])
def test_authlib_oauth2_session_client_credentials(issuer, library, method):
    from authlib.integrations.requests_client import OAuth2Session

    if method == "client_secret_basic":  # authlib's default
        session = OAuth2Session(issuer.client_id, issuer.client_secret)
    else:
        session = OAuth2Session(
            issuer.client_id, issuer.client_secret, token_endpoint_auth_method=method
        )
    with session:
        token = session.fetch_token(
            issuer.token_url, grant_type="client_credentials", audience=AUDIENCE
        )

    assert token["token_type"] == "Bearer", library
    assert issuer.verify(token["access_token"])["azp"] == issuer.client_id, library


@pytest.mark.parametrize("library", [python_library("authlib")])
def test_authlib_wrong_secret_raises_invalid_client(issuer, library):
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.requests_client import OAuth2Session

    with OAuth2Session(issuer.client_id, "wrong") as session, pytest.raises(OAuthError) as raised:
        session.fetch_token(issuer.token_url, grant_type="client_credentials", audience=AUDIENCE)
    assert raised.value.error == "invalid_client", library


@pytest.mark.parametrize("library", [python_library("requests-oauthlib")])
def test_requests_oauthlib_backend_application_client(issuer, library, monkeypatch):
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2Session

    # oauthlib refuses plain http unless told this is a test.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    client = BackendApplicationClient(client_id=issuer.client_id)
    with OAuth2Session(client=client) as oauth:
        token = oauth.fetch_token(
            token_url=issuer.token_url,
            client_id=issuer.client_id,
            client_secret=issuer.client_secret,
            audience=AUDIENCE,
        )

    assert token["token_type"] == "Bearer", library
    assert token["scope"] == ["read:data"], library
    assert issuer.verify(token["access_token"])["azp"] == issuer.client_id, library


@pytest.mark.parametrize("library", [python_library("PyJWT")])
def test_pyjwt_pyjwkclient_verifies_and_refuses(issuer, other_issuer, library):
    import jwt

    token = issuer.token()
    claims = issuer.verify(token)
    assert claims["iss"] == issuer.url and claims["aud"] == AUDIENCE, library
    assert claims["scope"] == "read:data", library

    with pytest.raises(jwt.InvalidAudienceError):
        issuer.verify(issuer.token(OTHER_AUDIENCE))
    with pytest.raises(jwt.ExpiredSignatureError):
        issuer.verify(issuer.expired_token())
    with pytest.raises(jwt.PyJWKClientError):  # signed by a key this issuer never published
        issuer.verify(other_issuer.token())
