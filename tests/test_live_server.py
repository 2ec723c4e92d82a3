"""Over real HTTP: what an API owner does with any JOSE library."""

import json
import urllib.request

import jwt
import pytest

from tests.factories import make_api, make_client, make_tenant


@pytest.mark.django_db(transaction=True)
def test_token_verifies_through_pyjwkclient_on_the_jwks_url(live_server, settings):
    settings.PUBLIC_URL = live_server.url
    tenant = make_tenant("live")
    api = make_api(tenant, "https://api.live.test/")
    client, secret = make_client(tenant, {api: ["read:data"]})
    body = json.dumps(
        {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": secret,
            "audience": "https://api.live.test/",
        }
    ).encode()
    request = urllib.request.Request(
        f"{tenant.issuer}oauth/token", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        token = json.load(response)["access_token"]

    signing_key = jwt.PyJWKClient(f"{tenant.issuer}.well-known/jwks.json").get_signing_key_from_jwt(
        token
    )
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience="https://api.live.test/",
        issuer=f"{live_server.url}/live/",
    )
    assert claims["sub"] == f"{client.client_id}@clients"
    assert claims["scope"] == "read:data"
