"""The compatibility suite: real, pinned third-party clients used as their own
docs show, against a live Tessera over real HTTP.

Each row's test id names the library and its version. A library that is not
installed fails its row (the suite never skips one): Python clients come from
pyproject's dev extras, node ones from ``npm ci`` in this directory (``make
test`` runs it).
"""

import datetime
import gc
import ipaddress
import json
import os
import re
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hooks.runtime.egress import close_idle_connections
from tenant.models import Tenant
from tenant.selectors import signing_key_active
from tests.factories import make_api, make_client, make_tenant
from tests.fleet.test_fleet import Fleet, Server, wait_for

COMPAT_DIR = Path(__file__).parent
AUDIENCE = "https://api.compat.test/"
OTHER_AUDIENCE = "https://other.compat.test/"
NODE_TIMEOUT = 60  # seconds: a node process that runs longer has hung
# Every library a row runs; README's "Works with" table lists exactly these.
PYTHON_LIBRARIES = ("auth0-python", "authlib", "requests-oauthlib", "PyJWT")
NODE_LIBRARIES = (
    "openid-client",
    "jose",
    "express-oauth2-jwt-bearer",
    "auth0-deploy-cli",
    "auth0",
)


def python_library(distribution: str) -> str:
    """``name version`` of an installed distribution, for a row's test id."""
    assert distribution in PYTHON_LIBRARIES, f"add {distribution} to PYTHON_LIBRARIES and README"
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return f"{distribution} (not installed)"


def pinned_node_version(package: str) -> str:
    return json.loads((COMPAT_DIR / "package.json").read_text())["dependencies"][package]


def node_library(package: str) -> str:
    """``name version`` as pinned in package.json, for a row's test id."""
    assert package in NODE_LIBRARIES, f"add {package} to NODE_LIBRARIES and README"
    return f"{package} {pinned_node_version(package)}"


def require_node_library(package: str) -> None:
    """Fail (never skip) when the pinned node package is not installed."""
    assert shutil.which("node"), "node is not installed: the compatibility suite needs it"
    installed = COMPAT_DIR / "node_modules" / package / "package.json"
    assert installed.exists(), f"{package} is missing: run `npm ci` in tests/compat"
    version = json.loads(installed.read_text())["version"]
    assert version == pinned_node_version(package), (
        f"{package} {version} is installed, package.json pins another: run `npm ci`"
    )


def node_command(script: str, payload: dict[str, Any]) -> list[str]:
    """The command running one of this directory's scripts on a JSON argument."""
    node = shutil.which("node")
    assert node, "node is not installed: the compatibility suite needs it"
    return [node, script, json.dumps(payload)]


def run_node(
    script: str, payload: dict[str, Any], env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one of this directory's scripts; it prints one JSON object."""
    done = subprocess.run(
        node_command(script, payload),
        cwd=COMPAT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


@dataclass(frozen=True)
class Issuer:
    """A live tenant with a client granted ``read:data`` on AUDIENCE and
    OTHER_AUDIENCE."""

    tenant: Tenant
    client_id: str
    client_secret: str

    @property
    def url(self) -> str:
        return self.tenant.issuer

    @property
    def token_url(self) -> str:
        return f"{self.url}oauth/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}.well-known/jwks.json"

    def token(self, audience: str = AUDIENCE) -> str:
        """A token fetched over plain HTTP, for rows that only verify one."""
        response = requests.post(
            self.token_url,
            json={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "audience": audience,
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def expired_token(self) -> str:
        """A token this tenant really signed, whose ``exp`` has passed."""
        claims = jwt.decode(self.token(), options={"verify_signature": False})
        now = int(time.time())
        claims.update(iat=now - 3600, exp=now - 600)
        key = signing_key_active(tenant=self.tenant)
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    def verify(self, token: str, audience: str = AUDIENCE) -> dict[str, Any]:
        """The claims, checked the way the README tells an API to check them."""
        signing_key = jwt.PyJWKClient(self.jwks_url).get_signing_key_from_jwt(token)
        return jwt.decode(
            token, signing_key.key, algorithms=["RS256"], audience=audience, issuer=self.url
        )


def make_issuer(slug: str) -> Issuer:
    tenant = make_tenant(slug)
    client, secret = make_client(
        tenant, {make_api(tenant, AUDIENCE): ["read:data"], make_api(tenant, OTHER_AUDIENCE): []}
    )
    return Issuer(tenant=tenant, client_id=client.client_id, client_secret=secret)


@pytest.fixture
def tessera(live_server, settings, transactional_db) -> Iterator[str]:
    """The live server's base URL; issuers follow it."""
    settings.PUBLIC_URL = live_server.url
    yield live_server.url
    # A request thread closes its database connection once the client hangs
    # up. A client's socket can outlive its test in a reference cycle (an
    # exception's traceback holding the response): collect it, then wait for
    # those threads, or the test database cannot be dropped.
    # At most 5 s in all: a keep-alive connection some client still holds
    # keeps its thread waiting, and would cost 5 s per test each (hooks'
    # fetch keeps its connections: closed here).
    close_idle_connections()
    gc.collect()
    deadline = time.monotonic() + 5
    for thread in threading.enumerate():
        if "process_request_thread" in thread.name:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


@pytest.fixture
def issuer(tessera) -> Issuer:
    return make_issuer("compat-a")


@pytest.fixture
def other_issuer(tessera) -> Issuer:
    """A second tenant with the same API identifier and its own client."""
    return make_issuer("compat-b")


@pytest.fixture
def express_api(issuer) -> Iterator[str]:
    """An Express API for AUDIENCE protected by express-oauth2-jwt-bearer
    against ``issuer``; yields its base URL."""
    require_node_library("express")
    require_node_library("express-oauth2-jwt-bearer")
    process = subprocess.Popen(
        node_command("express_api.mjs", {"issuerBaseURL": issuer.url, "audience": AUDIENCE}),
        cwd=COMPAT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], NODE_TIMEOUT)
        assert ready, "express_api.mjs did not start listening"
        line = process.stdout.readline()
        assert line, f"express_api.mjs exited: {process.stderr.read() if process.stderr else ''}"
        yield f"http://127.0.0.1:{json.loads(line)['port']}"
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- Tessera over TLS, for the tools that only speak HTTPS -------------------
# auth0-deploy-cli and node-auth0 build ``https://{AUTH0_DOMAIN}/api/v2``: a
# granian server (the README's flags) on a database of its own serves TLS
# with a certificate made here, which node trusts through NODE_EXTRA_CA_CERTS.


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed for 127.0.0.1 and localhost;
    returns (CA certificate, server certificate, server key) as PEM files."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, key, signer, ca: bool):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            usage = x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            )  # fmt: skip
            builder = builder.add_extension(usage, critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("Tessera test CA", None, ca_key, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = build("127.0.0.1", ca_cert.subject, server_key, ca_key, ca=False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass(frozen=True)
class TlsTenant:
    """A tenant of the TLS server and its management client (``tenant
    create --management``)."""

    server: "TlsTessera"
    slug: str
    client_id: str
    client_secret: str

    @property
    def domain(self) -> str:
        """What AUTH0_DOMAIN / node-auth0's ``domain`` is set to."""
        return f"127.0.0.1:{self.server.port}/{self.slug}"

    @property
    def issuer(self) -> str:
        return f"https://{self.domain}/"

    @property
    def audience(self) -> str:
        """The built-in Management API."""
        return f"{self.issuer}api/v2/"

    def token(self, client_id: str, client_secret: str, audience: str) -> requests.Response:
        return self.server.session.post(
            f"{self.issuer}oauth/token",
            json={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
                "audience": audience,
            },
            timeout=10,
        )

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A Management API call with the management client's token."""
        response = self.token(self.client_id, self.client_secret, self.audience)
        assert response.status_code == 200, response.text
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return self.server.session.request(
            method, f"{self.audience}{path}", headers=headers, timeout=30, **kwargs
        )

    def get(self, path: str) -> Any:
        response = self.api("GET", path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def audit(self) -> list[dict[str, Any]]:
        """The tenant's audit trail, as ``manage.py tenant audit --json`` prints it."""
        out = self.server.manage("tenant", "audit", "-p", self.slug, "--json", "--limit", "100000")
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@dataclass
class TlsTessera:
    fleet: Fleet
    server: Server
    ca: Path
    root: Path
    session: requests.Session
    created: int = 0

    @property
    def port(self) -> int:
        return self.server.port

    def node_env(self) -> dict[str, str]:
        return {**os.environ, "NODE_EXTRA_CA_CERTS": str(self.ca)}

    def manage(self, *args: str) -> str:
        """``manage.py`` on the server's database (no Redis: one server)."""
        return self.fleet.manage(
            *args, timeout=120, REDIS_URL="", PUBLIC_URL=f"https://127.0.0.1:{self.port}"
        )

    def tenant(self, prefix: str) -> TlsTenant:
        """A new tenant with a management client."""
        self.created += 1
        slug = f"{prefix}-{self.created}"
        out = self.manage("tenant", "create", slug, "--management")
        values = dict(re.findall(r"^(client_id|client_secret):\s+(\S+)", out, flags=re.MULTILINE))
        return TlsTenant(self, slug, values["client_id"], values["client_secret"])


@pytest.fixture(scope="module")
def tls_tessera(tmp_path_factory) -> Iterator[TlsTessera]:
    """Tessera served over HTTPS by granian on a free port, on its own database."""
    root = tmp_path_factory.mktemp("tls")
    ca, certificate, key = make_certificates(root)
    fleet = Fleet(root, name="tls")
    fleet.create_database()
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE wins over ``verify``
    session.verify = str(ca)
    try:
        # Every migration, on a fresh database: minutes on a busy machine.
        fleet.manage("migrate", "--noinput", "-v", "0", timeout=600, REDIS_URL="")
        server = fleet.start_server(
            "tls", database_url=fleet.direct_url, tls=(certificate, key), REDIS_URL=""
        )

        def ready() -> bool:
            if server.process.poll() is not None:
                raise AssertionError(f"granian exited:\n{server.log.read_text()[-3000:]}")
            try:
                return session.get(f"https://127.0.0.1:{server.port}/healthz", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(ready, 60, interval=0.2)
        yield TlsTessera(fleet, server, ca, root, session)
    finally:
        session.close()
        fleet.stop()
        fleet.drop_database()
