"""Malformed HTTP Basic over a real socket: header bytes no test client sends."""

import base64
import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.factories import make_api, make_client, make_tenant

AUD = "https://api.example.test/"

RAW_HEADERS = {
    "latin-1 bytes in the header": b"Basic \xff\xfe\xfd",
    "UTF-8 bytes in the header": "Basic ключ".encode(),
    "non-UTF-8 credentials": b"Basic " + base64.b64encode(b"\xff\xfe:\xc3\x28"),
    "NUL in credentials": b"Basic " + base64.b64encode(b"id\x00:secret"),
    "lower-case scheme, junk": b"basic \x80\x81",
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("header", RAW_HEADERS.values(), ids=RAW_HEADERS.keys())
def test_malformed_basic_bytes_are_json_401_not_500(live_server, header):
    tenant = make_tenant("wire")
    make_client(tenant, {make_api(tenant, AUD): []})
    url = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    body = json.dumps({"grant_type": "client_credentials", "audience": AUD})
    connection.putrequest("POST", "/wire/oauth/token")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(len(body)))
    connection.putheader("Authorization", header)
    connection.endheaders(body.encode())
    response = connection.getresponse()

    assert response.status == 401
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("WWW-Authenticate", "").startswith("Basic")
    assert json.loads(response.read())["error"] == "invalid_client"
    connection.close()
