"""Hostile token requests: every parameter is checked as text before any
lookup, and the answer is a 400/401 JSON whose description encodes. Runs on
SQLite and PostgreSQL (where a NUL in a query is an error, not a miss)."""

import base64
import json

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from tests.clients.test_token_endpoint import AUD, assert_error, credentials, post_token
from tests.factories import make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db

TOKEN_URL = "/acme/oauth/token"
PARAMETERS = ["grant_type", "client_id", "client_secret", "audience", "scope", "extra"]


@pytest.fixture
def tenant():
    return make_tenant("acme")


@pytest.fixture
def client_and_secret(tenant):
    api = make_api(tenant, AUD)
    return make_client(tenant, {api: ["read:data"]})


def post_raw(body: bytes, content_type: str, **extra):
    # generic(): the bytes go out as given, whatever charset the type names.
    return HttpClient().generic("POST", TOKEN_URL, body, content_type=content_type, **extra)


def assert_safe_json_error(response, status, error):
    """The error is JSON, strictly UTF-8 encoded, with no lone surrogate in it."""
    assert_error(response, status, error)
    response.content.decode("utf-8")  # strict: a surrogate would not have encoded
    assert "\\ud8" not in response.content.decode().lower()


@pytest.mark.parametrize("name", PARAMETERS)
def test_lone_surrogate_in_json_parameter_is_invalid_request(tenant, client_and_secret, name):
    body = json.dumps(credentials(client_and_secret, **{name: "a\ud800b"}))
    assert "\\ud800" in body  # the escape reaches the server, as an attacker sends it
    assert_safe_json_error(post_raw(body.encode(), "application/json"), 400, "invalid_request")


def test_lone_surrogate_as_json_key_is_not_echoed(tenant, client_and_secret):
    body = json.dumps(credentials(client_and_secret, **{"\udfff": "x"}))
    response = post_raw(body.encode(), "application/json")
    assert_safe_json_error(response, 400, "invalid_request")
    assert response.json()["error_description"] == "A parameter name is not valid text."


def test_repeated_json_key_with_surrogate_name_is_refused_without_echo(tenant):
    body = b'{"\\ud800": "a", "\\ud800": "b"}'
    response = post_raw(body, "application/json")
    assert_safe_json_error(response, 400, "invalid_request")
    assert response.json()["error_description"] == "Parameter repeated: (unprintable)"


def test_surrogate_pair_is_ordinary_text(tenant, client_and_secret):
    # A valid pair (one astral character) is text like any other: no such API.
    body = json.dumps(credentials(client_and_secret, audience="https://\U0001f600.test/"))
    assert_error(post_raw(body.encode(), "application/json"), 403, "access_denied")


@pytest.mark.parametrize("name", ["client_id", "audience", "client_secret", "grant_type"])
def test_nul_in_json_parameter_is_invalid_request(tenant, client_and_secret, name):
    body = json.dumps(credentials(client_and_secret, **{name: "abc\u0000def"}))
    response = post_raw(body.encode(), "application/json")
    assert_safe_json_error(response, 400, "invalid_request")
    assert response.json()["error_description"] == (
        f"Parameter {name} contains a control character or invalid Unicode."
    )


@pytest.mark.parametrize("name", ["client_id", "audience", "client_secret"])
def test_nul_in_form_parameter_is_invalid_request(tenant, client_and_secret, name):
    response = post_token(tenant, credentials(client_and_secret, **{name: "abc\x00"}), form=True)
    assert_safe_json_error(response, 400, "invalid_request")


@pytest.mark.parametrize("char", ["\x01", "\n", "\x1b", "\x7f", "\x85"])
def test_control_character_in_client_id_is_invalid_request(tenant, client_and_secret, char):
    body = credentials(client_and_secret)
    body["client_id"] += char
    assert_safe_json_error(post_token(tenant, body), 400, "invalid_request")


def test_percent_escape_of_invalid_utf8_in_form_is_malformed(tenant, client_and_secret):
    response = post_raw(
        b"grant_type=client_credentials&client_id=%FF%FE&client_secret=x&audience=a",
        "application/x-www-form-urlencoded",
    )
    assert_error(response, 400, "invalid_request", "Malformed request body.")


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_raw_invalid_utf8_body_is_malformed(tenant, content_type):
    response = post_raw(b'{"client_id": "\xff\xfe\xed\xa0\x80"}', content_type)
    assert_error(response, 400, "invalid_request", "Malformed request body.")


@pytest.mark.parametrize("charset", ["rot13", "utf-16", "latin-1", "nonsense"])
def test_declared_charset_is_ignored_bodies_are_utf8(tenant, client_and_secret, charset):
    # rot13 is a str-to-str codec: following it made DRF's reader raise TypeError.
    body = json.dumps(credentials(client_and_secret, client_id="nobody")).encode()
    response = post_raw(body, f"application/json; charset={charset}")
    assert_error(response, 401, "invalid_client")


def test_client_id_longer_than_any_is_invalid_client_without_lookup(tenant, client_and_secret):
    body = credentials(client_and_secret, client_id="x" * 16_000)
    with CaptureQueriesContext(connection) as queries:
        response = post_token(tenant, body)
    assert_error(response, 401, "invalid_client", "Client authentication failed.")
    assert not [q for q in queries.captured_queries if "clients_client" in q["sql"]]


def test_client_id_at_the_stored_maximum_is_looked_up(tenant, client_and_secret):
    body = credentials(client_and_secret, client_id="x" * 255)
    with CaptureQueriesContext(connection) as queries:
        response = post_token(tenant, body)
    assert_error(response, 401, "invalid_client")
    assert [q for q in queries.captured_queries if "clients_client" in q["sql"]]


def test_client_secret_longer_than_any_is_invalid_client(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, client_secret="s" * 5_000))
    assert_error(response, 401, "invalid_client", "Client authentication failed.")


def test_audience_longer_than_any_api_identifier_is_invalid_request(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, audience="https://" + "a" * 700))
    assert_error(response, 400, "invalid_request")
    assert "a" * 700 not in response.json()["error_description"]


def test_scope_longer_than_any_scope_is_invalid_request(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, scope="read:data " + "s" * 300))
    assert_error(response, 400, "invalid_request")


def test_repeated_json_key_is_refused_like_a_repeated_form_parameter(tenant, client_and_secret):
    body = json.dumps(credentials(client_and_secret))[:-1] + ', "audience": "https://evil/"}'
    response = post_raw(body.encode(), "application/json")
    assert_error(response, 400, "invalid_request", "Parameter repeated: audience")


def test_repeated_key_in_a_nested_json_object_is_refused(tenant, client_and_secret):
    body = json.dumps(credentials(client_and_secret))[:-1] + ', "extra": {"a": 1, "a": 2}}'
    response = post_raw(body.encode(), "application/json")
    assert_error(response, 400, "invalid_request", "Parameter repeated: a")


def test_deeply_nested_json_is_malformed_not_a_crash(tenant):
    response = post_raw(b"[" * 5_000 + b"]" * 5_000, "application/json")
    assert_error(response, 400, "invalid_request", "Malformed request body.")


@pytest.mark.parametrize("length", ["abc", "-5", "1e9"])
def test_unparsable_content_length_is_not_a_5xx(tenant, client_and_secret, length):
    body = json.dumps(credentials(client_and_secret, client_id="nobody")).encode()
    response = post_raw(body, "application/json", CONTENT_LENGTH=length)
    assert response.status_code in (400, 401), response.content
    assert "error" in response.json()


def test_valid_request_still_gets_a_token(tenant, client_and_secret):
    response = post_token(tenant, credentials(client_and_secret, scope="read:data"))
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "read:data"


def test_bad_input_in_one_tenant_leaves_the_other_serving(tenant, client_and_secret):
    other = make_tenant("globex")
    other_api = make_api(other, AUD)
    other_client = make_client(other, {other_api: ["read:data"]})
    post_raw(json.dumps({"client_id": "\ud800\u0000"}).encode(), "application/json")
    response = post_token(other, credentials(other_client))
    assert response.status_code == 200, response.content


# Basic credentials are decoded in clients/tokens.py; these cases only assert the
# outcome a caller sees: a 401 JSON answer with a Basic challenge, never a 5xx.
@pytest.mark.parametrize(
    "raw",
    [
        b"abc\x00def:secret",  # NUL in the client_id (PostgreSQL refuses it in a query)
        b"\xff\xfe\xfa:secret",  # not UTF-8
        b"\xed\xa0\x80:secret",  # a UTF-8-encoded surrogate
        b"abc%00:secret",  # NUL once the form-encoding is undone
        b"x" * 5_000 + b":secret",  # longer than any client_id
    ],
)
def test_hostile_basic_credentials_are_invalid_client(tenant, client_and_secret, raw):
    body = {"grant_type": "client_credentials", "audience": AUD}
    header = "Basic " + base64.b64encode(raw).decode()
    response = post_token(tenant, body, HTTP_AUTHORIZATION=header)
    assert_safe_json_error(response, 401, "invalid_client")


@pytest.mark.parametrize("credentials", ["\xc2\x80", "YWJj\xff", "\x00", "YWJjOmRlZg==\x00"])
def test_basic_header_that_is_not_base64_ascii_is_invalid_client(tenant, credentials):
    # Header bytes reach Django as latin-1 text: base64 of it must not crash.
    body = {"grant_type": "client_credentials", "audience": AUD}
    response = post_token(tenant, body, HTTP_AUTHORIZATION="Basic " + credentials)
    assert_safe_json_error(response, 401, "invalid_client")


@pytest.mark.parametrize("accept", ["text/html", "evil.example", "application/xml;q=1", "*/*;q=x"])
def test_any_accept_header_gets_the_json_answer(tenant, client_and_secret, accept):
    response = post_token(tenant, credentials(client_and_secret), HTTP_ACCEPT=accept)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
