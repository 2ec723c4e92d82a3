"""The base of Tessera's ``manage.py`` commands that work on one tenant:
the tenant named by ``-p/--tenant``, every error as one line and a non-zero
exit, ``--follow``, lookups by name and ``KEY=VALUE`` pairs."""

import argparse
from collections.abc import Callable
from time import sleep
from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max, QuerySet

from tenant.models import Tenant
from tenant.selectors import tenant_get
from tenant.text import validation_message

FOLLOW_INTERVAL_S = 1.0
T = TypeVar("T")


def get_tenant(slug: str) -> Tenant:
    try:
        return tenant_get(slug=slug)
    except Tenant.DoesNotExist:
        raise CommandError(f"Unknown tenant: {slug}") from None


def find(get: Callable[..., T], what: str, *, tenant: Tenant, **key: str) -> T:
    """``get(tenant=tenant, **key)`` (a selector), or the one-line error that
    the tenant has no such ``what``: another tenant's is unknown too."""
    try:
        return get(tenant=tenant, **key)
    except ObjectDoesNotExist:
        (name,) = key.values()
        raise CommandError(f"Unknown {what} for tenant {tenant.slug}: {name}") from None


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"{what} must look like KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


class TenantCommand(BaseCommand):
    """A command of actions (subcommands), most of them on one tenant.

    Each action is a method named after it (``rotate-key`` is
    ``rotate_key``): an action with ``-p/--tenant`` (added with
    ``add_tenant_argument``) is called with the tenant and the options, any
    other with the options alone. A ValidationError from a service, an
    unknown tenant or an unknown object is one line on stderr and exit 1.
    """

    @staticmethod
    def add_tenant_argument(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-p", "--tenant", required=True, help="Tenant slug (the seeds' profile)."
        )

    @staticmethod
    def add_follow_arguments(parser: argparse.ArgumentParser, *, flag: bool = True) -> None:
        """``-f/--follow`` (unless the action always follows), and for tests
        how often to poll and after how many polls to stop."""
        if flag:
            parser.add_argument(
                "-f", "--follow", action="store_true", help="Then print new ones until Ctrl+C."
            )
        parser.add_argument("--max-polls", type=int, default=None, help=argparse.SUPPRESS)
        parser.add_argument(
            "--poll-interval", type=float, default=FOLLOW_INTERVAL_S, help=argparse.SUPPRESS
        )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.set_defaults(tenant=None)
        return parser

    def handle(self, *args: Any, **options: Any) -> None:
        action = getattr(self, options["action"].replace("-", "_"))
        try:
            if options["tenant"] is None:
                action(options)
            else:
                action(get_tenant(options["tenant"]), options)
        except ValidationError as error:
            raise CommandError(self.error_message(error)) from None

    def error_message(self, error: ValidationError) -> str:
        """The line a service's refusal prints; a command may add advice."""
        return validation_message(error)

    def show_rows(
        self,
        options: dict[str, Any],
        rows: QuerySet[Any],
        write: Callable[[list[Any]], int | None],
        *,
        follow: bool,
        banner: str = "",
    ) -> None:
        """The ``--limit`` newest of ``rows`` (a queryset, newest first),
        printed oldest first by ``write`` (which returns the last id it
        printed); with ``follow``, then every newer row as it is written,
        polling every ``--poll-interval`` seconds until Ctrl+C."""
        recent = list(rows[: max(options["limit"], 0)])[::-1]
        last_id = write(recent)
        if last_id is None:
            last_id = rows.aggregate(last=Max("id"))["last"] or 0
        if not follow:
            return
        if banner:
            self.stdout.write(banner)
            self.stdout.flush()
        polls = 0
        try:
            while options["max_polls"] is None or polls < options["max_polls"]:
                sleep(options["poll_interval"])
                polls += 1
                last_id = write(list(rows.filter(id__gt=last_id).order_by("id"))) or last_id
        except KeyboardInterrupt:
            self.stdout.write("")
