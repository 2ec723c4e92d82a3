"""``manage.py client create|grant``."""

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apis.models import Api
from apis.selectors import api_get
from clients.choices import TokenEndpointAuthMethod
from clients.models import Client
from clients.selectors import client_get
from clients.services import client_create, client_grant_create
from tenant.management.commands.tenant import get_tenant, validation_message
from tenant.models import Tenant


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"{what} must look like KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def parse_grant(spec: str) -> tuple[str, list[str]]:
    """``AUD`` or ``AUD=scope,scope``; the audience itself may contain '='."""
    audience, sep, scopes = spec.rpartition("=") if "=" in spec else (spec, "", "")
    if not sep:
        return spec, []
    return audience, [scope for scope in scopes.split(",") if scope]


def get_api(tenant: Tenant, audience: str) -> Api:
    try:
        return api_get(tenant=tenant, identifier=audience)
    except Api.DoesNotExist:
        raise CommandError(f"Unknown API for tenant {tenant.slug}: {audience}") from None


class Command(BaseCommand):
    help = "Create machine clients and grant them access to APIs."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a client; prints its secret once.")
        create.add_argument("-p", "--tenant", required=True, help="Tenant slug.")
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
        grant = actions.add_parser("grant", help="Grant a client access to an API.")
        grant.add_argument("-p", "--tenant", required=True, help="Tenant slug.")
        grant.add_argument("client_id")
        grant.add_argument("audience")
        grant.add_argument("--scope", action="append", default=[], help="Repeat for each scope.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = get_tenant(options["tenant"])
        try:
            if options["action"] == "create":
                self.create(tenant, options)
            else:
                self.grant(tenant, options)
        except ValidationError as error:
            raise CommandError(validation_message(error)) from None

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
        )
        for api, scopes in apis:
            client_grant_create(client=client, api=api, scopes=scopes)
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
        try:
            client = client_get(tenant=tenant, client_id=options["client_id"])
        except Client.DoesNotExist:
            raise CommandError(
                f"Unknown client for tenant {tenant.slug}: {options['client_id']}"
            ) from None
        api = get_api(tenant, options["audience"])
        client_grant_create(client=client, api=api, scopes=options["scope"])
        scopes = " ".join(options["scope"]) or "no scopes"
        self.stdout.write(f"Granted {client.client_id} access to {api.identifier} ({scopes})")
