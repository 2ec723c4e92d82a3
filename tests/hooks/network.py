"""Local upstreams for hooks that call out, and a tenant whose hook the tests
drive through the real token endpoint (tests/hooks/conftest.py makes the
upstreams fixtures)."""

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from django.test import Client as HttpClient

from hooks.models import HookRun
from hooks.services import hook_create
from tenant.audit import Actor
from tests.factories import make_api, make_client, make_tenant

LOOPBACK = "127.0.0.1:*"
RELEASE = threading.Event()  # set at teardown: lets hanging handlers go


class Upstream(BaseHTTPRequestHandler):
    """The hooks' partner API, on loopback."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()

    def _route(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        path = self.path.split("?")[0]
        if path == "/tier":
            self._json(200, {"tier": "gold", "host": self.headers["Host"]})
        elif path in ("/echo", "/echo-then-drop"):
            self._json(
                200,
                {
                    "method": self.command,
                    "body": body,
                    "port": self.client_address[1],  # which connection
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                },
            )
            # As an upstream's idle timeout does: kept-alive, then closed unsaid.
            self.close_connection = path == "/echo-then-drop"
        elif path == "/bad-header":  # a header name no HTTP client accepts
            self._json(200, {"tier": "gold"}, {"Tier Level": "gold"})
        elif path == "/to-metadata":
            self._json(302, {}, {"Location": "http://169.254.169.254/latest/meta-data/"})
        elif path == "/to-tier":
            self._json(302, {}, {"Location": "/tier"})
        elif path == "/huge":  # 100 MB, streamed
            self.send_response(200)
            self.send_header("Content-Length", str(100 * 2**20))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(1600):
                    self.wfile.write(chunk)
            except OSError:
                pass
        elif path == "/endless":  # headers, then a byte now and then, forever
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                while not RELEASE.wait(0.05):
                    self.wfile.write(b"x")
                    self.wfile.flush()
            except OSError:
                pass
        elif path == "/hang":  # never answers
            RELEASE.wait(30)
        else:
            self._json(404, {"error": "not found"})


def serve(context: ssl.SSLContext | None = None) -> Iterator[str]:
    RELEASE.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if context else "http"
    yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    RELEASE.set()
    server.shutdown()
    server.server_close()


class World:
    """A tenant with an API, a client and an enabled hook."""

    def __init__(
        self,
        slug: str,
        script: str,
        timeout_ms: int = 3000,
        dependencies: dict[str, str] | None = None,
    ) -> None:
        self.tenant = make_tenant(slug)
        self.tenant.hook_timeout_ms = timeout_ms
        self.tenant.hook_cpu_ms = timeout_ms  # building 10,000 requests takes CPU
        self.tenant.save()
        self.audience = f"https://api.{slug}.test/"
        api = make_api(self.tenant, self.audience, scopes=["read"])
        self.client, self.secret = make_client(self.tenant, {api: ["read"]})
        self.hook = hook_create(
            tenant=self.tenant,
            name="hook",
            script=script,
            enabled=True,
            dependencies=dependencies,
            actor=Actor.cli(),
        )

    def token(self):
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client.client_id,
            "client_secret": self.secret,
            "audience": self.audience,
        }
        return HttpClient().post(
            f"/{self.tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
        )

    def claims(self) -> dict:
        response = self.token()
        assert response.status_code == 200, response.content
        return jwt.decode(response.json()["access_token"], options={"verify_signature": False})

    def last_run(self) -> HookRun:
        return HookRun.objects.filter(tenant=self.tenant).latest("started_at")


def action(body: str) -> str:
    return f"exports.onExecuteCredentialsExchange = async (event, api) => {{\n{body}\n}};"
