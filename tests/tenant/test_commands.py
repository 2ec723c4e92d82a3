"""The bootstrap CLI: tenant, api and client commands."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apis.models import Api
from clients.models import Client, ClientGrant
from hooks.models import Hook
from tenant.models import SigningKey, Tenant

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_tenant_create_prints_issuer_and_makes_a_signing_key():
    output = run("tenant", "create", "acme", "--name", "Acme Corp")
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Corp"
    assert "http://127.0.0.1:8000/acme/" in output
    assert SigningKey.objects.filter(tenant=tenant, retired_at=None).count() == 1


def test_tenant_create_with_domain_sets_issuer():
    run("tenant", "create", "acme", "--domain", "auth.acme.test")
    assert Tenant.objects.get(slug="acme").issuer == "https://auth.acme.test/"


@pytest.mark.parametrize("slug", ["Bad Slug", "admin", "-x"])
def test_tenant_create_rejects_invalid_slug(slug):
    with pytest.raises(CommandError, match="slug"):
        run("tenant", "create", slug)
    assert not Tenant.objects.exists()


def test_tenant_create_duplicate_fails_without_changes():
    run("tenant", "create", "acme")
    with pytest.raises(CommandError, match="already exists"):
        run("tenant", "create", "acme")
    assert SigningKey.objects.count() == 1


def test_rotate_key_retires_old_key():
    run("tenant", "create", "acme")
    old = SigningKey.objects.get()
    output = run("tenant", "rotate-key", "acme")
    new = SigningKey.objects.get(retired_at=None)
    assert new.kid != old.kid and new.kid in output
    old.refresh_from_db()
    assert old.retired_at is not None


def test_unknown_tenant_is_one_clear_error():
    with pytest.raises(CommandError, match="Unknown tenant: nope"):
        run("api", "create", "-p", "nope", "--identifier", "x", "--name", "X")


def test_api_create_with_scopes():
    run("tenant", "create", "acme")
    run(
        "api",
        "create",
        "-p",
        "acme",
        "--identifier",
        "https://api/",
        "--name",
        "A",
        "--scope",
        "read:data",
        "--scope",
        "write:data",
        "--token-lifetime",
        "3600",
    )
    api = Api.objects.get(identifier="https://api/")
    assert list(api.scopes.values_list("value", flat=True)) == ["read:data", "write:data"]
    assert api.token_lifetime == 3600


def test_api_create_hs256_prints_secret_once():
    run("tenant", "create", "acme")
    output = run(
        "api", "create", "-p", "acme", "--identifier", "hs", "--name", "H", "--signing-alg", "HS256"
    )
    assert "Signing secret (shown once):" in output


def test_api_create_duplicate_identifier_fails():
    run("tenant", "create", "acme")
    run("api", "create", "-p", "acme", "--identifier", "https://api/", "--name", "A")
    with pytest.raises(CommandError, match="already exists"):
        run("api", "create", "-p", "acme", "--identifier", "https://api/", "--name", "B")
    assert Api.objects.filter(is_system=False).count() == 1


def test_api_create_rejects_token_lifetime_over_30_days():
    run("tenant", "create", "acme")
    with pytest.raises(CommandError, match="token_lifetime"):
        run(
            "api",
            "create",
            "-p",
            "acme",
            "--identifier",
            "x",
            "--name",
            "X",
            "--token-lifetime",
            "2592001",
        )
    assert not Api.objects.filter(is_system=False).exists()


def test_client_create_json_prints_credentials_and_grants():
    run("tenant", "create", "acme")
    run(
        "api",
        "create",
        "-p",
        "acme",
        "--identifier",
        "https://api/",
        "--name",
        "A",
        "--scope",
        "read:data",
        "--scope",
        "write:data",
    )
    output = run(
        "client",
        "create",
        "-p",
        "acme",
        "--name",
        "svc",
        "--metadata",
        "team=core",
        "--grant",
        "https://api/=read:data",
        "--json",
    )
    data = json.loads(output)
    client = Client.objects.get(client_id=data["client_id"])
    assert client.metadata == {"team": "core"}
    assert len(data["client_secret"]) >= 43
    grant = ClientGrant.objects.get(client=client)
    assert list(grant.scopes.values_list("value", flat=True)) == ["read:data"]


def test_client_create_with_unknown_scope_creates_nothing():
    run("tenant", "create", "acme")
    run(
        "api",
        "create",
        "-p",
        "acme",
        "--identifier",
        "https://api/",
        "--name",
        "A",
        "--scope",
        "read:data",
    )
    with pytest.raises(CommandError, match="has no scope admin"):
        run("client", "create", "-p", "acme", "--name", "svc", "--grant", "https://api/=admin")
    assert not Client.objects.exists()


def test_client_grant_adds_access():
    run("tenant", "create", "acme")
    run(
        "api",
        "create",
        "-p",
        "acme",
        "--identifier",
        "https://api/",
        "--name",
        "A",
        "--scope",
        "read:data",
    )
    client_id = json.loads(run("client", "create", "-p", "acme", "--name", "svc", "--json"))[
        "client_id"
    ]
    output = run("client", "grant", "-p", "acme", client_id, "https://api/", "--scope", "read:data")
    assert "Granted" in output
    assert ClientGrant.objects.filter(client__client_id=client_id).exists()


def test_client_grant_cannot_reach_another_tenants_client():
    run("tenant", "create", "acme")
    run("tenant", "create", "globex")
    run("api", "create", "-p", "globex", "--identifier", "https://api/", "--name", "A")
    client_id = json.loads(run("client", "create", "-p", "acme", "--name", "svc", "--json"))[
        "client_id"
    ]
    with pytest.raises(CommandError, match="Unknown client"):
        run("client", "grant", "-p", "globex", client_id, "https://api/")


def test_demo_is_idempotent_and_prints_working_curl():
    first = run("demo")
    second = run("demo")
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert Client.objects.filter(tenant__slug="demo").count() == 1
    assert "curl --request POST --url 'http://127.0.0.1:8000/demo/oauth/token'" in second
    assert first != second  # a fresh secret each run, since only its hash is stored
    assert Hook.objects.get(tenant__slug="demo").enabled
