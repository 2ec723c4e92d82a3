"""``manage.py tenant create|rotate-key``."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant.models import Tenant
from tenant.selectors import tenant_get
from tenant.services import tenant_create, tenant_rotate_key


def validation_message(error: ValidationError) -> str:
    """One line from a ValidationError, for a command's CommandError."""
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)


def get_tenant(slug: str) -> Tenant:
    try:
        return tenant_get(slug=slug)
    except Tenant.DoesNotExist:
        raise CommandError(f"Unknown tenant: {slug}") from None


class Command(BaseCommand):
    help = "Create tenants and rotate their signing keys."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a tenant with its first signing key.")
        create.add_argument("slug")
        create.add_argument("--name", default="")
        create.add_argument("--domain", default=None, help="Serve the tenant on this host.")
        rotate = actions.add_parser("rotate-key", help="Sign with a new key from now on.")
        rotate.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "create":
            try:
                tenant = tenant_create(
                    slug=options["slug"], name=options["name"], domain=options["domain"]
                )
            except ValidationError as error:
                raise CommandError(validation_message(error)) from None
            self.stdout.write(f"Created tenant {tenant.slug}; issuer {tenant.issuer}")
        else:
            tenant = get_tenant(options["slug"])
            key = tenant_rotate_key(tenant=tenant)
            self.stdout.write(f"Tenant {tenant.slug} now signs with key {key.kid}")
