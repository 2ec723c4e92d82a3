"""The compatibility suite: real, pinned third-party clients used as their own
docs show, against a live Tessera over real HTTP.

Each row's test id names the library and its version. A library that is not
installed fails its row (the suite never skips one): Python clients come from
pyproject's dev extras, node ones from ``npm ci`` in this directory (``make
test`` runs it).
"""

import gc
import json
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

from tenant.models import Tenant
from tenant.selectors import signing_key_active
from tests.factories import make_api, make_client, make_tenant

COMPAT_DIR = Path(__file__).parent
AUDIENCE = "https://api.compat.test/"
OTHER_AUDIENCE = "https://other.compat.test/"
NODE_TIMEOUT = 60  # seconds: a node process that runs longer has hung
# Every library a row runs; README's "Works with" table lists exactly these.
PYTHON_LIBRARIES = ("auth0-python", "authlib", "requests-oauthlib", "PyJWT")
NODE_LIBRARIES = ("openid-client", "jose", "express-oauth2-jwt-bearer")


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


def run_node(script: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run one of this directory's scripts; it prints one JSON object."""
    done = subprocess.run(
        node_command(script, payload),
        cwd=COMPAT_DIR,
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
    gc.collect()
    for thread in threading.enumerate():
        if "process_request_thread" in thread.name:
            thread.join(timeout=5)


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
