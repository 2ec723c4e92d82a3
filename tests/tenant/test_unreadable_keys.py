"""A server that cannot read its keys says so, and only that tenant suffers.

The first half is what an operator does: a database whose secrets were
encrypted with one key-encryption key, then ``manage.py`` and a granian
server (the README's flags) started without it, or with another. The second
half is one tenant whose signing key row cannot be decrypted: warm-up goes
on, that tenant's token requests answer a JSON 500, the other tenant's are
served, and ``/readyz`` names it.
"""

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import Client as HttpClient

from tenant import selectors
from tenant.models import SigningKey
from tenant.site.warmup import warm
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant
from tests.servers import ScratchDatabase, free_port, granian_command, server_env

AUD = "https://api.example.test/"
KEK_A = Fernet.generate_key().decode()
KEK_B = Fernet.generate_key().decode()


# --- as an operator: another server, another key -----------------------------


class Deployment:
    """A database of its own (PostgreSQL when the suite runs on it, else a
    SQLite file) and a var/ directory, driven by subprocesses."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.var = root / "var"
        self.database = ScratchDatabase(root, "kek")
        self.url = self.database.url

    def drop(self) -> None:
        self.database.drop()

    def env(self, kek: str | None) -> dict[str, str]:
        env = server_env(
            TESSERA_VAR_DIR=str(self.var),
            DATABASE_URL=self.url,
            TESSERA_HOOK_WORKERS="1",
            LOG_LEVEL="WARNING",
        )
        if kek is not None:
            env["TESSERA_KEK"] = kek
        return env

    def manage(self, *args: str, kek: str | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - this interpreter, our manage.py
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=self.env(kek),
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A database with one tenant, its signing key encrypted with KEK_A."""
    deployment = Deployment(tmp_path_factory.mktemp("kek"))
    try:
        for args in (("migrate", "--noinput", "-v", "0"), ("tenant", "create", "acme")):
            result = deployment.manage(*args, kek=KEK_A)
            assert result.returncode == 0, result.stderr
        yield deployment
    finally:
        deployment.drop()


def assert_one_clear_line(stderr: str, *phrases: str) -> None:
    assert "Traceback" not in stderr and "InvalidToken" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if "TESSERA_KEK" in line]
    assert len(lines) == 1, stderr
    for phrase in phrases:
        assert phrase in lines[0], stderr
    for key in (KEK_A, KEK_B):
        assert key not in stderr


def test_a_command_without_the_kek_generates_none_and_says_which_is_missing(deployment):
    result = deployment.manage("tenant", "create", "beta", kek=None)
    assert result.returncode == 1
    assert_one_clear_line(result.stderr, "TESSERA_KEK is not set", "no key was generated")
    assert not (deployment.var / "kek").exists()


def test_a_command_with_another_kek_writes_nothing_with_it(deployment):
    result = deployment.manage("tenant", "create", "beta", kek=KEK_B)
    assert result.returncode == 1
    assert_one_clear_line(result.stderr, "decrypts none of the database's 1 signing keys")
    # Neither refusal wrote a tenant: with the right key, beta is new.
    created = deployment.manage("tenant", "create", "beta", kek=KEK_A)
    assert created.returncode == 0, created.stderr


@pytest.mark.parametrize("kek", [None, KEK_B], ids=["no TESSERA_KEK", "another TESSERA_KEK"])
def test_a_server_without_the_kek_refuses_to_start_with_one_line(deployment, kek):
    port = free_port()
    log = deployment.root / f"granian-{port}.log"
    with log.open("w") as output:
        server = subprocess.Popen(  # noqa: S603 - granian, the README's command
            granian_command(port),
            cwd=settings.BASE_DIR,
            env=deployment.env(kek),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            server.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
            pytest.fail("the server kept running:\n" + log.read_text())
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.startswith("Tessera cannot start: ")]
    assert lines, text
    assert_one_clear_line(lines[0], "TESSERA_KEK")
    assert "Traceback" not in text and "InvalidToken" not in text, text
    assert not (deployment.var / "kek").exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_a_new_database_gets_a_generated_kek(tmp_path):
    deployment = Deployment(tmp_path)
    try:
        assert deployment.manage("migrate", "--noinput", "-v", "0", kek=None).returncode == 0
        result = deployment.manage("tenant", "create", "acme", kek=None)
        assert result.returncode == 0, result.stderr
        kek = deployment.var / "kek"
        assert kek.stat().st_mode & 0o777 == 0o600
        generated = kek.read_text().strip()
        Fernet(generated.encode())  # a Fernet key
        again = deployment.manage("tenant", "rotate-key", "acme", kek=None)
        assert again.returncode == 0, again.stderr
        # A rotation of the KEK in progress: the new key first, the old one after.
        rotating = deployment.manage("tenant", "rotate-key", "acme", kek=f"{KEK_B},{generated}")
        assert rotating.returncode == 0, rotating.stderr
    finally:
        deployment.drop()


# --- one tenant's key unreadable ------------------------------------------------


@pytest.fixture
def two_tenants(db, settings):
    settings.TESSERA_CONFIG_MAX_STALENESS = 60
    settings.TESSERA_TOKEN_RATE_LIMIT = ""
    worlds = {}
    for slug in ("acme", "globex"):
        tenant = make_tenant(slug)
        api = make_api(tenant, AUD)
        client, secret = make_client(tenant, {api: ["read:data"]})
        worlds[slug] = (client, secret)
    # acme's key row: a Fernet token of another KEK, as a restore from
    # another deployment or a hand edit would leave it.
    damaged = Fernet(KEK_B.encode()).encrypt(b"-----BEGIN PRIVATE KEY-----").decode()
    SigningKey.objects.filter(tenant__slug="acme").update(private_key_encrypted=damaged)
    yield worlds
    selectors._unreadable_keys.clear()


def token(slug, client, secret):
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": AUD,
    }
    return HttpClient().post(f"/{slug}/oauth/token", json.dumps(body), "application/json")


def test_warm_up_skips_the_tenant_whose_key_cannot_be_read(two_tenants, caplog):
    with caplog.at_level(logging.INFO):
        warm()  # no exception: the server starts
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("acme" in message and "TESSERA_KEK" in message for message in errors), errors
    assert not any("globex" in message for message in errors), errors
    warmed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Warmed")]
    assert warmed and warmed[0].startswith("Warmed 1 tenants"), warmed
    logged = caplog.text
    damaged = SigningKey.objects.get(tenant__slug="acme").private_key_encrypted
    assert damaged not in logged and "PRIVATE KEY" not in logged


def test_only_that_tenant_is_refused_and_readyz_names_it(two_tenants, caplog):
    warm()
    refused = token("acme", *two_tenants["acme"])
    assert refused.status_code == 500
    assert refused["Content-Type"] == "application/json"
    assert refused["Cache-Control"] == "no-store"
    body = refused.json()
    assert body["error"] == "server_error"
    assert "key" in body["error_description"]
    assert "PRIVATE" not in refused.content.decode() and "BEGIN" not in refused.content.decode()
    assert "Traceback" not in caplog.text

    served = token("globex", *two_tenants["globex"])
    assert served.status_code == 200, served.content
    assert served.json()["token_type"] == "Bearer"

    ready = HttpClient().get("/readyz")
    assert ready.status_code == 200  # one tenant does not take the server out of rotation
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["unreadable_keys"] == ["acme"]


def test_a_new_key_for_that_tenant_clears_it(two_tenants):
    from tenant.services import tenant_rotate_key

    warm()
    assert token("acme", *two_tenants["acme"]).status_code == 500
    tenant_rotate_key(tenant=SigningKey.objects.get(tenant__slug="acme").tenant, actor=TEST_ACTOR)
    assert token("acme", *two_tenants["acme"]).status_code == 200
    ready = HttpClient().get("/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["unreadable_keys"] == []


def test_a_tenant_whose_key_is_unreadable_at_request_time_is_found_then(two_tenants, caplog):
    """Without warm-up (a key damaged after it): the first request finds it."""
    assert token("acme", *two_tenants["acme"]).status_code == 500
    assert token("globex", *two_tenants["globex"]).status_code == 200
    assert HttpClient().get("/readyz").json()["checks"]["unreadable_keys"] == ["acme"]
