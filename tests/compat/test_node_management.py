"""node-auth0 (npm ``auth0``): its ManagementClient, as its README shows,
against Tessera over TLS: resource servers, clients, client grants and
hooks through their whole life, and Auth0's Actions round trip."""

from typing import Any

import pytest

from tests.compat.conftest import TlsTenant, node_library, require_node_library, run_node

LIBRARY = node_library("auth0")
AUDIENCE = "https://orders.node.test/"
CLAIM = "https://node.test/plan"
CLAIM_V2 = "https://node.test/plan-v2"
HOOK = """module.exports = function (client, scope, audience, context, cb) {
  var token = { scope: scope };
  if (client.metadata.plan) {
    token["CLAIM"] = context.webtask.secrets.PREFIX + "-" + client.metadata.plan;
  }
  cb(null, token);
};
"""
ACTION = """exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim("CLAIM", "action-" + event.client.metadata.plan);
};
"""


def management(tenant: TlsTenant, **payload: Any) -> dict[str, Any]:
    require_node_library("auth0")
    return run_node(
        "auth0_management.mjs",
        {
            "domain": tenant.domain,
            "clientId": tenant.client_id,
            "clientSecret": tenant.client_secret,
            **payload,
        },
        env=tenant.server.node_env(),
    )


@pytest.mark.parametrize("library", [LIBRARY])
def test_management_client_round_trip(tls_tessera, library):
    tenant = tls_tessera.tenant("node")
    other = tls_tessera.tenant("node-other")
    foreign = other.api("POST", "clients", json={"name": "Theirs"}).json()["client_id"]

    result = management(
        tenant,
        run="classic",
        audience=AUDIENCE,
        hookScript=HOOK.replace("CLAIM", CLAIM),
        hookScriptV2=HOOK.replace("CLAIM", CLAIM_V2),
        foreignClientId=foreign,
    )
    assert "failed" not in result, f"{library}: {result}"

    assert result["created_rs"]["identifier"] == AUDIENCE, library
    assert result["updated_rs"]["name"] == result["got_rs"]["name"] == "Orders v2", library
    assert [s["value"] for s in result["got_rs"]["scopes"]] == ["read:data", "write:data"]
    assert [(rs["name"], rs["is_system"]) for rs in result["listed_rs"]] == [
        ("Auth0 Management API", True),
        ("Orders v2", False),
    ], library  # one per page: the SDK followed the pages
    assert result["duplicate_rs"] == {"status": 409, "errorCode": "resource_server_conflict"}
    assert result["delete_system_rs"] == {"status": 403, "errorCode": "operation_not_supported"}

    assert result["created_client"]["client_secret"] is True, library
    assert result["created_client"]["grant_types"] == ["client_credentials"], library
    assert result["got_client"]["client_metadata"] == {"plan": "silver"}, library
    assert result["rotated"] is True, library
    assert result["foreign_client"] == {"status": 404, "errorCode": "inexistent_client"}

    grant = result["created_grant"]
    assert (grant["audience"], grant["scope"]) == (AUDIENCE, ["read:data"]), library
    assert result["got_grant"]["scope"] == ["read:data", "write:data"], library
    assert [g["id"] for g in result["listed_grants"]][-1] == grant["id"], library
    assert len(result["listed_grants"]) == 2, library  # the management client's, then this

    assert result["created_hook"]["triggerId"] == "credentials-exchange", library
    assert result["hook_secrets"] == {"PREFIX": "_VALUE_NOT_SHOWN_"}, library
    assert result["claims_v1"][CLAIM] == "plan-silver", library
    assert result["claims_v1"]["scope"] == "read:data write:data", library
    assert result["got_hook"]["script"] == HOOK.replace("CLAIM", CLAIM_V2), library
    assert [h["name"] for h in result["listed_hooks"]] == ["plan-claim"], library
    assert result["claims_v2"][CLAIM_V2] == "plan-silver", library
    assert CLAIM not in result["claims_v2"], library

    assert result["after_delete"] == {
        "hook": {"status": 404, "errorCode": "inexistent_hook"},
        "grant": {"status": 404, "errorCode": "inexistent_client_grant"},
        "client": {"status": 404, "errorCode": "inexistent_client"},
        "rs": {"status": 404, "errorCode": "inexistent_resource_server"},
    }, library
    assert [c["client_id"] for c in other.get("clients") if c["name"] == "Theirs"] == [foreign]


@pytest.mark.parametrize("library", [LIBRARY])
def test_management_client_actions_round_trip(tls_tessera, library):
    tenant = tls_tessera.tenant("node-actions")
    other = tls_tessera.tenant("node-actions-other")
    v1, v2 = ACTION.replace("CLAIM", CLAIM), ACTION.replace("CLAIM", CLAIM_V2)
    result = management(tenant, run="actions", actionCode=v1, actionCodeV2=v2)
    assert "failed" not in result, f"{library}: {result}"

    assert result["created_action"]["supported_triggers"] == [
        {"id": "credentials-exchange", "version": "v2"}
    ], library
    assert result["built"] == "built", library
    assert [b["display_name"] for b in result["bindings"]["bindings"]] == ["plan"], library
    assert result["updated_action"]["all_changes_deployed"] is False, library
    assert sorted(result["versions"]) == [1, 2], library
    assert result["rolled_back"]["code"] == v1, library
    assert "payload" in result["tested"], library
    assert result["delete_bound"]["status"] in (400, 409), library  # bound: refused
    assert result["after_delete"]["status"] == 404, library
    assert other.get("actions/actions")["actions"] == [], library
