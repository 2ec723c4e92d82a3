"""``manage.py client grant --revoke`` and ``client rotate-secret``, as the
dashboard does them, and no traceback when the database is down."""

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient

from clients.models import Client, ClientGrant
from tests.factories import make_api, make_client, make_tenant

AUD = "https://api.acme.test/"


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def token_status(tenant, client_id, secret, audience=AUD):
    body = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "audience": audience,
    }
    response = HttpClient().post(
        f"/{tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
    )
    return response.status_code


@pytest.fixture
def two_tenants():
    acme, other = make_tenant("acme"), make_tenant("other")
    api = make_api(acme, AUD)
    other_api = make_api(other, AUD)
    client, secret = make_client(acme, {api: ["read:data"]})
    other_client, other_secret = make_client(other, {other_api: ["read:data"]})
    return acme, other, client, secret, other_client, other_secret


@pytest.mark.django_db
def test_revoke_stops_tokens_for_that_api(two_tenants):
    acme, other, client, secret, other_client, other_secret = two_tenants
    assert token_status(acme, client.client_id, secret) == 200
    output = run("client", "grant", "-p", "acme", client.client_id, AUD, "--revoke")
    assert output.strip() == f"Revoked {client.client_id}'s access to {AUD}"
    assert not ClientGrant.objects.filter(client=client).exists()
    assert token_status(acme, client.client_id, secret) == 403
    assert token_status(other, other_client.client_id, other_secret) == 200


@pytest.mark.django_db
def test_revoke_without_a_grant_fails_and_changes_nothing(two_tenants):
    _, _, client, _, _, _ = two_tenants
    run("client", "grant", "-p", "acme", client.client_id, AUD, "--revoke")
    with pytest.raises(CommandError, match="has no grant"):
        run("client", "grant", "-p", "acme", client.client_id, AUD, "--revoke")
    with pytest.raises(CommandError, match="takes no --scope"):
        run("client", "grant", "-p", "acme", client.client_id, AUD, "--revoke", "--scope", "x")


@pytest.mark.django_db
def test_revoke_cannot_reach_another_tenants_client(two_tenants):
    _, other, _, _, other_client, other_secret = two_tenants
    with pytest.raises(CommandError, match="Unknown client for tenant acme"):
        run("client", "grant", "-p", "acme", other_client.client_id, AUD, "--revoke")
    assert ClientGrant.objects.filter(client=other_client).exists()
    assert token_status(other, other_client.client_id, other_secret) == 200


@pytest.mark.django_db
def test_rotate_secret_prints_the_new_secret_once_and_the_old_one_stops(two_tenants):
    acme, _, client, secret, _, _ = two_tenants
    data = json.loads(run("client", "rotate-secret", "-p", "acme", client.client_id, "--json"))
    assert data["client_id"] == client.client_id and data["client_secret"] != secret
    assert token_status(acme, client.client_id, secret) == 401
    assert token_status(acme, client.client_id, data["client_secret"]) == 200
    text = run("client", "rotate-secret", "-p", "acme", client.client_id)
    newest = text.split("client_secret:")[1].split()[0]
    assert "shown once" in text
    assert token_status(acme, client.client_id, newest) == 200


@pytest.mark.django_db
def test_rotate_secret_cannot_reach_another_tenants_client(two_tenants):
    _, other, _, _, other_client, other_secret = two_tenants
    with pytest.raises(CommandError, match="Unknown client for tenant acme"):
        run("client", "rotate-secret", "-p", "acme", other_client.client_id)
    assert Client.objects.get(pk=other_client.pk).client_secret == other_client.client_secret
    assert token_status(other, other_client.client_id, other_secret) == 200


@pytest.mark.parametrize(
    "database_url",
    ["postgresql://postgres@127.0.0.1:1/nowhere", "sqlite:////nonexistent/dir/db.sqlite3"],
)
def test_a_database_that_is_down_is_one_line_and_exit_1(database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "TESSERA_VAR_DIR": str(settings.VAR_DIR)}
    result = subprocess.run(
        [sys.executable, "manage.py", "client", "rotate-secret", "-p", "acme", "some-client"],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Database unavailable, nothing changed:")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
