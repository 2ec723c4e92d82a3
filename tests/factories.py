"""Test data made through the services, so tests exercise real validation."""

from collections.abc import Iterable
from itertools import count

from apis.models import Api
from apis.services import api_create
from clients.models import Client
from clients.services import client_create, client_grant_create
from tenant.models import Tenant
from tenant.services import tenant_create
from tenant.site.management.commands.demo import SEED_HOOK

_numbers = count(1)
# The seed documents' hook, as `make run` installs it; tests import it from here.
__all__ = ["SEED_HOOK", "make_api", "make_client", "make_tenant"]


def make_tenant(slug: str | None = None, **kwargs) -> Tenant:
    return tenant_create(slug=slug or f"tenant{next(_numbers)}", **kwargs)


def make_api(
    tenant: Tenant,
    identifier: str = "https://api.example.test/",
    scopes: Iterable[str] = ("read:data", "write:data"),
    **kwargs,
) -> Api:
    api, _ = api_create(
        tenant=tenant,
        name=kwargs.pop("name", "Example API"),
        identifier=identifier,
        scopes=scopes,
        **kwargs,
    )
    return api


def make_client(
    tenant: Tenant, grants: dict[Api, Iterable[str]] | None = None, **kwargs
) -> tuple[Client, str]:
    client, secret = client_create(tenant=tenant, name=kwargs.pop("name", "svc"), **kwargs)
    for api, scopes in (grants or {}).items():
        client_grant_create(client=client, api=api, scopes=scopes)
    return client, secret
