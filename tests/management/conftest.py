"""A live server, tenants with management clients, and tokens from the
tenant's own token endpoint, for Management API tests over real HTTP."""

from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests

from apis.services import MANAGEMENT_SCOPES, management_api_ensure
from clients.services import client_create, client_grant_create, management_client_create
from tenant.models import Tenant
from tests.factories import TEST_ACTOR, make_tenant


@dataclass
class ManagedTenant:
    tenant: Tenant
    client_id: str
    client_secret: str

    @property
    def api_url(self) -> str:
        return f"{self.tenant.issuer}api/v2/"

    def token(self, scopes: list[str] | None = None) -> str:
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "audience": self.api_url,
        }
        if scopes is not None:
            body["scope"] = " ".join(scopes)
        response = requests.post(f"{self.tenant.issuer}oauth/token", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def token_claims(issuer: str, client_id: str, secret: str, audience: str) -> dict[str, Any]:
    """A token from the tenant's own endpoint over real HTTP, decoded."""
    response = requests.post(
        f"{issuer}oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "audience": audience,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return dict(jwt.decode(response.json()["access_token"], options={"verify_signature": False}))


def sdk(managed: ManagedTenant, cls: Any) -> Any:
    """auth0-python's management class ``cls`` on the tenant's domain, over
    plain HTTP, with a Management API token."""
    domain = managed.tenant.issuer.removeprefix("http://").rstrip("/")
    return cls(domain, managed.token(), protocol="http")


def managed_tenant(slug: str) -> ManagedTenant:
    tenant = make_tenant(slug)
    client, secret = management_client_create(tenant=tenant, actor=TEST_ACTOR)
    return ManagedTenant(tenant=tenant, client_id=client.client_id, client_secret=secret)


def client_with_scopes(managed: ManagedTenant, scopes: list[str]) -> ManagedTenant:
    """Another client of the tenant granted only ``scopes`` of the Management API."""
    api = management_api_ensure(tenant=managed.tenant, actor=TEST_ACTOR)
    client, secret = client_create(tenant=managed.tenant, name="limited", actor=TEST_ACTOR)
    client_grant_create(client=client, api=api, scopes=scopes, actor=TEST_ACTOR)
    return ManagedTenant(tenant=managed.tenant, client_id=client.client_id, client_secret=secret)


@pytest.fixture
def live(live_server, settings):
    settings.PUBLIC_URL = live_server.url
    return live_server


@pytest.fixture
def acme(live, transactional_db) -> ManagedTenant:
    return managed_tenant("acme")


@pytest.fixture
def globex(live, transactional_db) -> ManagedTenant:
    return managed_tenant("globex")


__all__ = ["MANAGEMENT_SCOPES"]
