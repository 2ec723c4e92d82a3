"""``manage.py auth0 import``: bring a tenant over from Auth0."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from tenant.audit import Actor
from tenant.cli import TenantCommand
from tenant.models import Tenant
from tenant.site.auth0_import.deploy_cli import read_deploy_cli
from tenant.site.auth0_import.export import KINDS, Export, ImportRefused
from tenant.site.auth0_import.handover import service_changes
from tenant.site.auth0_import.management_api import read_management_api
from tenant.site.auth0_import.plan import Plan, make_plan
from tenant.site.auth0_import.services import ImportResult, auth0_import


def read_json_file(path: str | None, option: str) -> dict[str, Any]:
    """A JSON object from ``path`` (``--keywords``, ``--hook-secrets``...),
    or the one line that says why not."""
    if not path:
        return {}
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ImportRefused(f"{option}: cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise ImportRefused(f"{option}: {path} is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise ImportRefused(f"{option}: {path} must hold a JSON object.")
    return body


def parse_only(value: str | None) -> tuple[str, ...]:
    if not value:
        return KINDS
    kinds = tuple(kind.strip() for kind in value.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise ImportRefused(f"--only takes {','.join(KINDS)}; got {value!r}.")
    return kinds


class SecretsFile:
    """``--secrets-out``: the secrets Tessera made, ``{client_id: secret}``,
    in a file only its owner reads (mode 0600), written beside the target
    and moved into place only once the import is committed. Entries already
    in the file are kept."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.existing = read_json_file(path, "--secrets-out") if self.path.exists() else {}
        if not self.path.parent.is_dir():
            raise ImportRefused(f"--secrets-out: no folder {self.path.parent}.")
        self.temporary: str | None = None

    def stage(self, secrets: dict[str, str]) -> None:
        handle, self.temporary = tempfile.mkstemp(
            prefix=".secrets-", dir=self.path.parent, text=True
        )
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({**self.existing, **secrets}, out, indent=2)
            out.write("\n")

    def commit(self) -> None:
        if self.temporary:
            os.replace(self.temporary, self.path)

    def discard(self) -> None:
        if self.temporary and os.path.exists(self.temporary):
            os.unlink(self.temporary)


class Command(TenantCommand):
    help = "Bring a tenant's APIs, clients, grants, hooks and Actions over from Auth0."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        run = actions.add_parser(
            "import",
            help="Import from an Auth0-shaped Management API (--from) or a Deploy CLI "
            "export (--from-dir).",
        )
        self.add_tenant_argument(run)
        source = run.add_mutually_exclusive_group()
        source.add_argument(
            "--from", dest="source_url", help="The source's domain or base URL (its /api/v2)."
        )
        source.add_argument(
            "--from-dir", dest="source_dir", help="A Deploy CLI export: a directory or YAML file."
        )
        run.add_argument("--client-id", default=os.environ.get("AUTH0_CLIENT_ID", ""))
        run.add_argument("--client-secret", default=os.environ.get("AUTH0_CLIENT_SECRET", ""))
        run.add_argument("--dry-run", action="store_true", help="Print the plan; write nothing.")
        run.add_argument("--only", help=f"Some of {','.join(KINDS)} (comma-separated).")
        run.add_argument("--hook-secrets", help='JSON {"<hook>": {"<secret>": "<value>"}}.')
        run.add_argument("--action-secrets", help='JSON {"<action>": {"<secret>": "<value>"}}.')
        run.add_argument("--keywords", help='JSON {"KEY": value} for ##KEY## and @@KEY@@.')
        run.add_argument(
            "--secrets-out",
            help="Write the secrets Tessera makes to this JSON file (mode 0600); - prints them.",
        )
        run.add_argument(
            "--overwrite", action="store_true", help="Update objects that differ from the source."
        )

    def import_(self, tenant: Tenant, options: dict[str, Any]) -> None:
        try:
            self.run_import(tenant, options)
        except ImportRefused as error:
            raise CommandError(str(error)) from None

    def read(self, options: dict[str, Any]) -> Export:
        only = parse_only(options["only"])
        if not options["source_dir"] and not options["source_url"]:
            raise ImportRefused("Name the source: --from URL or --from-dir DIR_OR_YAML.")
        if options["source_dir"]:
            keywords = read_json_file(options["keywords"], "--keywords")
            return read_deploy_cli(options["source_dir"], keywords=keywords, only=only)
        return read_management_api(
            options["source_url"],
            client_id=options["client_id"],
            client_secret=options["client_secret"],
            only=only,
        )

    def run_import(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook_secrets = read_json_file(options["hook_secrets"], "--hook-secrets")
        action_secrets = read_json_file(options["action_secrets"], "--action-secrets")
        export = self.read(options)
        plan = make_plan(
            tenant=tenant,
            export=export,
            hook_secrets_given=hook_secrets,
            action_secrets_given=action_secrets,
            overwrite=options["overwrite"],
        )
        self.show_plan(plan)
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was written.")
            return
        if not plan.writes:
            self.stdout.write(f"Tenant {tenant.slug} already holds what {plan.source} gives.")
            return
        target = options["secrets_out"]
        if plan.new_secrets and not target:
            raise ImportRefused(
                f"{plan.new_secrets} clients get a new secret (the source keeps theirs): name a "
                "file for them with --secrets-out FILE (or - to print them). Nothing was written."
            )
        secrets_file = SecretsFile(target) if target and target != "-" else None
        try:
            with transaction.atomic():
                result = auth0_import(plan=plan, actor=Actor.cli())
                if secrets_file is not None:
                    secrets_file.stage(self.secrets_of(result))
            if secrets_file is not None:
                secrets_file.commit()
        finally:
            if secrets_file is not None:
                secrets_file.discard()
        self.show_result(plan, result, printed=target == "-")

    @staticmethod
    def secrets_of(result: ImportResult) -> dict[str, str]:
        return {
            **result.new_secrets,
            **{f"signing_secret:{k}": v for k, v in result.new_signing_secrets.items()},
        }

    def show_plan(self, plan: Plan) -> None:
        self.stdout.write(f"Import from {plan.source} into tenant {plan.tenant.slug}:")
        for line in plan.lines():
            self.stdout.write(f"  {line}")
        if plan.left_out:
            self.stdout.write(f"Cannot come over ({len(plan.left_out)}):")
            for line in plan.left_out:
                self.stdout.write(f"  {line}")
        for note in plan.notes:
            self.stdout.write(f"Note: {note}")

    def show_result(self, plan: Plan, result: ImportResult, *, printed: bool) -> None:
        self.stdout.write(
            f"Imported into {plan.tenant.slug}: {plan.count('create')} created, "
            f"{plan.count('update')} updated, {plan.count('unchanged')} unchanged, "
            f"{plan.count('differs')} left alone."
        )
        if printed and (result.new_secrets or result.new_signing_secrets):
            self.stdout.write(json.dumps(self.secrets_of(result), indent=2))
        for line in service_changes(plan, result):
            self.stdout.write(line)


# The action is named ``import``, a keyword: TenantCommand finds it by name.
setattr(Command, "import", Command.import_)
