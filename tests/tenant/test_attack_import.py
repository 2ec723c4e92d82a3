"""The auth0 import under attack: a hostile source Management API (endless
pages, a gigantic or never-ending body, a slow drip, non-JSON, wrong types,
control characters), hostile uploads (a corrupt zip, traversal, a YAML bomb
and Python tags) and the dashboard page pointed at the servers' own network
(loopback, link-local, IPv4-mapped IPv6, a redirect to loopback, a name that
resolves to a public and a loopback address). Each ends in one clear line,
nothing written, no secret repeated; two tenants side by side."""

import datetime
import io
import json
import socket
import ssl
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError
from django.test import Client as HttpClient
from django.urls import reverse
from django.views.debug import SafeExceptionReporterFilter

from hooks.models import Action
from tenant.models import AuditEntry
from tenant.site.auth0_import.export import ImportRefused
from tenant.site.auth0_import.management_api import MAX_PAGES, ManagementApiClient
from tests.dashboard.conftest import TenantWorld, make_world
from tests.tenant.test_auth0_import import client_body, run, snapshot

pytestmark = pytest.mark.django_db

SOURCE_SECRET = "hostile-source-client-secret-0123456789"


class Hostile(BaseHTTPRequestHandler):
    """A Management API that answers as ``state["mode"]`` says."""

    state: dict[str, Any]

    def log_message(self, *args: Any) -> None:
        pass

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.state["hits"].append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.state["mode"] == "redirect":
            self.reply(302, {}, {"Location": self.state["location"]})
            return
        self.reply(200, {"access_token": "t", "token_type": "Bearer"})

    def do_GET(self) -> None:
        self.state["hits"].append(self.path)
        mode, path = self.state["mode"], self.path.partition("?")[0]
        if mode == "endless" and path.endswith("/resource-servers"):
            system = {"is_system": True, "identifier": "https://system/"}
            self.reply(200, {"resource_servers": [system] * 100})
        elif mode == "checkpoints" and path.endswith("/client-grants"):
            grant = {"client_id": "c", "audience": "https://a/", "scope": []}
            self.reply(200, {"client_grants": [grant], "next": "again"})
        elif mode in ("huge", "drip") and path.endswith("/resource-servers"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()  # no length: the body ends when the server closes
            for _ in range(100_000):
                self.wfile.write(b" " * (64 * 1024 if mode == "huge" else 1))
                self.wfile.flush()
                if mode == "drip":
                    time.sleep(0.2)
        elif mode == "html":
            self.reply(200, b"<html>Hello</html>")
        elif mode == "actions" and path.endswith("/actions/actions"):
            self.reply(200, {"actions": self.state["actions"], "total": 1})
        elif mode == "clients" and path.endswith("/clients"):
            self.reply(200, {"clients": self.state["clients"], "total": 1})
        else:
            empty: list[Any] = []
            self.reply(
                200,
                {"total": 0, "resource_servers": empty, "clients": empty, "bindings": empty},
            )


@pytest.fixture
def hostile() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"mode": "", "hits": []}
    handler = type("Handler", (Hostile,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tenants() -> tuple[TenantWorld, TenantWorld]:
    return make_world("alpha"), make_world("bravo")


def import_from(url: str, only: str = "resource_servers") -> str:
    return run(
        "-p", "alpha", "--from", url, "--client-id", "importer", "--client-secret", SOURCE_SECRET,
        "--only", only,
    )  # fmt: skip


# --- a hostile source ------------------------------------------------------


def test_a_source_that_answers_pages_forever_is_cut_off_with_one_line(tenants, hostile):
    url, state = hostile
    state["mode"] = "endless"
    before = snapshot()
    with pytest.raises(CommandError, match="kept answering pages of /api/v2/resource-servers"):
        import_from(url)
    assert len(state["hits"]) <= MAX_PAGES + 1
    assert snapshot() == before


def test_a_source_whose_checkpoint_never_ends_is_cut_off(tenants, hostile):
    url, state = hostile
    state["mode"] = "checkpoints"
    before = snapshot()
    with pytest.raises(CommandError, match="kept answering pages of /api/v2/client-grants"):
        import_from(url, "client_grants")
    assert snapshot() == before


def test_a_gigantic_body_is_refused_without_being_read_whole(tenants, hostile):
    url, state = hostile
    state["mode"] = "huge"
    before = snapshot()
    with pytest.raises(CommandError, match=r"answered GET /api/v2/resource-servers with more than"):
        import_from(url)
    assert snapshot() == before


def test_a_body_that_drips_is_given_up_on_at_the_deadline(hostile):
    url, state = hostile
    state["mode"] = "drip"
    client = ManagementApiClient(url, answer_s=1.0)
    started = time.monotonic()
    with pytest.raises(ImportRefused, match=r"took longer than 1 s to answer GET"):
        client.read("resource-servers")
    assert time.monotonic() - started < 5


def test_a_source_that_answers_html_is_one_line(tenants, hostile):
    url, state = hostile
    state["mode"] = "html"
    with pytest.raises(CommandError) as raised:
        import_from(url)
    assert "\n" not in str(raised.value) and SOURCE_SECRET not in str(raised.value)


@pytest.mark.parametrize(
    "override",
    [
        {"client_id": 5},
        {"client_id": ["a"]},
        {"name": {"x": 1}},
        {"client_metadata": "plan"},
        {"client_metadata": {"plan": 3}},
        {"token_endpoint_auth_method": ["x"]},
        {"description": 7},
        {"client_id": "evil\n\x00id"},
        {"client_id": "evil\r\nid"},
        {"name": "lone \ud800 surrogate"},
        {"client_metadata": {"plan": "gold\x00"}},
        {"client_metadata": {"pl\x00an": "gold"}},
        {"client_id": "a" * 10_000},
        {"name": "n" * 100_000},
    ],
)
def test_wrong_types_and_control_characters_in_a_client_are_one_line(tenants, hostile, override):
    url, state = hostile
    state["mode"] = "clients"
    state["clients"] = [{**client_body(1), **override}]
    before = snapshot()
    with pytest.raises(CommandError) as raised:
        import_from(url, "clients")
    message = str(raised.value)
    assert "\n" not in message and len(message) < 2000, message[:500]
    assert client_body(1)["client_secret"] not in message
    assert snapshot() == before


@pytest.mark.parametrize(
    "dependencies",
    [
        [{"name": "n" * 100_000, "version": "1.0.0"}],
        [{"name": "lodash", "version": "9" * 1_000_000}],
        [{"name": "lodash", "version": "1.0.0", "registry_url": "r" * 100_000}],
        [{"name": "lodash\x00", "version": "1.0.0"}],
        [{"name": "lodash", "version": {"x": 1}}],
    ],
)
def test_an_actions_oversized_or_odd_dependency_is_refused(tenants, hostile, dependencies):
    url, state = hostile
    state["mode"] = "actions"
    state["actions"] = [
        {
            "id": "act_1",
            "name": "tier",
            "code": "exports.onExecuteCredentialsExchange = async () => {};",
            "runtime": "node22",
            "dependencies": dependencies,
            "secrets": [],
            "supported_triggers": [{"id": "credentials-exchange", "version": "v2"}],
        }
    ]
    before = snapshot()
    with pytest.raises(CommandError) as raised:
        import_from(url, "actions")
    assert "dependenc" in str(raised.value) and len(str(raised.value)) < 2000
    assert snapshot() == before


def test_a_client_id_of_another_tenant_is_refused(tenants, hostile):
    url, state = hostile
    _, world_b = tenants
    state["mode"] = "clients"
    state["clients"] = [client_body(1, client_id=world_b.client.client_id)]
    before = snapshot()
    with pytest.raises(CommandError, match=world_b.client.client_id):
        import_from(url, "clients")
    assert snapshot() == before


# --- the dashboard page: the servers' own network ---------------------------


def post_source(world: TenantWorld, source: str) -> str:
    http = HttpClient()
    http.force_login(world.admin)
    response = http.post(
        reverse("admin:tenant_import", args=[world.tenant.slug]),
        {
            "source_url": source,
            "client_id": "importer",
            "client_secret": SOURCE_SECRET,
            "only": ["resource_servers"],
            "dry_run": "Dry run",
        },
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize(
    "source",
    [
        "http://127.0.0.1:{port}",
        "http://localhost:{port}",
        "http://[::ffff:127.0.0.1]:{port}",
        "http://[::1]:{port}",
        "http://0.0.0.0:{port}",
        "http://2130706433:{port}",
        "http://0x7f.1:{port}",
        "http://169.254.169.254",
        "http://user:pass@127.0.0.1:{port}",
    ],
)
def test_the_page_cannot_reach_the_servers_own_network(tenants, hostile, source):
    url, state = hostile
    port = url.rsplit(":", 1)[1]
    text = post_source(tenants[0], source.format(port=port))
    assert "cannot be reached from here" in text
    assert state["hits"] == []
    assert SOURCE_SECRET not in text.replace(f'value="{SOURCE_SECRET}"', "")


def test_a_url_parsed_two_ways_never_reaches_loopback(tenants, hostile):
    """``\\`` ends the host for the check (WHATWG) and for the client alike:
    8.8.8.8 is what is checked and what is dialled, never 127.0.0.1."""
    url, state = hostile
    port = url.rsplit(":", 1)[1]
    text = post_source(tenants[0], f"http://8.8.8.8\\@127.0.0.1:{port}")
    assert "Cannot reach the source" in text or "refused" in text
    assert state["hits"] == []


def test_a_redirect_to_loopback_is_not_followed(tenants, hostile, settings):
    url, state = hostile
    # The operator lets this one source through; it redirects to another port.
    settings.TESSERA_EGRESS_ALLOW = url.removeprefix("http://")
    state["mode"] = "redirect"
    state["location"] = "http://127.0.0.1:9/oauth/token"
    text = post_source(tenants[0], url)
    assert "refused the client credentials (302" in text
    assert state["hits"] == ["/oauth/token"]


def test_a_name_that_also_resolves_to_loopback_never_reaches_it(
    tenants, hostile, settings, monkeypatch
):
    """A hostile DNS answer (public and loopback, loopback first) is what an
    attacker's own domain gives: the import connects only to the address that
    was checked. There is no DNS server here to give it, so the resolver
    answers for that one name."""
    url, state = hostile
    port = int(url.rsplit(":", 1)[1])
    settings.TESSERA_EGRESS_ALLOW = f"192.0.2.10:{port}"  # the "public" address
    real = socket.getaddrinfo

    def two_faced(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "two-faced.example":
            stream = (socket.AF_INET, socket.SOCK_STREAM, 6, "")
            return [(*stream, ("127.0.0.1", port)), (*stream, ("192.0.2.10", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_faced)
    before = snapshot()
    text = post_source(tenants[0], f"http://two-faced.example:{port}")
    assert state["hits"] == []
    assert "Cannot reach the source" in text
    assert snapshot() == before


# --- hostile uploads ---------------------------------------------------------


def post_upload(world: TenantWorld, name: str, data: bytes) -> tuple[int, str]:
    http = HttpClient()
    http.force_login(world.admin)
    response = http.post(
        reverse("admin:tenant_import", args=[world.tenant.slug]),
        {
            "export": SimpleUploadedFile(name, data),
            "only": ["resource_servers", "clients", "client_grants", "hooks", "actions"],
            "import": "Import",
        },
    )
    return response.status_code, response.content.decode()


def a_zip(entries: dict[str, bytes], *, lie_about_size: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    raw = buffer.getvalue()
    if lie_about_size:
        # Every header says the member is 1 byte long; it inflates to 50 MB.
        return raw.replace((50 * 1024 * 1024).to_bytes(4, "little"), (1).to_bytes(4, "little"))
    return raw


def test_a_zip_that_lies_about_its_size_is_one_line(tenants):
    before = snapshot()
    bomb = a_zip({"export/clients/a.json": b" " * (50 * 1024 * 1024)}, lie_about_size=True)
    status, text = post_upload(tenants[0], "export.zip", bomb)
    assert status == 200 and "Malformed export" in text
    assert snapshot() == before


def test_a_corrupt_zip_is_one_line(tenants):
    good = a_zip({"export/clients/a.json": json.dumps(client_body(1)).encode() * 50})
    corrupt = good[:200] + bytes(b ^ 0xFF for b in good[200:400]) + good[400:]
    before = snapshot()
    status, text = post_upload(tenants[0], "export.zip", corrupt)
    assert status == 200 and "Malformed export" in text
    assert snapshot() == before


def test_a_zip_in_a_compression_method_python_cannot_inflate_is_one_line(tenants):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("export/clients/a.json", json.dumps(client_body(1)))
    raw = bytearray(buffer.getvalue())
    # Method 99 (WinZip AES) in the member's local and central headers.
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = raw.index(signature) + offset
        raw[at : at + 2] = (99).to_bytes(2, "little")
    before = snapshot()
    status, text = post_upload(tenants[0], "export.zip", bytes(raw))
    assert status == 200 and "Malformed export: the zip cannot be unpacked" in text
    assert snapshot() == before


@pytest.mark.parametrize("name", ["../../evil.json", "/etc/evil.json", "export/../../evil.json"])
def test_a_zip_member_out_of_the_archive_is_refused(tenants, name):
    before = snapshot()
    status, text = post_upload(tenants[0], "export.zip", a_zip({name: b"{}"}))
    assert status == 200 and "leaves the archive" in text
    assert snapshot() == before


def test_a_yaml_bomb_and_python_tags_are_refused_without_running_anything(tenants):
    laughs = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        previous = f"*a{level - 1}"
        laughs.append(f"a{level}: &a{level} [{', '.join([previous] * 9)}]")
    bomb = "\n".join([*laughs, "clients: *a9", "resourceServers: *a9"]).encode()
    before = snapshot()
    status, text = post_upload(tenants[0], "tenant.yaml", bomb)
    assert status == 200 and "resourceServers[0] must be an object" in text
    tag = b"clients: !!python/object/apply:os.system ['touch /tmp/tessera-pwned']\n"
    status, text = post_upload(tenants[0], "tenant.yaml", tag)
    assert status == 200 and "Malformed export" in text
    assert snapshot() == before


def test_no_secret_value_reaches_the_audit_rows_of_an_import(tenants, tmp_path):
    from tests.tenant.test_auth0_import import secrets_files, write_export

    export = write_export(tmp_path / "export")
    run("-p", "alpha", "--from-dir", str(export), *secrets_files(tmp_path))
    rows = json.dumps(list(AuditEntry.objects.values()), default=str)
    for value in ("pepper", "tier-1", client_body(1)["client_secret"]):
        assert value not in rows


def test_secrets_posted_to_the_page_are_hidden_from_error_reports(tenants):
    http = HttpClient()
    http.force_login(tenants[0].admin)
    response = http.post(
        reverse("admin:tenant_import", args=[tenants[0].tenant.slug]),
        {
            "source_url": "http://127.0.0.1:9",
            "client_id": "importer",
            "client_secret": SOURCE_SECRET,
            "action_secrets": '{"tier": {"TIER": "t1-secret"}}',
            "only": ["actions"],
        },
    )
    shown = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert SOURCE_SECRET not in str(shown) and "t1-secret" not in str(shown)


def test_a_symlink_in_a_zip_is_a_file_of_its_target_s_name_not_the_target(tenants):
    """zipfile writes a symlink entry as a small file holding the link's
    target: an Action whose code is that entry gets the path's text (which
    does not build), never /etc/passwd's content."""
    action = {
        "name": "leak",
        "code": "./actions/leak/code.js",
        "runtime": "node22",
        "dependencies": [],
        "secrets": [],
        "supported_triggers": [{"id": "credentials-exchange", "version": "v2"}],
        "deployed": False,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("export/actions/leak.json", json.dumps(action))
        link = zipfile.ZipInfo("export/actions/leak/code.js")
        link.external_attr = (0o120777 << 16) | 0x20  # a symlink, as zip -y stores one
        link.create_system = 3
        archive.writestr(link, "/etc/passwd")
    status, text = post_upload(tenants[0], "export.zip", buffer.getvalue())
    assert status == 200
    assert "root:x:0:0" not in text
    for stored in Action.objects.filter(tenant=tenants[0].tenant):
        assert "root:" not in stored.code


@pytest.mark.parametrize("name", ["../tenant.yaml", "a/../../tenant.yaml", "..\\tenant.yaml"])
def test_an_upload_named_to_leave_the_folder_is_one_line(tenants, name):
    status, text = post_upload(tenants[0], name, b"clients: []\n")
    assert status in (200, 400)
    assert "Traceback" not in text and "Server Error" not in text


def certificate_for(name: str, folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA file, and a server context whose certificate is for ``name``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Attack test CA")])

    def signed(subject: x509.Name, public_key: Any, *extensions: tuple[Any, bool]) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(ca_key, hashes.SHA256())

    ca = signed(
        ca_name, ca_key.public_key(), (x509.BasicConstraints(ca=True, path_length=None), True)
    )
    cert = signed(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
        key.public_key(),
        (x509.SubjectAlternativeName([x509.DNSName(name)]), False),
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return folder / "ca.pem", context


@pytest.mark.parametrize(
    ("certified", "reached"), [("source.example", True), ("other.example", False)]
)
def test_a_pinned_tls_source_is_verified_for_its_name(
    tenants, settings, monkeypatch, tmp_path, certified, reached
):
    """Connecting to the checked address keeps TLS checking the name the
    administrator typed: its certificate is accepted, another name's is not."""
    ca_file, context = certificate_for(certified, tmp_path)
    state: dict[str, Any] = {"mode": "", "hits": []}
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (Hostile,), {"state": state}))
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    settings.TESSERA_EGRESS_ALLOW = f"127.0.0.1:{port}"
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "source.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    try:
        text = post_source(tenants[0], f"https://source.example:{port}")
    finally:
        server.shutdown()
        server.server_close()
    assert ("Plan (dry run" in text) is reached, text[-3000:]
    assert ("Cannot reach the source" in text) is not reached
