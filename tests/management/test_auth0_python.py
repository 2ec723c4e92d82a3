"""auth0-python's management client against a live Tessera: the round trip
of a team moving its configuration from Auth0, with the token endpoint
reflecting each change on the next request."""

from typing import Any

import pytest
import requests
from auth0.exceptions import Auth0Error
from auth0.management.client_grants import ClientGrants
from auth0.management.clients import Clients
from auth0.management.hooks import Hooks
from auth0.management.resource_servers import ResourceServers

from tenant.models import AuditEntry
from tests.management.conftest import sdk, token_claims

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT_V1 = """module.exports = function(client, scope, audience, context, cb) {
  cb(null, { scope: scope, 'https://example.com/key': context.webtask.secrets.KEY });
};
"""
SCRIPT_V2 = SCRIPT_V1.replace("'https://example.com/key'", "'https://example.com/v2'")
# Long enough never to turn up by chance inside a random id or secret.
FIRST_KEY = "first-hook-secret-value"
SECOND_KEY = "second-hook-secret-value"


def test_full_round_trip(acme):
    resource_servers = sdk(acme, ResourceServers)
    clients = sdk(acme, Clients)
    grants = sdk(acme, ClientGrants)
    hooks = sdk(acme, Hooks)
    issuer = acme.tenant.issuer

    rs = resource_servers.create(
        {
            "name": "Orders",
            "identifier": "https://orders.example/",
            "scopes": [{"value": "read:orders", "description": "Read orders"}],
            "signing_alg": "RS256",
            "token_lifetime": 3600,
        }
    )
    assert rs["identifier"] == "https://orders.example/" and isinstance(rs["id"], str)
    client = clients.create({"name": "svc", "app_type": "non_interactive"})
    assert client["client_secret"] and client["grant_types"] == ["client_credentials"]
    secret = client["client_secret"]
    assert "client_secret" not in clients.get(client["client_id"])
    grant = grants.create(
        {"client_id": client["client_id"], "audience": rs["identifier"], "scope": ["read:orders"]}
    )
    assert grant["scope"] == ["read:orders"]
    claims = token_claims(issuer, client["client_id"], secret, rs["identifier"])
    assert claims["scope"] == "read:orders" and claims["exp"] - claims["iat"] == 3600

    hook = hooks.create(
        {"name": "add-key", "script": SCRIPT_V1, "triggerId": "credentials-exchange"}
    )
    assert hook["enabled"] is False
    hooks.add_secrets(hook["id"], {"KEY": FIRST_KEY, "OTHER": "other-secret-value"})
    assert hooks.get_secrets(hook["id"]) == {
        "KEY": "_VALUE_NOT_SHOWN_",
        "OTHER": "_VALUE_NOT_SHOWN_",
    }
    hooks.update_secrets(hook["id"], {"KEY": SECOND_KEY})
    hooks.delete_secrets(hook["id"], ["OTHER"])
    assert hooks.get_secrets(hook["id"]) == {"KEY": "_VALUE_NOT_SHOWN_"}
    # Disabled: the token carries no hook claim.
    claims = token_claims(issuer, client["client_id"], secret, rs["identifier"])
    assert "https://example.com/key" not in claims

    hooks.update(hook["id"], {"enabled": True})
    claims = token_claims(issuer, client["client_id"], secret, rs["identifier"])
    assert claims["https://example.com/key"] == SECOND_KEY

    assert [h["name"] for h in hooks.all()] == ["add-key"]  # the SDK asks enabled=true
    page = hooks.all(enabled=None, include_totals=True, per_page=1, page=0)
    assert (page["total"], page["start"], page["limit"]) == (1, 0, 1)
    assert hooks.get(hook["id"], fields=["name", "enabled"]) == {"name": "add-key", "enabled": True}
    left_out = requests.get(
        f"{acme.api_url}hooks/{hook['id']}?fields=script,triggerId&include_fields=false",
        headers={"Authorization": f"Bearer {acme.token()}"},
        timeout=10,
    ).json()
    assert (left_out["name"], left_out["enabled"]) == ("add-key", True)
    assert "script" not in left_out and "triggerId" not in left_out

    updated = hooks.update(hook["id"], {"script": SCRIPT_V2})
    assert updated["script"] == SCRIPT_V2
    claims = token_claims(issuer, client["client_id"], secret, rs["identifier"])
    assert claims["https://example.com/v2"] == SECOND_KEY

    with pytest.raises(Auth0Error) as error:
        hooks.update(hook["id"], {"script": "module.exports = function( {"})
    assert error.value.status_code == 400 and "line" in error.value.message

    rotated = clients.rotate_secret(client["client_id"])
    assert rotated["client_secret"] != secret
    hooks.delete(hook["id"])
    claims = token_claims(issuer, client["client_id"], rotated["client_secret"], rs["identifier"])
    assert "https://example.com/v2" not in claims
    with pytest.raises(Auth0Error) as error:
        hooks.get(hook["id"])
    assert (error.value.status_code, error.value.error_code) == (404, "inexistent_hook")

    # Every write is audited with the management client as actor, no secret values.
    rows = AuditEntry.objects.filter(tenant=acme.tenant, source="api")
    assert rows.filter(actor_id=acme.client_id, actor_kind="client").count() == rows.count()
    assert {"create", "secrets.set", "secrets.delete", "enable", "save", "delete"} <= set(
        rows.filter(object_type="hook").values_list("action", flat=True)
    )
    dumped = str(list(rows.values_list("before", "after")))
    assert FIRST_KEY not in dumped and SECOND_KEY not in dumped and secret not in dumped
    assert "other-secret-value" not in dumped


def test_errors_are_auth0_shaped(acme):
    hooks = sdk(acme, Hooks)
    hooks.create({"name": "dup", "script": SCRIPT_V1, "triggerId": "credentials-exchange"})
    with pytest.raises(Auth0Error) as error:
        hooks.create({"name": "dup", "script": SCRIPT_V1, "triggerId": "credentials-exchange"})
    assert error.value.status_code == 409
    with pytest.raises(Auth0Error) as error:
        hooks.create(
            {"name": "bad_name!", "script": SCRIPT_V1, "triggerId": "credentials-exchange"}
        )
    assert (error.value.status_code, error.value.error_code) == (400, "invalid_body")
    hook = hooks.all(enabled=None)[0]
    with pytest.raises(Auth0Error) as error:
        hooks.update(hook["id"], {"triggerId": "credentials-exchange"})
    assert error.value.status_code == 400
    hooks.add_secrets(hook["id"], {"A": "1"})
    with pytest.raises(Auth0Error) as error:
        hooks.add_secrets(hook["id"], {"A": "2"})
    assert error.value.status_code == 409
    with pytest.raises(Auth0Error) as error:
        hooks.update_secrets(hook["id"], {"NOPE": "2"})
    assert error.value.status_code == 404
    with pytest.raises(Auth0Error) as error:
        hooks.add_secrets(hook["id"], {f"S{i}": "x" for i in range(20)})
    assert error.value.status_code == 400
    response = requests.get(
        f"{acme.api_url}hooks?per_page=101",
        headers={"Authorization": f"Bearer {acme.token()}"},
        timeout=10,
    )
    assert response.status_code == 400 and response.json()["statusCode"] == 400
    response = requests.post(
        f"{acme.api_url}hooks",
        data="{not json",
        headers={"Authorization": f"Bearer {acme.token()}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400 and response.json()["errorCode"] == "invalid_body"


def test_builtin_api_is_undeletable(acme):
    resource_servers = sdk(acme, ResourceServers)
    system = [rs for rs in resource_servers.get_all() if rs["is_system"]]
    assert [rs["identifier"] for rs in system] == [acme.api_url]
    with pytest.raises(Auth0Error) as error:
        resource_servers.delete(system[0]["id"])
    assert error.value.status_code == 403


def test_deploy_cli_hook_sync_sequence(acme):
    """The Deploy CLI's hooks handler: list all, get each hook's secrets,
    match by name + triggerId, create / update / delete, secrets by POST /
    PATCH / DELETE, leaving _VALUE_NOT_SHOWN_ values alone."""
    hooks = sdk(acme, Hooks)
    existing = hooks.create(
        {"name": "keep", "script": SCRIPT_V1, "triggerId": "credentials-exchange"}
    )
    hooks.add_secrets(existing["id"], {"KEY": "original", "GONE": "x"})
    stale = hooks.create(
        {"name": "stale", "script": SCRIPT_V1, "triggerId": "credentials-exchange"}
    )

    desired: list[dict[str, Any]] = [
        {
            "name": "keep",
            "triggerId": "credentials-exchange",
            "script": SCRIPT_V2,
            "enabled": True,
            "secrets": {"KEY": "_VALUE_NOT_SHOWN_", "NEW": "n1"},
        },
        {"name": "fresh", "triggerId": "credentials-exchange", "script": SCRIPT_V1, "secrets": {}},
    ]
    current = hooks.all(enabled=None, per_page=100)
    for item in current:
        item["secrets"] = hooks.get_secrets(item["id"])
    by_key = {(h["name"], h["triggerId"]): h for h in current}
    for want in desired:
        have = by_key.pop((want["name"], want["triggerId"]), None)
        body = {k: v for k, v in want.items() if k not in ("secrets", "triggerId")}
        if have is None:
            have = hooks.create({**body, "triggerId": want["triggerId"]})
            have["secrets"] = {}
        else:
            hooks.update(have["id"], {k: v for k, v in body.items() if k != "name"})
        to_add = {k: v for k, v in want["secrets"].items() if k not in have["secrets"]}
        to_update = {
            k: v
            for k, v in want["secrets"].items()
            if k in have["secrets"] and v != "_VALUE_NOT_SHOWN_"
        }
        to_delete = [k for k in have["secrets"] if k not in want["secrets"]]
        if to_add:
            hooks.add_secrets(have["id"], to_add)
        if to_update:
            hooks.update_secrets(have["id"], to_update)
        if to_delete:
            hooks.delete_secrets(have["id"], to_delete)
    for leftover in by_key.values():
        hooks.delete(leftover["id"])

    result = {h["name"]: h for h in hooks.all(enabled=None)}
    assert set(result) == {"keep", "fresh"}
    assert result["keep"]["enabled"] is True and result["keep"]["script"] == SCRIPT_V2
    assert hooks.get_secrets(result["keep"]["id"]) == {
        "KEY": "_VALUE_NOT_SHOWN_",
        "NEW": "_VALUE_NOT_SHOWN_",
    }
    # The untouched secret kept its value: the hook still reads "original".
    from hooks.models import Hook
    from hooks.selectors import hook_secrets

    assert hook_secrets(hook=Hook.objects.get(name="keep"))["KEY"] == "original"
    assert stale["id"] not in {h["id"] for h in result.values()}
