"""``manage.py wt create|logs``: the webtask CLI form of the Rules seeds,

    wt create myrule.js --meta wt-compiler=auth0-ext-compilers/client-credentials-exchange \\
        --meta auth0-extension=runtime --meta auth0-extension-name=credentials-exchange \\
        --meta auth0-extension-secret=$SECRET --secret auth0-extension-secret=$SECRET

Such a rule runs for every client at once, so ``wt create`` enables the hook.
"""

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.utils.crypto import constant_time_compare

from hooks.choices import TriggerId
from hooks.cli import add_logs_arguments, read_text, show_logs
from hooks.services import hook_create, hook_enable
from tenant.audit import Actor
from tenant.cli import TenantCommand, parse_pairs
from tenant.models import Tenant

EXTENSION_SECRET = "auth0-extension-secret"
# The webtask compiler each extension was built with in Auth0.
COMPILERS = {
    TriggerId.CREDENTIALS_EXCHANGE: "auth0-ext-compilers/client-credentials-exchange",
}
KNOWN_META = {"wt-compiler", "auth0-extension", "auth0-extension-name", EXTENSION_SECRET}


def trigger_from_meta(meta: dict[str, str], secrets: dict[str, str]) -> str:
    """The extensibility point the metadata names; refuses what Auth0 would."""
    if meta.get("auth0-extension") != "runtime":
        raise CommandError(
            "Missing --meta auth0-extension=runtime: only runtime extensions can be hooks"
        )
    name = meta.get("auth0-extension-name")
    if name not in TriggerId.values:
        raise CommandError(
            f"Unknown auth0-extension-name {name!r}; use one of: {', '.join(TriggerId.values)}"
            if name
            else "Missing --meta auth0-extension-name (e.g. credentials-exchange)"
        )
    compiler = meta.get("wt-compiler")
    if compiler is not None and compiler != COMPILERS[TriggerId(name)]:
        raise CommandError(
            f"wt-compiler {compiler!r} does not fit {name}; use {COMPILERS[TriggerId(name)]}"
        )
    if EXTENSION_SECRET in meta and not constant_time_compare(
        meta[EXTENSION_SECRET], secrets.get(EXTENSION_SECRET, "")
    ):
        raise CommandError(f"--meta {EXTENSION_SECRET} does not match --secret {EXTENSION_SECRET}")
    return name


class Command(TenantCommand):
    help = "Create and follow hooks the way the webtask CLI (wt) does."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a hook from a file and enable it.")
        create.add_argument("file")
        self.add_tenant_argument(create)
        create.add_argument("-n", "--name", help="Defaults to the file's name without .js.")
        create.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
        create.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE")
        logs = actions.add_parser("logs", help="Follow hook runs as they happen.")
        add_logs_arguments(logs, follow_flag=False)

    def logs(self, tenant: Tenant, options: dict[str, Any]) -> None:
        show_logs(self, tenant, options, follow=True)

    def create(self, tenant: Tenant, options: dict[str, Any]) -> None:
        meta = parse_pairs(options["meta"], "--meta")
        secrets = parse_pairs(options["secret"], "--secret")
        trigger_id = trigger_from_meta(meta, secrets)
        script = read_text(options["file"])
        name = options["name"] or Path(options["file"]).stem
        with transaction.atomic():
            hook = hook_create(
                tenant=tenant,
                name=name,
                script=script,
                trigger_id=trigger_id,
                enabled=False,
                secrets=secrets,
                actor=Actor.cli(),
            )
            disabled = hook_enable(hook=hook, actor=Actor.cli())
        self.stdout.write(f"Created hook {hook.name}")
        self.stdout.write(hook.enabled_message(disabled))
        if secrets:
            self.stdout.write(f"Secrets: {', '.join(secrets)}")
        ignored = sorted(set(meta) - KNOWN_META)
        if ignored:
            self.stderr.write(f"Ignored metadata: {', '.join(ignored)}")
