"""``GET/PATCH {issuer}api/v2/tenants/settings`` over real HTTP: Auth0's shape
for the fields Tessera has (``friendly_name``), plus ``tessera_egress_hosts``,
the only hosts the tenant's hooks may call; audited, scoped to the token's
tenant, hostile entries refused with the reason. (Scopes, 401s and the
OpenAPI document: test_isolation.py and test_openapi.py.)"""

import pytest
import requests

from hooks.selectors import tenant_egress_hosts
from tenant.models import AuditEntry, Tenant

pytestmark = pytest.mark.django_db(transaction=True)


def settings_call(managed, method: str = "GET", body=None, params=None):
    return requests.request(
        method,
        f"{managed.api_url}tenants/settings",
        headers={"Authorization": f"Bearer {managed.token()}"},
        json=body,
        params=params,
        timeout=10,
    )


def test_settings_read_as_auth0_shows_them(acme):
    response = settings_call(acme)

    assert response.status_code == 200, response.text
    assert response.json() == {"friendly_name": acme.tenant.name, "tessera_egress_hosts": []}
    only = settings_call(acme, params={"fields": "friendly_name", "include_fields": "true"})
    assert only.json() == {"friendly_name": acme.tenant.name}


def test_patch_changes_this_tenants_settings_only_and_is_audited(acme, globex):
    response = settings_call(
        acme,
        "PATCH",
        {
            "friendly_name": "Acme Inc.",
            "tessera_egress_hosts": ["API.Partner.Example", "*.x.example:443"],
        },
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "friendly_name": "Acme Inc.",
        "tessera_egress_hosts": ["api.partner.example", "*.x.example:443"],
    }
    assert settings_call(acme).json() == response.json()
    assert Tenant.objects.get(pk=acme.tenant.pk).name == "Acme Inc."
    assert settings_call(globex).json() == {
        "friendly_name": globex.tenant.name,
        "tessera_egress_hosts": [],
    }
    entries = AuditEntry.objects.filter(tenant=acme.tenant, source="api", object_type="tenant")
    assert {entry.action for entry in entries} == {"update", "update-egress-hosts"}
    assert {entry.actor_id for entry in entries} == {acme.client_id}

    cleared = settings_call(acme, "PATCH", {"tessera_egress_hosts": []})
    assert cleared.json()["tessera_egress_hosts"] == []
    assert tenant_egress_hosts(tenant=acme.tenant) == ()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"tessera_egress_hosts": ["http://169.254.169.254/"]}, "a host, not a URL"),
        ({"tessera_egress_hosts": ["*"]}, "every host"),
        ({"tessera_egress_hosts": ["api.example.com:0"]}, "bad port"),
        ({"tessera_egress_hosts": ["ok.example", "bad\u202e.example"]}, "control characters"),
        ({"tessera_egress_hosts": "api.example.com"}, "tessera_egress_hosts"),
        ({"tessera_egress_hosts": [["nested"]]}, "Not a valid string"),
        ({"friendly_name": ""}, "friendly_name"),
        ({"support_email": "a@b.c"}, "Additional properties not allowed: support_email"),
        (["api.example.com"], "Expected type object"),
    ],
)
def test_hostile_settings_are_refused_with_auth0s_error(acme, body, message):
    response = settings_call(acme, "PATCH", body)

    assert response.status_code == 400, response.text
    error = response.json()
    assert error["statusCode"] == 400 and error["errorCode"] == "invalid_body"
    assert message in error["message"]
    assert tenant_egress_hosts(tenant=acme.tenant) == ()
    assert not AuditEntry.objects.filter(tenant=acme.tenant, source="api").exists()
