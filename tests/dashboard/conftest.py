"""Two tenants with one of everything, and an administrator for each."""

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Permission, User

from apis.models import Api
from clients.models import Client, ClientGrant
from hooks.models import Hook
from hooks.services import hook_create
from tenant.models import Tenant
from tenant.services import tenant_add_member
from tests.factories import make_api, make_client, make_tenant

SEED_SCRIPT = """module.exports = function(client, scope, audience, context, cb) {
  console.log('exchanging for', client.name);
  cb(null, { scope: scope, 'https://example.com/tier': 'gold' });
};
"""


@dataclass
class TenantWorld:
    tenant: Tenant
    admin: User
    api: Api
    client: Client
    grant: ClientGrant
    hook: Hook


def make_admin(username: str, *tenants: Tenant, can_run: bool = True) -> User:
    user = User.objects.create_user(username, password="pw-" + username, is_staff=True)
    for tenant in tenants:
        tenant_add_member(tenant=tenant, user=user)
    if can_run:
        user.user_permissions.add(Permission.objects.get(codename="run_hook"))
    return user


def make_world(slug: str) -> TenantWorld:
    tenant = make_tenant(slug, name=slug.capitalize())
    api = make_api(tenant, f"https://api.{slug}.test/", name=f"{slug} API")
    client, _ = make_client(tenant, {api: ["read:data"]}, name=f"{slug} service")
    hook = hook_create(tenant=tenant, name=f"{slug}-hook", script=SEED_SCRIPT, enabled=None)
    return TenantWorld(
        tenant=tenant,
        admin=make_admin(f"{slug}-admin", tenant),
        api=api,
        client=client,
        grant=client.grants.get(),
        hook=hook,
    )


@pytest.fixture
def world_a(db) -> TenantWorld:
    return make_world("alpha")


@pytest.fixture
def world_b(db) -> TenantWorld:
    return make_world("bravo")
