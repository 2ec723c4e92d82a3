"""``manage.py demo``: the tenant `make run` serves (idempotent).

Secrets are stored hashed, so to print working credentials every run gives
the demo's users new passwords and the demo client a new secret. The first
login printed is the demo tenant's administrator (a member of ``demo``, not a
superuser: the per-tenant dashboard the README describes); the superuser,
who sees every tenant, users and groups, comes second.
"""

import os
import secrets
import shlex
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from apis.models import Api
from apis.services import api_create
from clients.models import Client
from clients.services import client_create, client_grant_create, client_rotate_secret
from hooks.models import Hook
from hooks.services import hook_create
from tenant.audit import Actor
from tenant.models import Tenant
from tenant.services import tenant_create, tenant_member_provision

SLUG = "demo"
TENANT_ADMIN = "demo-admin"
SUPERUSER = "admin"
AUDIENCE = "https://api.demo.test/"
CLIENT_NAME = "Demo service"
# The hook of Auth0's "Rules with Client Credentials Grants" docs.
SEED_HOOK = """module.exports = function(client, scope, audience, context, cb) {
  var access_token = {};
  access_token['https://foo.com/claim'] = 'bar';
  access_token.scope = scope;
  access_token.scope.push('extra');
  cb(null, access_token);
};
"""


class Command(BaseCommand):
    help = "Create (or refresh) the demo tenant and print how to use it."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.cli()
        tenant = Tenant.objects.filter(slug=SLUG).first() or tenant_create(
            slug=SLUG, name="Demo", actor=actor
        )
        api = Api.objects.filter(tenant=tenant, identifier=AUDIENCE).first()
        if api is None:
            api, _ = api_create(
                tenant=tenant,
                name="Demo API",
                identifier=AUDIENCE,
                scopes=[("read:data", "Read data"), ("write:data", "Write data")],
                actor=actor,
            )
        client = Client.objects.filter(tenant=tenant, name=CLIENT_NAME).first()
        if client is None:
            client, secret = client_create(tenant=tenant, name=CLIENT_NAME, actor=actor)
            client_grant_create(client=client, api=api, scopes=["read:data"], actor=actor)
        else:
            secret = client_rotate_secret(client=client, actor=actor)

        if not Hook.objects.filter(tenant=tenant).exists():
            hook_create(
                tenant=tenant, name="add-claim", script=SEED_HOOK, enabled=True, actor=actor
            )

        # New passwords every run: only their hashes are kept.
        tenant_password, super_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        tenant_member_provision(
            tenant=tenant,
            username=TENANT_ADMIN,
            password=tenant_password,
            permissions=["hooks.run_hook"],
            actor=actor,
        )
        tenant_member_provision(
            tenant=tenant,
            username=SUPERUSER,
            password=super_password,
            superuser=True,
            actor=actor,
        )

        port = os.environ.get("PORT", "8000")
        body = (
            f'{{"client_id":"{client.client_id}","client_secret":"{secret}",'
            f'"audience":"{AUDIENCE}","grant_type":"client_credentials"}}'
        )
        self.stdout.write(
            f"\nTessera demo tenant '{tenant.slug}' (issuer {tenant.issuer})\n\n"
            f"  Dashboard:     http://127.0.0.1:{port}/admin/\n"
            f"  Tenant admin:  {TENANT_ADMIN} / {tenant_password}   (the demo tenant's dashboard)\n"
            f"  Superuser:     {SUPERUSER} / {super_password}   (every tenant, users, groups)\n"
            f"  client_id:     {client.client_id}\n"
            f"  client_secret: {secret}\n"
            f"  JWKS:          {tenant.issuer}.well-known/jwks.json\n"
            f"  Enabled hook:  {self._enabled_hook(tenant)}\n\n"
            f"Get a token:\n\n"
            f"  curl --request POST --url '{tenant.issuer}oauth/token' \\\n"
            f"    --header 'content-type: application/json' \\\n"
            f"    --data {shlex.quote(body)}\n"
        )

    def _enabled_hook(self, tenant: Tenant) -> str:
        """The hook token requests run now, which may no longer be the seed."""
        hook = Hook.objects.filter(tenant=tenant, enabled=True).first()
        if hook is None:
            return "none (tokens carry no custom claims)"
        if hook.script == SEED_HOOK:
            return f"{hook.name} (adds https://foo.com/claim and the scope extra)"
        return f"{hook.name} (version {hook.version})"
