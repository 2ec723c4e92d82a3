"""``manage.py api create -p TENANT --identifier AUD --name NAME``."""

from typing import Any

from django.core.management.base import CommandParser

from apis.choices import SigningAlgorithm
from apis.services import api_create
from tenant.audit import Actor
from tenant.cli import TenantCommand
from tenant.models import Tenant


class Command(TenantCommand):
    help = "Create APIs (resource servers)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create an API with its scopes.")
        self.add_tenant_argument(create)
        create.add_argument("--identifier", required=True, help="The audience.")
        create.add_argument("--name", required=True)
        create.add_argument("--scope", action="append", default=[], help="Repeat for each scope.")
        create.add_argument(
            "--signing-alg", choices=SigningAlgorithm.values, default=SigningAlgorithm.RS256
        )
        create.add_argument("--token-lifetime", type=int, default=86_400)

    def create(self, tenant: Tenant, options: dict[str, Any]) -> None:
        api, secret = api_create(
            tenant=tenant,
            name=options["name"],
            identifier=options["identifier"],
            scopes=options["scope"],
            signing_alg=options["signing_alg"],
            token_lifetime=options["token_lifetime"],
            actor=Actor.cli(),
        )
        self.stdout.write(f"Created API {api.identifier} ({api.signing_alg})")
        if secret:
            self.stdout.write(f"Signing secret (shown once): {secret}")
