"""Test data made through the services, so tests exercise real validation."""

from collections.abc import Iterable
from itertools import count

from apis.models import Api
from apis.services import api_create
from clients.models import Client
from clients.services import client_create, client_grant_create
from tenant.audit import Actor
from tenant.models import AuditEntry, Tenant
from tenant.services import tenant_create
from tenant.site.management.commands.demo import SEED_HOOK

_numbers = count(1)
# The seed documents' hook, as `make run` installs it; tests import it from here.
__all__ = ["SEED_HOOK", "TEST_ACTOR", "make_api", "make_client", "make_tenant"]

# Who the tests' own setup writes as (every service names its actor); a
# test of who is recorded passes the actor it checks for.
TEST_ACTOR = Actor(
    kind=AuditEntry.ActorKind.SYSTEM, id="", name="test", source=AuditEntry.Source.SYSTEM
)


def make_tenant(slug: str | None = None, **kwargs) -> Tenant:
    kwargs.setdefault("actor", TEST_ACTOR)
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
        actor=kwargs.pop("actor", TEST_ACTOR),
        **kwargs,
    )
    return api


def make_client(
    tenant: Tenant, grants: dict[Api, Iterable[str]] | None = None, **kwargs
) -> tuple[Client, str]:
    actor = kwargs.pop("actor", TEST_ACTOR)
    client, secret = client_create(
        tenant=tenant, name=kwargs.pop("name", "svc"), actor=actor, **kwargs
    )
    for api, scopes in (grants or {}).items():
        client_grant_create(client=client, api=api, scopes=scopes, actor=actor)
    return client, secret
