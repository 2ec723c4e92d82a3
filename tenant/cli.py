"""What every ``manage.py`` command of Tessera shares: the tenant named on
the command line, ``KEY=VALUE`` pairs, and one-line validation errors."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from tenant.models import Tenant
from tenant.selectors import tenant_get


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


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"{what} must look like KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs
