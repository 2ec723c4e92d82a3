"""``manage.py client create|grant|rotate-secret``."""

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from apis.models import Api
from apis.selectors import api_get
from clients.choices import TokenEndpointAuthMethod
from clients.models import Client, ClientGrant
from clients.selectors import client_get, client_grant_get
from clients.services import (
    client_create,
    client_grant_create,
    client_grant_delete,
    client_rotate_secret,
)
from tenant.audit import Actor
from tenant.cli import TenantCommand, find, parse_pairs
from tenant.models import Tenant


def parse_grant(spec: str) -> tuple[str, list[str]]:
    """``AUD`` or ``AUD=scope,scope``; the audience itself may contain '='."""
    audience, sep, scopes = spec.rpartition("=") if "=" in spec else (spec, "", "")
    if not sep:
        return spec, []
    return audience, [scope for scope in scopes.split(",") if scope]


def get_client(tenant: Tenant, client_id: str) -> Client:
    return find(client_get, "client", tenant=tenant, client_id=client_id)


def get_api(tenant: Tenant, audience: str) -> Api:
    return find(api_get, "API", tenant=tenant, identifier=audience)


class Command(TenantCommand):
    help = "Create machine clients and grant them access to APIs."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a client; prints its secret once.")
        self.add_tenant_argument(create)
        create.add_argument("--name", required=True)
        create.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
        create.add_argument(
            "--grant",
            action="append",
            default=[],
            metavar="AUD[=scope,scope]",
            help="Grant access to an API, with some of its scopes.",
        )
        create.add_argument(
            "--auth-method",
            choices=TokenEndpointAuthMethod.values,
            default=TokenEndpointAuthMethod.CLIENT_SECRET_POST,
        )
        create.add_argument("--json", action="store_true", help="Print one JSON object.")
        grant = actions.add_parser(
            "grant", help="Grant a client access to an API, or revoke the grant."
        )
        self.add_tenant_argument(grant)
        grant.add_argument("client_id")
        grant.add_argument("audience")
        grant.add_argument("--scope", action="append", default=[], help="Repeat for each scope.")
        grant.add_argument(
            "--revoke", action="store_true", help="Withdraw the grant: no more tokens for the API."
        )
        rotate = actions.add_parser(
            "rotate-secret", help="Replace a client's secret; prints the new one once."
        )
        self.add_tenant_argument(rotate)
        rotate.add_argument("client_id")
        rotate.add_argument("--json", action="store_true", help="Print one JSON object.")

    @transaction.atomic
    def create(self, tenant: Tenant, options: dict[str, Any]) -> None:
        metadata = parse_pairs(options["metadata"], "--metadata")
        grants = [parse_grant(spec) for spec in options["grant"]]
        apis = [(get_api(tenant, audience), scopes) for audience, scopes in grants]
        client, secret = client_create(
            tenant=tenant,
            name=options["name"],
            metadata=metadata,
            token_endpoint_auth_method=options["auth_method"],
            actor=Actor.cli(),
        )
        for api, scopes in apis:
            client_grant_create(client=client, api=api, scopes=scopes, actor=Actor.cli())
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "tenant": tenant.slug,
                        "name": client.name,
                        "client_id": client.client_id,
                        "client_secret": secret,
                        "token_endpoint": f"{tenant.issuer}oauth/token",
                        "grants": [
                            {"audience": api.identifier, "scope": scopes} for api, scopes in apis
                        ],
                    }
                )
            )
            return
        self.stdout.write(f"Created client {client.name}")
        self.stdout.write(f"client_id:     {client.client_id}")
        self.stdout.write(f"client_secret: {secret}  (shown once; store it now)")

    def grant(self, tenant: Tenant, options: dict[str, Any]) -> None:
        if options["revoke"]:
            self.revoke(tenant, options)
            return
        client = get_client(tenant, options["client_id"])
        api = get_api(tenant, options["audience"])
        client_grant_create(client=client, api=api, scopes=options["scope"], actor=Actor.cli())
        scopes = " ".join(options["scope"]) or "no scopes"
        self.stdout.write(f"Granted {client.client_id} access to {api.identifier} ({scopes})")

    def revoke(self, tenant: Tenant, options: dict[str, Any]) -> None:
        if options["scope"]:
            raise CommandError("--revoke withdraws the whole grant; it takes no --scope")
        client = get_client(tenant, options["client_id"])
        api = get_api(tenant, options["audience"])
        try:
            grant = client_grant_get(client=client, api=api)
        except ClientGrant.DoesNotExist:
            raise CommandError(
                f"Client {client.client_id} has no grant for {api.identifier}"
            ) from None
        client_grant_delete(grant=grant, actor=Actor.cli())
        self.stdout.write(f"Revoked {client.client_id}'s access to {api.identifier}")

    def rotate_secret(self, tenant: Tenant, options: dict[str, Any]) -> None:
        client = get_client(tenant, options["client_id"])
        secret = client_rotate_secret(client=client, actor=Actor.cli())
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {"tenant": tenant.slug, "client_id": client.client_id, "client_secret": secret}
                )
            )
            return
        self.stdout.write(f"Rotated the secret of {client.name}; the old one no longer works")
        self.stdout.write(f"client_id:     {client.client_id}")
        self.stdout.write(f"client_secret: {secret}  (shown once; store it now)")
