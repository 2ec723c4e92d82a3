"""Issuers, /api/v2 and token endpoints answer JSON for every error status,
whoever produces it; the dashboard keeps its HTML pages."""

import io
import json
import socket

import pytest
from django.test import Client as HttpClient

from tenant import views
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    return make_tenant("acme")


def browser() -> HttpClient:
    # CSRF checks on, as for a real caller (the test client skips them by default).
    return HttpClient(enforce_csrf_checks=True, raise_request_exception=False)


def assert_json_error(response, status, error=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_description"}
    if error is not None:
        assert body["error"] == error
    assert b"Traceback" not in response.content
    return body


@pytest.mark.parametrize(
    "path",
    [
        "/acme/oauth/token/",
        "/acme/oauth//token",
        "/acme/oauth/token%00",
        "/acme/../oauth/token",
        "/acme/.well-known/jwks.json",
        "/acme/anything/else",
        "/nobody/oauth/token/",
    ],
)
def test_post_to_a_non_endpoint_under_an_issuer_is_json_not_csrf(tenant, path):
    response = browser().post(
        path, "grant_type=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code in (404, 405)
    assert_json_error(response, response.status_code)
    assert "CSRF" not in response.content.decode()


@pytest.mark.parametrize("path", ["/acme/oauth/token/", "/%ff/oauth/token", "/admin/x/oauth/token"])
def test_every_answer_on_a_token_path_is_no_store(tenant, path):
    response = browser().post(path, "{}", content_type="application/json")
    assert response["Cache-Control"] == "no-store"


def test_path_ending_in_oauth_token_outside_any_issuer_is_json_404():
    assert_json_error(browser().post("/!/oauth/token", {}), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/v2", "/api/v2/", "/api/v2/clients", "/api/v2/x/y%00"])
def test_management_api_paths_answer_json(path):
    assert_json_error(browser().post(path, "{}", content_type="application/json"), 404)


def test_wrong_method_on_an_issuer_document_is_json_405_with_allow(tenant):
    response = browser().put("/acme/.well-known/jwks.json")
    assert_json_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET"


def test_host_outside_allowed_hosts_is_json_400_on_the_token_endpoint(tenant):
    response = browser().post("/acme/oauth/token", {}, HTTP_HOST="evil.example")
    assert_json_error(response, 400, "invalid_request")
    assert response["Cache-Control"] == "no-store"


def test_host_outside_allowed_hosts_keeps_html_on_the_dashboard():
    response = browser().get("/admin/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


def test_dashboard_404_keeps_html(admin_client):
    response = admin_client.get("/admin/no/such/page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_body_over_the_token_limit_is_json_413(tenant, settings):
    body = json.dumps({"padding": "x" * (settings.TESSERA_TOKEN_MAX_BODY_BYTES + 1)})
    response = browser().post("/acme/oauth/token", body, content_type="application/json")
    assert_json_error(response, 413)
    assert response["Cache-Control"] == "no-store"


def test_oversized_headers_are_json_431(tenant, settings):
    response = browser().post(
        "/acme/oauth/token", {}, HTTP_X_PADDING="x" * (settings.TESSERA_MAX_HEADER_BYTES + 1)
    )
    assert_json_error(response, 431)


def test_unexpected_error_under_an_issuer_is_json_500_even_in_debug(tenant, settings, monkeypatch):
    settings.DEBUG = True  # Django's debug page would show the stack trace

    def broken(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(views, "tenant_jwks", broken)
    response = browser().get("/acme/.well-known/jwks.json")
    body = assert_json_error(response, 500, "server_error")
    assert "secret internals" not in json.dumps(body)


def test_options_on_the_token_endpoint_is_allow_only(tenant):
    response = browser().options("/acme/oauth/token")
    assert response.status_code == 204
    assert response["Allow"] == "POST, OPTIONS"
    assert response["Cache-Control"] == "no-store"
    assert response.content == b""


def test_tenant_domain_answers_json_outside_its_dashboard(settings):
    settings.ALLOWED_HOSTS = ["auth.acme.test"]
    make_tenant("domained", domain="auth.acme.test")
    http = HttpClient(enforce_csrf_checks=True, HTTP_HOST="auth.acme.test")
    assert_json_error(http.post("/oauth/token/", {}), 404, "not_found")
    assert_json_error(http.post("/nowhere", {}), 404, "not_found")
    login = http.get("/admin/login/")
    assert login.status_code == 200
    assert login["Content-Type"].startswith("text/html")


def raw_http(live_server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client normalises the path or the headers)."""
    host, port = live_server.thread.host, live_server.thread.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("request_line", "host", "status"),
    [
        ("POST /acme/../oauth/token HTTP/1.1", "127.0.0.1", 404),
        ("POST /acme/oauth/token%00 HTTP/1.1", "127.0.0.1", 404),
        ("POST /acme/oauth/token/ HTTP/1.1", "127.0.0.1", 404),
        ("POST /acme/oauth/token HTTP/1.1", "evil.example", 400),
        ("DELETE /acme/oauth/token HTTP/1.1", "127.0.0.1", 405),
    ],
)
def test_over_real_http_errors_are_json(live_server, request_line, host, status):
    make_tenant("acme")
    raw = f"{request_line}\r\nHost: {host}\r\nContent-Length: 2\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{{}}"
    code, headers, body = raw_http(live_server, raw.encode())
    assert code == status
    assert headers["content-type"] == "application/json"
    assert "error" in json.loads(body)


@pytest.mark.django_db(transaction=True)
def test_over_real_http_oversized_headers_are_json_431(live_server, settings):
    make_tenant("acme")
    padding = "x" * (settings.TESSERA_MAX_HEADER_BYTES + 1)
    raw = f"POST /acme/oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {padding}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    code, _, body = raw_http(live_server, raw.encode())
    assert code == 431
    assert json.loads(body)["error"] == "invalid_request"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("charset", ["rot13", "base64", "hex", "zlib"])
def test_wsgi_entry_point_survives_a_charset_that_is_no_text_encoding(charset):
    # Django builds the request with the charset; with a query string that
    # raised LookupError before any middleware ran (a bare 500 from the server).
    from tenant.site.wsgi import application

    make_tenant("acme")
    body = b'{"grant_type": "client_credentials", "client_id": "x", "client_secret": "y", "audience": "a"}'
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/acme/oauth/token",
        "QUERY_STRING": "x=1",
        "CONTENT_TYPE": f"application/json; charset={charset}",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks = application(environ, lambda status, headers, *_: started.append((status, headers)))
    content = b"".join(chunks)
    status, headers = started[0]
    assert status.startswith("401"), content
    assert ("Content-Type", "application/json") in headers
    assert json.loads(content)["error"] == "invalid_client"
